//! The batch pipeline: uint8 views assembled in parallel (rayon) into reusable buffers, ahead of
//! the training step through a bounded queue. Moving a batch to the device and normalising it
//! there is the `resmooth` crate's `pipeline` (libtorch).

use crate::augment::cutout::fill_cutout;
use crate::augment::{Applied, Augmenter};
use crate::data::{DataError, ImageSet, Normalisation};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which views a batch holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Views {
    /// `floor(B * prob)` original views followed by augmented views of the other samples.
    Mixed { prob: f64 },
    /// The original view of every sample, then the augmented view of every sample (2B images).
    Both,
}

/// One batch: HWC uint8 images, their labels and dataset indices.
#[derive(Debug, Default)]
pub struct Batch {
    /// Size of every image.
    pub height: usize,
    pub width: usize,
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub indices: Vec<usize>,
    /// Number of leading images that are original views.
    pub n_ori: usize,
    /// The size and the original views of the global batch this batch is this process's part
    /// of ([`Part`]); `(len, n_ori)` when it is the whole batch.
    pub whole: (usize, usize),
    /// What was applied to each augmented view (in batch order after the originals).
    pub applied: Vec<Applied>,
    /// Per image, an RGB offset added to its [0, 1] floats before normalisation (the reference's
    /// ImageNet Lighting); empty when there is none.
    pub lighting: Vec<[f32; 3]>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one epoch of batches is made of.
#[derive(Debug, Clone)]
pub struct EpochPlan {
    pub seed: u64,
    pub epoch: u64,
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    pub views: Views,
    /// The part of every batch this process makes (all of it, or one rank's).
    pub part: Part,
}

/// The part of every batch one process makes when several train together: rank `rank` of
/// `world_size` takes the contiguous positions [`shard`] gives it, so the parts in rank order
/// are the whole batch, and the global batch's original views are its first `floor(B·prob)`
/// positions, whichever rank holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub rank: usize,
    pub world_size: usize,
}

impl Part {
    /// The whole batch: one process.
    pub const WHOLE: Part = Part { rank: 0, world_size: 1 };

    /// This part's positions in a batch of `len`.
    pub fn positions(&self, len: usize) -> std::ops::Range<usize> {
        shard(len, self.rank, self.world_size)
    }
}

/// Rank `rank` of `world_size`'s contiguous part of `len` items (a batch, the evaluation set,
/// the detection pass): `len·r/N .. len·(r+1)/N`, so the parts in rank order are the whole in
/// order, their sizes at most one apart.
pub fn shard(len: usize, rank: usize, world_size: usize) -> std::ops::Range<usize> {
    len * rank / world_size..len * (rank + 1) / world_size
}

impl Views {
    /// The number of original views of a global batch of `len` samples (`Both`: all of them,
    /// the batch holding `2·len` images).
    pub fn originals(self, len: usize) -> usize {
        match self {
            Views::Mixed { prob } => (len as f64 * prob).floor() as usize,
            Views::Both => len,
        }
    }
}

impl EpochPlan {
    /// Every sample once, in order, in batches of `batch_size` (the last one partial), original
    /// views only: a test split's pass.
    pub fn in_order(batch_size: usize) -> EpochPlan {
        EpochPlan {
            seed: 0,
            epoch: 0,
            batch_size,
            shuffle: false,
            drop_last: false,
            views: Views::Mixed { prob: 1.0 },
            part: Part::WHOLE,
        }
    }

    /// The sample order of the epoch, cut into batches.
    pub fn batches(&self, n: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..n).collect();
        if self.shuffle {
            order.shuffle(&mut sample_rng(self.seed, self.epoch, u64::MAX, 0));
        }
        let mut out: Vec<Vec<usize>> = order.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        if self.drop_last && out.last().is_some_and(|b| b.len() < self.batch_size) {
            out.pop();
        }
        out
    }

    /// (sample, is original) for each image slot of this process's part ([`Part`]) of the
    /// global batch of samples `indices`: its original views first, those of the global batch's
    /// original positions, then its augmented views.
    pub fn slots(&self, indices: &[usize]) -> Vec<(usize, bool)> {
        let (mine, n_ori) = (self.part.positions(indices.len()), self.views.originals(indices.len()));
        match self.views {
            Views::Mixed { .. } => mine.map(|k| (indices[k], k < n_ori)).collect(),
            Views::Both => {
                let part = &indices[mine];
                part.iter().map(|&i| (i, true)).chain(part.iter().map(|&i| (i, false))).collect()
            }
        }
    }

    /// The number of images and of original views of the global batch of `len` samples
    /// ([`Batch::whole`]).
    pub fn whole(&self, len: usize) -> (usize, usize) {
        match self.views {
            Views::Mixed { .. } => (len, self.views.originals(len)),
            Views::Both => (2 * len, len),
        }
    }
}

/// The generator of every random draw for one sample's view: independent of thread count and
/// of which other views are made. `stream` 0 is the original view, 1 the augmented one.
pub fn sample_rng(seed: u64, epoch: u64, index: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, v) in [seed, epoch, index, stream].into_iter().enumerate() {
        key[i * 8..(i + 1) * 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// Writes view `stream` (0 original, 1 augmented) of sample `index` of `set` in epoch `epoch`
/// into `out`; for an augmented view, says what was applied. The draws depend only on these
/// numbers, so a view can be made again later (e.g. `resmooth detect --export`).
pub fn make_view(
    set: &ImageSet,
    aug: &Augmenter,
    seed: u64,
    epoch: u64,
    index: usize,
    original: bool,
    out: &mut [u8],
) -> Option<Applied> {
    view_of(set.image(index), (set.height, set.width), aug, (seed, epoch, index), original, out)
}

/// [`make_view`] of the image `src` (HWC `h` x `w`) of sample `index`, wherever it was read from:
/// what the in-memory and the streamed sources share.
pub fn view_of(
    src: &[u8],
    (h, w): (usize, usize),
    aug: &Augmenter,
    (seed, epoch, index): (u64, u64, usize),
    original: bool,
    out: &mut [u8],
) -> Option<Applied> {
    if original {
        aug.original_view(src, h, w, &mut sample_rng(seed, epoch, index as u64, 0), out);
        None
    } else {
        Some(aug.augmented_view(src, h, w, &mut sample_rng(seed, epoch, index as u64, 1), out))
    }
}

/// View `original` (or the augmented one) of sample `index` as training sees it, to be looked
/// at: [`make_view`]'s pixels with the cutout box, zeroed after normalisation in training,
/// painted in the mean colour of `norm`. Returns the HWC bytes and what was applied.
pub fn shown_view(
    set: &ImageSet,
    aug: &Augmenter,
    norm: Normalisation,
    seed: u64,
    epoch: u64,
    index: usize,
    original: bool,
) -> (Vec<u8>, Option<Applied>) {
    let mut img = vec![0u8; set.image_bytes()];
    let applied = make_view(set, aug, seed, epoch, index, original, &mut img);
    if let Some(cutout) = applied.as_ref().and_then(|a| a.cutout) {
        fill_cutout(&mut img, set.width, cutout, &norm.mean_colour());
    }
    (img, applied)
}

/// Fills `batch` with this process's part (`plan.part`) of the views of samples `indices` (a
/// global batch) of `set`: its original views first, those of the global batch's original
/// positions, then its augmented views.
pub fn assemble(set: &ImageSet, indices: &[usize], plan: &EpochPlan, aug: &Augmenter, batch: &mut Batch) {
    let per = set.image_bytes();
    let slots = plan.slots(indices);
    batch.whole = plan.whole(indices.len());
    (batch.height, batch.width) = (set.height, set.width);
    batch.n_ori = slots.iter().filter(|s| s.1).count();
    batch.images.resize(slots.len() * per, 0);
    batch.labels.clear();
    batch.labels.extend(slots.iter().map(|&(i, _)| set.labels[i]));
    batch.indices.clear();
    batch.indices.extend(slots.iter().map(|&(i, _)| i));
    batch.lighting.clear();
    let applied: Vec<Option<Applied>> = batch
        .images
        .par_chunks_mut(per)
        .zip(slots.par_iter())
        .map(|(out, &(i, original))| make_view(set, aug, plan.seed, plan.epoch, i, original, out))
        .collect();
    batch.applied = applied.into_iter().flatten().collect();
}

/// What a [`Loader`] makes batches from: images held in memory, or files read as it goes
/// (`crate::streaming`).
pub trait BatchSource: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `batch` with the views of samples `indices` for `plan`, in the caller's rayon pool;
    /// an error names the file it comes from.
    fn fill(&self, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError>;
}

/// Images held in memory with the augmentation their views are made with.
pub struct InMemory {
    pub set: Arc<ImageSet>,
    pub aug: Arc<Augmenter>,
}

impl BatchSource for InMemory {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn fill(&self, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError> {
        assemble(&self.set, indices, plan, &self.aug, batch);
        Ok(())
    }
}

/// The samples `range` of `source`, numbered from 0: one process's part of a split to evaluate.
pub struct Slice {
    pub source: Arc<dyn BatchSource>,
    pub range: std::ops::Range<usize>,
}

impl BatchSource for Slice {
    fn len(&self) -> usize {
        self.range.len()
    }

    fn fill(&self, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError> {
        let shifted: Vec<usize> = indices.iter().map(|i| i + self.range.start).collect();
        self.source.fill(&shifted, plan, batch)
    }
}

/// Batches of one epoch, made by a background thread (with a rayon pool) at most `depth` ahead.
pub struct Loader {
    rx: Option<Receiver<Result<Batch, DataError>>>,
    /// Why the batches stopped before the end of the epoch, if they did.
    error: Option<DataError>,
    recycle: Arc<Mutex<Vec<Batch>>>,
    handle: Option<JoinHandle<()>>,
    /// Time the consumer spent blocked waiting for a batch.
    pub wait: Duration,
    pub num_batches: usize,
}

impl Loader {
    /// Starts producing the batches of `plan` over `set`.
    pub fn start(
        set: Arc<ImageSet>,
        plan: EpochPlan,
        aug: Arc<Augmenter>,
        pool: Arc<rayon::ThreadPool>,
        depth: usize,
    ) -> Self {
        Self::start_source(Arc::new(InMemory { set, aug }), plan, pool, depth, 0)
    }

    /// Starts producing the batches of `plan` from `source`, from batch `first` on (a resumed
    /// epoch: each batch is the one an uninterrupted epoch makes at its place, and `num_batches`
    /// stays the epoch's whole count); a batch that cannot be made ends the epoch early with its
    /// error ([`Loader::try_next_batch`]).
    pub fn start_source(
        source: Arc<dyn BatchSource>,
        plan: EpochPlan,
        pool: Arc<rayon::ThreadPool>,
        depth: usize,
        first: usize,
    ) -> Self {
        let mut batches = plan.batches(source.len());
        let num_batches = batches.len();
        batches.drain(..first.min(num_batches));
        type Made = Result<Batch, DataError>;
        let (tx, rx): (SyncSender<Made>, Receiver<Made>) = sync_channel(depth.max(1));
        let recycle: Arc<Mutex<Vec<Batch>>> = Arc::new(Mutex::new(Vec::new()));
        let free = recycle.clone();
        let handle = std::thread::spawn(move || {
            for indices in batches {
                let mut batch = free.lock().map(|mut f| f.pop()).ok().flatten().unwrap_or_default();
                let made = pool.install(|| source.fill(&indices, &plan, &mut batch)).map(|()| batch);
                let failed = made.is_err();
                if tx.send(made).is_err() || failed {
                    return; // the consumer stopped early, or this epoch cannot go on
                }
            }
        });
        Loader { rx: Some(rx), error: None, recycle, handle: Some(handle), wait: Duration::ZERO, num_batches }
    }

    /// The next batch, or `None` at the end of the epoch, or when a batch could not be made
    /// (then [`Loader::error`] says why).
    pub fn next_batch(&mut self) -> Option<Batch> {
        self.try_next_batch().unwrap_or_else(|e| {
            self.error = Some(e);
            None
        })
    }

    /// The next batch, `None` at the end of the epoch, or the error that stopped the batches
    /// (after which the epoch has no more batches).
    pub fn try_next_batch(&mut self) -> Result<Option<Batch>, DataError> {
        let t = Instant::now();
        let made = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        self.wait += t.elapsed();
        match made {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => {
                self.rx = None;
                Err(e)
            }
        }
    }

    /// Why the batches stopped before the end of the epoch, if they did.
    pub fn error(&self) -> Option<&DataError> {
        self.error.as_ref()
    }

    /// Hands a used batch back so its buffers are reused.
    pub fn recycle(&self, batch: Batch) {
        if let Ok(mut f) = self.recycle.lock() {
            f.push(batch);
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_set(n: usize) -> ImageSet {
        let mut s = ImageSet::new(8, 8);
        for i in 0..n {
            let img: Vec<u8> = (0..8 * 8 * 3).map(|p| ((p + i * 13) % 256) as u8).collect();
            s.push(&img, (i % 3) as i64);
        }
        s
    }

    fn plan(views: Views) -> EpochPlan {
        EpochPlan { seed: 5, epoch: 2, batch_size: 4, shuffle: true, drop_last: true, views, part: Part::WHOLE }
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation_with_drop_last() {
        let p = plan(Views::Mixed { prob: 1.0 });
        let b = p.batches(10);
        assert_eq!(b.len(), 2);
        assert_eq!(b, p.batches(10));
        let mut seen: Vec<usize> = b.concat();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8);
        assert_ne!(b, EpochPlan { epoch: 3, ..p.clone() }.batches(10));
        assert_eq!(EpochPlan { drop_last: false, ..p }.batches(10).len(), 3);
    }

    #[test]
    fn mixed_batches_put_floor_b_prob_originals_first() {
        let set = toy_set(8);
        let aug = Augmenter::none();
        let mut batch = Batch::default();
        assemble(&set, &[0, 1, 2, 3], &plan(Views::Mixed { prob: 0.6 }), &aug, &mut batch);
        assert_eq!((batch.len(), batch.n_ori, batch.applied.len()), (4, 2, 2));
        assert_eq!(batch.labels, vec![0, 1, 2, 0]);
        assemble(&set, &[4, 5], &plan(Views::Both), &aug, &mut batch);
        assert_eq!((batch.len(), batch.n_ori), (4, 2));
        assert_eq!(batch.indices, vec![4, 5, 4, 5]);
        assert_eq!(batch.images.len(), 4 * 8 * 8 * 3);
    }

    #[test]
    fn the_ranks_parts_of_a_batch_are_the_whole_batch_with_its_originals_where_they_were() {
        let set = toy_set(12);
        let aug = Augmenter::new(crate::config::AugName::RandAugment, 2, 14, 4, crate::config::DatasetName::Cifar10);
        let indices: Vec<usize> = vec![7, 2, 9, 4, 11, 0, 5, 3];
        for views in [Views::Mixed { prob: 0.4 }, Views::Both] {
            let mut whole = Batch::default();
            assemble(&set, &indices, &plan(views), &aug, &mut whole);
            let parts: Vec<Batch> = (0..3)
                .map(|rank| {
                    let mut b = Batch::default();
                    let plan = EpochPlan { part: Part { rank, world_size: 3 }, ..plan(views) };
                    assemble(&set, &indices, &plan, &aug, &mut b);
                    assert_eq!(b.whole, whole.whole, "every part knows the global batch's counts");
                    b
                })
                .collect();
            let per = set.image_bytes();
            // each part's originals, then each part's augmented views, in rank order
            let ori: Vec<u8> = parts.iter().flat_map(|b| b.images[..b.n_ori * per].to_vec()).collect();
            let aug_views: Vec<u8> = parts.iter().flat_map(|b| b.images[b.n_ori * per..].to_vec()).collect();
            assert_eq!(ori, whole.images[..whole.n_ori * per], "{views:?}");
            assert_eq!(aug_views, whole.images[whole.n_ori * per..], "{views:?}");
            assert_eq!(parts.iter().map(|b| b.n_ori).sum::<usize>(), whole.n_ori);
        }
        // prob 0.4 of 8: the first 3 positions are originals, all in rank 0's part (0..2) and rank 1's (2..5)
        let counts: Vec<usize> = (0..3)
            .map(|rank| {
                let mut b = Batch::default();
                let plan = EpochPlan { part: Part { rank, world_size: 3 }, ..plan(Views::Mixed { prob: 0.4 }) };
                assemble(&set, &indices, &plan, &aug, &mut b);
                b.n_ori
            })
            .collect();
        assert_eq!(counts, vec![2, 1, 0]);
        assert_eq!(Part::WHOLE.positions(5), 0..5);
    }

    #[test]
    fn views_do_not_depend_on_thread_count_or_on_the_other_views() {
        let set = Arc::new(toy_set(16));
        let aug = Arc::new(Augmenter::none());
        let collect = |threads: usize, views: Views| {
            let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
            let mut loader = Loader::start(set.clone(), plan(views), aug.clone(), pool, 2);
            let mut all = Vec::new();
            while let Some(b) = loader.next_batch() {
                all.push((b.indices.clone(), b.images.clone()));
                loader.recycle(b);
            }
            all
        };
        assert_eq!(collect(1, Views::Both), collect(3, Views::Both));
        // the original view of a sample is the same whether or not its augmented view is made
        let both = collect(2, Views::Both);
        let ori = collect(2, Views::Mixed { prob: 1.0 });
        let per = 8 * 8 * 3;
        for ((_, b_img), (_, o_img)) in both.iter().zip(&ori) {
            assert_eq!(&b_img[..4 * per], &o_img[..]);
        }
    }
}
