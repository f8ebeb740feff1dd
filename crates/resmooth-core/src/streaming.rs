//! The streaming source: an image folder listed once and decoded every epoch, file by file, by the
//! loader's rayon pool straight into the batch layout of [`crate::pipeline`], with the loader's
//! prefetch. Memory holds the file list (names only) and the batches in flight, whatever the
//! dataset's size. Every view is drawn from the generator of (seed, epoch, sample, view), as in
//! memory, so a streamed epoch gives the batches an in-memory epoch gives, and resume and
//! determinism keep working. A file that cannot be read stops the epoch with its name
//! (`--on-bad-image fail`) or is left out of its batch and reported (`skip`).
//!
//! ImageNet's images have many sizes, so held in memory (`--data-in-memory yes`) they stay in
//! this source, decoded once at their own size; its views are then made as the streamed ones.
//! [`Split`] is a split as the engine reads it, whichever way it is held.

use crate::augment::cutout::{draw_cutout, fill_cutout};
use crate::augment::imagenet::{eval_view_at, ImageNetTrain, TrainDraw};
use crate::augment::{Applied, Augmenter};
use crate::data::jpeg::DctScale;
use crate::data::resize::Region;
use crate::data::stream::{BadImage, FileList, OnBadImage};
use crate::data::{decode_bytes, decode_part, image_size, is_jpeg, DataError, ImageSet, Normalisation, Size};
use crate::pipeline::{sample_rng, shown_view, view_of, Batch, BatchSource, EpochPlan, InMemory};
use crate::progress::{Progress, Unit};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the views of a streamed folder are made.
#[derive(Debug, Clone)]
pub enum StreamViews {
    /// The views of the augmenter (crop + flip and the `--aug` policy) of images decoded at
    /// `size`, as an in-memory folder makes them.
    Fixed { size: Size },
    /// The reference's ImageNet training view; an augmented view is the `--aug` policy (and
    /// cutout) followed by it, as CIFAR's augmented view is the policy followed by crop + flip.
    /// Ours, not the reference's: its ImageNet data builds no augmented view, so its training
    /// cannot run there (README, differences).
    /// JPEGs are decoded at a reduced DCT scale when `reduced_dct` (opt-in: its pixels are not
    /// Pillow's). The crop, flip, jitter and lighting are drawn from the image's size (its header)
    /// before decoding, so the draws do not depend on the decoding scale.
    ImageNetTrain { transform: ImageNetTrain, reduced_dct: bool },
    /// The reference's ImageNet test view at side `size`: `Resize(256, BICUBIC)` +
    /// `CenterCrop(224)` at 224 ([`eval_view_at`]).
    ImageNetEval { size: usize },
}

/// An image decoded at its own size.
#[derive(Debug)]
struct Decoded {
    height: usize,
    width: usize,
    pixels: Vec<u8>,
}

/// An image folder split read file by file, or held decoded in memory.
pub struct StreamSource {
    files: FileList,
    views: StreamViews,
    on_bad: OnBadImage,
    /// (height, width) of every view.
    view_size: (usize, usize),
    skipped: Mutex<Vec<BadImage>>,
    /// Every image decoded once ([`StreamSource::hold_in_memory`]); `None` for one left out.
    held: Option<Vec<Option<Decoded>>>,
}

/// What making one view gave besides its pixels.
#[derive(Default)]
struct Made {
    applied: Option<Applied>,
    lighting: Option<[f32; 3]>,
}

/// An image's (height, width) and HWC pixels, borrowed from memory or decoded from its file.
type Pixels<'a> = ((usize, usize), Cow<'a, [u8]>);

/// One image to make a view of: its decoded pixels held in memory, or its file's bytes.
enum Opened<'a> {
    Held(&'a Decoded),
    File { path: PathBuf, bytes: Vec<u8>, size: (usize, usize) },
}

impl Opened<'_> {
    /// The image's (height, width).
    fn size(&self) -> (usize, usize) {
        match self {
            Opened::Held(d) => (d.height, d.width),
            Opened::File { size, .. } => *size,
        }
    }

    /// The scale to decode at for a crop of `region` shrunk to `out` pixels (when `reduced`).
    fn scale_for(&self, reduced: bool, region: Region, out: usize) -> DctScale {
        match self {
            Opened::File { bytes, .. } if reduced && is_jpeg(bytes) => {
                DctScale::for_crop(region.height, region.width, out)
            }
            _ => DctScale::Full,
        }
    }

    /// The pixels at `scale` of a part of the image that holds `crop` (a box of the image at that
    /// scale; held images are at full scale and whole): the part's box and its pixels, which in
    /// `crop` are the whole image's ([`decode_part`]).
    fn part(&self, scale: DctScale, crop: Region) -> Result<(Region, Cow<'_, [u8]>), DataError> {
        match self {
            Opened::Held(d) => {
                Ok((Region { top: 0, left: 0, height: d.height, width: d.width }, Cow::Borrowed(&d.pixels)))
            }
            Opened::File { path, bytes, .. } => {
                let (part, rgb) = decode_part(path, bytes, scale, crop)?;
                Ok((part, Cow::Owned(rgb)))
            }
        }
    }

    /// The pixels at `scale` (held images are at full scale) and their (height, width).
    fn pixels(&self, scale: DctScale) -> Result<Pixels<'_>, DataError> {
        match self {
            Opened::Held(d) => Ok(((d.height, d.width), Cow::Borrowed(&d.pixels))),
            Opened::File { path, bytes, size } => {
                let (h, w, rgb) = decode_bytes(path, bytes, scale)?;
                if scale == DctScale::Full && (h, w) != *size {
                    return Err(DataError::malformed(
                        path,
                        format!("decodes to {w}x{h} but its header says {}x{}", size.1, size.0),
                    ));
                }
                Ok(((h, w), Cow::Owned(rgb)))
            }
        }
    }
}

impl StreamSource {
    /// A source over `files` making `views`; a `Fixed` source of `Size::Native` takes the size of
    /// its first file (read from the header), which every file must share.
    pub fn new(files: FileList, views: StreamViews, on_bad: OnBadImage) -> Result<StreamSource, DataError> {
        if files.is_empty() {
            return Err(DataError::Invalid("a streamed split needs at least one image".into()));
        }
        let view_size = match &views {
            StreamViews::Fixed { size: Size::Square(s) } => (*s, *s),
            StreamViews::Fixed { size: Size::Native } => {
                let first = files.path(0);
                let bytes = std::fs::read(&first).map_err(|e| DataError::io(&first, e))?;
                image_size(&first, &bytes)?
            }
            StreamViews::ImageNetTrain { transform, .. } => (transform.size(), transform.size()),
            StreamViews::ImageNetEval { size } => (*size, *size),
        };
        let skipped = Mutex::new(Vec::new());
        Ok(StreamSource { files, views, on_bad, view_size, skipped, held: None })
    }

    /// Decodes every image once, at its own size, and makes the views from memory from now on;
    /// a file that cannot be decoded stops here (`--on-bad-image fail`) or is left out of every
    /// epoch and reported by [`StreamSource::take_skipped`] (`skip`). For the ImageNet training
    /// views at full DCT scale only: the others are held as an [`ImageSet`].
    pub fn hold_in_memory(&mut self, progress: &mut dyn Progress) -> Result<(), DataError> {
        if !matches!(self.views, StreamViews::ImageNetTrain { reduced_dct: false, .. }) {
            return Err(DataError::Invalid(
                "only ImageNet's training views at full scale are made from images held in this source".into(),
            ));
        }
        let n = self.files.len();
        let mut held = Vec::with_capacity(n);
        progress.start("decoding images into memory", Some(n as u64), 0, Unit::Steps);
        for start in (0..n).step_by(1024) {
            let chunk: Vec<Result<Decoded, DataError>> = (start..(start + 1024).min(n))
                .into_par_iter()
                .map(|i| {
                    let path = self.files.path(i);
                    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                    let (height, width, pixels) = decode_bytes(&path, &bytes, DctScale::Full)?;
                    Ok(Decoded { height, width, pixels })
                })
                .collect();
            for (k, d) in chunk.into_iter().enumerate() {
                match d {
                    Ok(d) => held.push(Some(d)),
                    Err(e) if self.on_bad == OnBadImage::Fail => return Err(e),
                    Err(e) => {
                        self.skip(start + k, &e);
                        held.push(None);
                    }
                }
            }
            progress.advance(held.len() as u64, "");
            if progress.stop_requested() {
                break;
            }
        }
        progress.finish();
        if held.len() < n {
            return Err(DataError::Invalid("stopped while decoding the images into memory".into()));
        }
        self.held = Some(held);
        Ok(())
    }

    /// The (height, width) of every view.
    pub fn view_size(&self) -> (usize, usize) {
        self.view_size
    }

    /// The files and classes of the split.
    pub fn files(&self) -> &FileList {
        &self.files
    }

    /// Whether the images are held decoded in memory.
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// The images left out since the last call (`--on-bad-image skip`), in the order met.
    pub fn take_skipped(&self) -> Vec<BadImage> {
        self.skipped.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }

    fn skip(&self, index: usize, e: &DataError) {
        if let Ok(mut s) = self.skipped.lock() {
            s.push(BadImage { index, path: self.files.path(index), reason: e.to_string() });
        }
    }

    /// Image `index`: held in memory, or its file read with the size its header gives.
    fn open(&self, index: usize) -> Result<Opened<'_>, DataError> {
        let path = self.files.path(index);
        match &self.held {
            Some(held) => match &held[index] {
                Some(d) => Ok(Opened::Held(d)),
                None => Err(DataError::malformed(&path, "could not be decoded when the images were loaded")),
            },
            None => {
                let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                let size = image_size(&path, &bytes)?;
                Ok(Opened::File { path, bytes, size })
            }
        }
    }

    /// Writes the view (original, or augmented by `aug`) of sample `index` into `out`.
    fn view(
        &self,
        aug: &Augmenter,
        index: usize,
        original: bool,
        plan: &EpochPlan,
        out: &mut [u8],
    ) -> Result<Made, DataError> {
        match &self.views {
            StreamViews::Fixed { size } => {
                let path = self.files.path(index);
                let (h, w) = self.view_size;
                let mut img = vec![0u8; h * w * 3];
                crate::data::decode_into(&path, *size, (h, w), &self.files.path(0), &mut img)?;
                let applied = view_of(&img, (h, w), aug, (plan.seed, plan.epoch, index), original, out);
                Ok(Made { applied, lighting: None })
            }
            StreamViews::ImageNetTrain { transform, reduced_dct } => {
                let image = self.open(index)?;
                let (h, w) = image.size();
                let mut rng = sample_rng(plan.seed, plan.epoch, index as u64, u64::from(!original));
                let d = transform.draw(h, w, &mut rng);
                let scale = image.scale_for(*reduced_dct, d.region, transform.size());
                if original {
                    // the crop alone is decoded (with some context): its pixels are the same
                    let crop = scaled_region(d.region, scale, (scale.scaled(h), scale.scaled(w)));
                    let (part, rgb) = image.part(scale, crop)?;
                    let region = Region { top: crop.top - part.top, left: crop.left - part.left, ..crop };
                    let d = TrainDraw { region, ..d };
                    return Ok(imagenet_view(transform, &d, None, &rgb, (part.height, part.width), &mut rng, out));
                }
                // the policy works on the whole image
                let (size, rgb) = image.pixels(scale)?;
                let d = TrainDraw { region: scaled_region(d.region, scale, size), ..d };
                Ok(imagenet_view(transform, &d, Some(aug), &rgb, size, &mut rng, out))
            }
            StreamViews::ImageNetEval { size: side } => {
                let image = self.open(index)?;
                let (size, rgb) = image.pixels(DctScale::Full)?;
                eval_view_at(&rgb, size, *side, out);
                Ok(Made::default())
            }
        }
    }

    /// Fills `batch` with the views of samples `indices` (augmented views by `aug`) for `plan`.
    fn fill(&self, aug: &Augmenter, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError> {
        let (h, w) = self.view_size;
        let per = h * w * 3;
        let slots = plan.slots(indices);
        (batch.height, batch.width) = (h, w);
        batch.images.resize(slots.len() * per, 0);
        let made: Vec<Result<Made, DataError>> = batch
            .images
            .par_chunks_mut(per)
            .zip(slots.par_iter())
            .map(|(out, &(i, original))| self.view(aug, i, original, plan, out))
            .collect();
        // keep the slots that were made, in order, moving their pixels down over the holes
        let mut kept = Vec::with_capacity(slots.len());
        for (k, (&(i, original), m)) in slots.iter().zip(made).enumerate() {
            match m {
                Ok(m) => kept.push((k, i, original, m)),
                Err(e) if self.on_bad == OnBadImage::Fail => {
                    return Err(DataError::Invalid(format!(
                        "{e}; remove or replace the file, or pass --on-bad-image skip to leave such files out"
                    )))
                }
                Err(e) if plan.part.world_size > 1 => {
                    return Err(DataError::Invalid(format!(
                        "{e}; --on-bad-image skip works with one process only (with several, each rank would \
                         leave another number of images out of the global batch): remove or fix the file, or \
                         train with one process"
                    )))
                }
                Err(e) => self.skip(i, &e),
            }
        }
        for (to, &(from, ..)) in kept.iter().enumerate() {
            if to != from {
                batch.images.copy_within(from * per..(from + 1) * per, to * per);
            }
        }
        batch.images.truncate(kept.len() * per);
        batch.labels.clear();
        batch.labels.extend(kept.iter().map(|&(_, i, ..)| self.files.label(i)));
        batch.indices.clear();
        batch.indices.extend(kept.iter().map(|&(_, i, ..)| i));
        batch.n_ori = kept.iter().filter(|k| k.2).count();
        batch.whole = match plan.part.world_size {
            1 => (kept.len(), batch.n_ori),
            _ => plan.whole(indices.len()),
        };
        batch.lighting.clear();
        if kept.iter().any(|k| k.3.lighting.is_some()) {
            batch.lighting.extend(kept.iter().map(|k| k.3.lighting.unwrap_or([0.0; 3])));
        }
        batch.applied = kept.into_iter().filter_map(|k| k.3.applied).collect();
        Ok(())
    }
}

/// The ImageNet training view `d` of `rgb` (HWC `h` x `w`) into `out`; with `aug`, the augmented
/// view: its policy before the transform, its after-crop steps and cutout after, every draw
/// after `d`'s from `rng`.
fn imagenet_view(
    transform: &ImageNetTrain,
    d: &TrainDraw,
    aug: Option<&Augmenter>,
    rgb: &[u8],
    (h, w): (usize, usize),
    rng: &mut ChaCha8Rng,
    out: &mut [u8],
) -> Made {
    let Some(aug) = aug else {
        return Made { applied: None, lighting: Some(transform.apply(d, rgb, (h, w), out)) };
    };
    let (img, mut ops) = aug.kind.before_crop(rgb, h, w, rng).unwrap_or_default();
    let lighting = transform.apply(d, if img.is_empty() { rgb } else { &img }, (h, w), out);
    let s = transform.size();
    aug.kind.after_crop(&mut out[..s * s * 3], s, s, rng, &mut ops);
    let cutout = (aug.cutout > 0).then(|| draw_cutout(aug.cutout, s, s, rng));
    Made { applied: Some(Applied { ops, cutout }), lighting: Some(lighting) }
}

/// The crop box `r` of the full-size image in an image decoded at `scale` (`h` x `w`): its
/// edges divided by the scale and rounded, kept inside the image and at least one pixel wide.
fn scaled_region(r: Region, scale: DctScale, (h, w): (usize, usize)) -> Region {
    if scale == DctScale::Full {
        return r;
    }
    let d = scale.denominator() as f64;
    let edge = |v: usize, limit: usize| ((v as f64 / d).round() as usize).min(limit);
    let (top, left) = (edge(r.top, h - 1), edge(r.left, w - 1));
    let bottom = edge(r.top + r.height, h).max(top + 1);
    let right = edge(r.left + r.width, w).max(left + 1);
    Region { top, left, height: bottom - top, width: right - left }
}

/// A [`StreamSource`] with the augmentation of its augmented views: what a loader takes.
pub struct Streamed {
    pub source: Arc<StreamSource>,
    pub aug: Arc<Augmenter>,
}

impl BatchSource for Streamed {
    fn len(&self) -> usize {
        self.source.files.len()
    }

    fn fill(&self, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError> {
        self.source.fill(&self.aug, indices, plan, batch)
    }
}

/// A split as training, the detection pass and evaluation read it: images of one size held in
/// memory, or a [`StreamSource`] (files read as the batches are made, or ImageNet's images held
/// at their own sizes).
#[derive(Clone)]
pub enum Split {
    Memory(Arc<ImageSet>),
    Stream(Arc<StreamSource>),
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Split::Memory(set) => set.len(),
            Split::Stream(s) => s.files.len(),
        }
    }

    /// True when the split holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (height, width) of every view.
    pub fn view_size(&self) -> (usize, usize) {
        match self {
            Split::Memory(set) => (set.height, set.width),
            Split::Stream(s) => s.view_size,
        }
    }

    /// The label of sample `i`.
    pub fn label(&self, i: usize) -> i64 {
        match self {
            Split::Memory(set) => set.labels[i],
            Split::Stream(s) => s.files.label(i),
        }
    }

    /// The batches' source, augmented views made by `aug`.
    pub fn source(&self, aug: &Arc<Augmenter>) -> Arc<dyn BatchSource> {
        match self {
            Split::Memory(set) => Arc::new(InMemory { set: set.clone(), aug: aug.clone() }),
            Split::Stream(s) => Arc::new(Streamed { source: s.clone(), aug: aug.clone() }),
        }
    }

    /// The images left out since the last call (`--on-bad-image skip`).
    pub fn take_skipped(&self) -> Vec<BadImage> {
        match self {
            Split::Memory(_) => Vec::new(),
            Split::Stream(s) => s.take_skipped(),
        }
    }

    /// The view of sample `index` as training sees it, to be looked at (see
    /// [`crate::pipeline::shown_view`]): with its cutout box painted in the mean colour of
    /// `norm` and, for ImageNet's views, its Lighting offset added to the pixels.
    pub fn shown_view(
        &self,
        aug: &Augmenter,
        norm: Normalisation,
        (seed, epoch): (u64, u64),
        index: usize,
        original: bool,
    ) -> Result<(Vec<u8>, Option<Applied>), DataError> {
        let s = match self {
            Split::Memory(set) => return Ok(shown_view(set, aug, norm, seed, epoch, index, original)),
            Split::Stream(s) => s,
        };
        let (h, w) = s.view_size;
        let mut img = vec![0u8; h * w * 3];
        let plan = EpochPlan {
            seed,
            epoch,
            batch_size: 1,
            shuffle: false,
            drop_last: false,
            views: crate::pipeline::Views::Both,
            part: crate::pipeline::Part::WHOLE,
        };
        let made = s.view(aug, index, original, &plan, &mut img)?;
        if let Some(offset) = made.lighting {
            for px in img.chunks_exact_mut(3) {
                for (v, o) in px.iter_mut().zip(offset) {
                    *v = (f32::from(*v) + o * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        if let Some(cutout) = made.applied.as_ref().and_then(|a| a.cutout) {
            fill_cutout(&mut img, w, cutout, &norm.mean_colour());
        }
        Ok((img, made.applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::imagenet::{eval_view, RandomResizedCrop};
    use crate::config::{AugName, DatasetName};
    use crate::data::{decode_rgb, read_imagefolder};
    use crate::pipeline::{Loader, Part, Views};
    use crate::progress::Silent;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// Writes `n` images per class under `root/<split>/<class>/`, alternately JPEG and PNG, of
    /// side `side(i)` (height, width), with content that differs per image.
    fn folder(root: &Path, split: &str, n: usize, side: impl Fn(usize) -> (u32, u32)) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let k = c * n + i;
                let (h, w) = side(k);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([(x * 7 + k as u32 * 30) as u8, (y * 11) as u8, ((x ^ y) * 5 + k as u32) as u8])
                });
                let path = dir.join(format!("{i}.{}", if k.is_multiple_of(2) { "jpg" } else { "png" }));
                img.save(&path).unwrap();
                paths.push(path);
            }
        }
        paths
    }

    fn plan(views: Views) -> EpochPlan {
        EpochPlan { seed: 11, epoch: 3, batch_size: 3, shuffle: true, drop_last: false, views, part: Part::WHOLE }
    }

    fn pool() -> Arc<rayon::ThreadPool> {
        Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap())
    }

    type Seen = (Vec<u8>, Vec<i64>, Vec<usize>, usize, Vec<Applied>, Vec<[f32; 3]>);

    fn drain(mut loader: Loader) -> Result<Vec<Seen>, DataError> {
        let mut all = Vec::new();
        while let Some(b) = loader.try_next_batch()? {
            all.push((
                b.images.clone(),
                b.labels.clone(),
                b.indices.clone(),
                b.n_ori,
                b.applied.clone(),
                b.lighting.clone(),
            ));
            loader.recycle(b);
        }
        Ok(all)
    }

    fn stream(dir: &Path, views: StreamViews, on_bad: OnBadImage) -> Arc<StreamSource> {
        Arc::new(StreamSource::new(FileList::list(dir).unwrap(), views, on_bad).unwrap())
    }

    /// `source`'s batches, augmented views made by `aug`.
    fn with(source: &Arc<StreamSource>, aug: &Augmenter) -> Arc<dyn BatchSource> {
        Arc::new(Streamed { source: source.clone(), aug: Arc::new(aug.clone()) })
    }

    #[test]
    fn streamed_batches_equal_the_in_memory_batches() {
        let dir = tempfile::tempdir().unwrap();
        for (size, side) in [(Size::Native, (12, 12)), (Size::Square(8), (10, 14))] {
            let _ = std::fs::remove_dir_all(dir.path().join("train"));
            folder(dir.path(), "train", 4, |k| if size == Size::Native { side } else { (side.0 + k as u32, side.1) });
            folder(dir.path(), "test", 1, |_| side);
            let ds = read_imagefolder(dir.path(), size, &mut Silent).unwrap();
            let aug = Augmenter::new(AugName::RandAugment, 2, 28, 4, DatasetName::Cifar10);
            let parts = [Part::WHOLE, Part { rank: 1, world_size: 2 }];
            for (views, part) in [Views::Both, Views::Mixed { prob: 0.5 }]
                .into_iter()
                .zip(parts)
                .chain([(Views::Mixed { prob: 0.5 }, parts[1])])
            {
                let plan = EpochPlan { part, ..plan(views) };
                let memory = Loader::start(Arc::new(ds.train.clone()), plan.clone(), Arc::new(aug.clone()), pool(), 2);
                let source = stream(&dir.path().join("train"), StreamViews::Fixed { size }, OnBadImage::Fail);
                let streamed = Loader::start_source(with(&source, &aug), plan, pool(), 2, 0);
                let (memory, streamed) = (drain(memory).unwrap(), drain(streamed).unwrap());
                assert_eq!(memory.len(), 3);
                assert_eq!(memory, streamed, "{size:?} {views:?} {part:?}");
            }
        }
    }

    #[test]
    fn a_bad_file_is_named_and_refused_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let paths = folder(dir.path(), "train", 3, |_| (48, 48));
        let bytes = std::fs::read(&paths[2]).unwrap(); // a JPEG, cut in its scan data
        std::fs::write(&paths[2], &bytes[..bytes.len() * 3 / 4]).unwrap();
        let train = dir.path().join("train");
        let aug = Augmenter::none();
        let all = Views::Mixed { prob: 1.0 };
        let fail = stream(&train, StreamViews::Fixed { size: Size::Native }, OnBadImage::Fail);
        let err = drain(Loader::start_source(with(&fail, &aug), plan(all), pool(), 1, 0)).unwrap_err().to_string();
        assert!(err.contains("cat/2.jpg") && err.contains("truncated") && err.contains("--on-bad-image skip"), "{err}");

        let skip = stream(&train, StreamViews::Fixed { size: Size::Native }, OnBadImage::Skip);
        let batches = drain(Loader::start_source(with(&skip, &aug), plan(all), pool(), 1, 0)).unwrap();
        let indices: Vec<usize> = batches.iter().flat_map(|b| b.2.clone()).collect();
        assert_eq!(indices.len(), 5, "the five good images, once each");
        // with several processes, a skip would change the global batch on one rank only
        let two = |rank| EpochPlan { part: Part { rank, world_size: 2 }, ..plan(all) };
        let errs: Vec<String> = (0..2)
            .filter_map(|rank| drain(Loader::start_source(with(&skip, &aug), two(rank), pool(), 1, 0)).err())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("cat/2.jpg") && errs[0].contains("one process only"), "{errs:?}");
        assert!(!indices.contains(&2));
        for (images, labels, idx, n_ori, ..) in &batches {
            assert_eq!((images.len(), labels.len(), *n_ori), (idx.len() * 48 * 48 * 3, idx.len(), idx.len()));
            assert!(idx.iter().zip(labels).all(|(&i, &l)| l == (i / 3) as i64));
        }
        let skipped = skip.take_skipped();
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].path.ends_with("cat/2.jpg") && skipped[0].reason.contains("truncated"), "{skipped:?}");
        assert!(skip.take_skipped().is_empty());
    }

    #[test]
    fn imagenet_views_are_the_seeded_transforms_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "train", 3, |k| (60 + 7 * k as u32, 90 - 5 * k as u32));
        let train = dir.path().join("train");
        let transform = ImageNetTrain {
            crop: RandomResizedCrop { size: 16, ..RandomResizedCrop::IMAGENET },
            ..ImageNetTrain::REFERENCE
        };
        let views = |reduced_dct| StreamViews::ImageNetTrain { transform, reduced_dct };
        let p = plan(Views::Mixed { prob: 1.0 });
        let none = Augmenter::none();
        let source = stream(&train, views(false), OnBadImage::Fail);
        let full = drain(Loader::start_source(with(&source, &none), p.clone(), pool(), 2, 0)).unwrap();
        let list = FileList::list(&train).unwrap();
        for (images, _, indices, _, _, lighting) in &full {
            for (k, &i) in indices.iter().enumerate() {
                let (h, w, src) = decode_rgb(&list.path(i)).unwrap();
                let mut want = vec![0u8; 16 * 16 * 3];
                let (_, offset) =
                    transform.view(&src, (h, w), &mut sample_rng(p.seed, p.epoch, i as u64, 0), &mut want);
                assert_eq!(&images[k * 768..(k + 1) * 768], &want[..], "sample {i}");
                assert_eq!(lighting[k], offset);
            }
        }
        // reduced-DCT decoding: the same draws, pixels close to (not equal to) the full decode's
        let reduced = stream(&train, views(true), OnBadImage::Fail);
        let reduced = drain(Loader::start_source(with(&reduced, &none), p.clone(), pool(), 2, 0)).unwrap();
        let (mut diff, mut n, mut changed) = (0u64, 0u64, false);
        for (f, r) in full.iter().zip(&reduced) {
            assert_eq!((&f.2, &f.5), (&r.2, &r.5));
            diff += f.0.iter().zip(&r.0).map(|(a, b)| a.abs_diff(*b) as u64).sum::<u64>();
            n += f.0.len() as u64;
            changed |= f.0 != r.0;
        }
        assert!(changed && diff / n < 12, "mean difference {}", diff as f64 / n as f64);
        // the test view
        let eval = stream(&train, StreamViews::ImageNetEval { size: 224 }, OnBadImage::Fail);
        let eval = drain(Loader::start_source(with(&eval, &none), p, pool(), 2, 0)).unwrap();
        let (h, w, src) = decode_rgb(&list.path(eval[0].2[0])).unwrap();
        let mut want = vec![0u8; 224 * 224 * 3];
        eval_view(&src, (h, w), &mut want);
        assert_eq!(&eval[0].0[..want.len()], &want[..]);
    }

    #[test]
    fn augmented_imagenet_views_are_the_policy_then_the_transform_and_memory_gives_the_same_batches() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "train", 3, |k| (40 + 5 * k as u32, 52 - 3 * k as u32));
        let train = dir.path().join("train");
        let transform = ImageNetTrain::at(16);
        let views = StreamViews::ImageNetTrain { transform, reduced_dct: false };
        let aug = Augmenter::new(AugName::RandAugment, 2, 28, 6, DatasetName::ImageNet);
        let p = plan(Views::Both);
        let source = stream(&train, views.clone(), OnBadImage::Fail);
        let both = drain(Loader::start_source(with(&source, &aug), p.clone(), pool(), 2, 0)).unwrap();
        let list = FileList::list(&train).unwrap();
        let per = 16 * 16 * 3;
        for (images, _, indices, n_ori, applied, lighting) in &both {
            assert_eq!((indices.len(), lighting.len(), applied.len()), (2 * n_ori, 2 * n_ori, *n_ori));
            for (k, &i) in indices.iter().enumerate().skip(*n_ori) {
                let (h, w, src) = decode_rgb(&list.path(i)).unwrap();
                let mut rng = sample_rng(p.seed, p.epoch, i as u64, 1);
                let d = transform.draw(h, w, &mut rng);
                let (img, ops) = aug.kind.before_crop(&src, h, w, &mut rng).unwrap();
                let mut want = vec![0u8; per];
                let offset = transform.apply(&d, &img, (h, w), &mut want);
                let cutout = draw_cutout(6, 16, 16, &mut rng);
                assert_eq!(&images[k * per..(k + 1) * per], &want[..], "augmented view of sample {i}");
                assert_eq!(lighting[k], offset);
                assert_eq!(applied[k - n_ori], Applied { ops, cutout: Some(cutout) });
            }
        }
        // the original views are those of a batch of original views only
        let ori = drain(Loader::start_source(with(&source, &aug), plan(Views::Mixed { prob: 1.0 }), pool(), 2, 0));
        for (b, o) in both.iter().zip(&ori.unwrap()) {
            assert_eq!(&b.0[..b.3 * per], &o.0[..]);
        }
        // held in memory, the same batches
        let mut held = StreamSource::new(FileList::list(&train).unwrap(), views, OnBadImage::Fail).unwrap();
        held.hold_in_memory(&mut Silent).unwrap();
        assert!(held.is_held());
        let held = Arc::new(held);
        std::fs::remove_dir_all(&train).unwrap(); // read from memory only
        assert_eq!(drain(Loader::start_source(with(&held, &aug), p.clone(), pool(), 2, 0)).unwrap(), both);
        let shown = Split::Stream(held).shown_view(&aug, Normalisation::IMAGENET, (p.seed, p.epoch), 4, false);
        let (pixels, applied) = shown.unwrap();
        assert_eq!((pixels.len(), applied.unwrap().cutout.is_some()), (per, true));
    }

    #[test]
    fn held_images_that_cannot_be_decoded_are_refused_or_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let paths = folder(dir.path(), "train", 2, |_| (30, 40));
        std::fs::write(&paths[0], b"not an image").unwrap();
        let train = dir.path().join("train");
        let views = StreamViews::ImageNetTrain { transform: ImageNetTrain::at(8), reduced_dct: false };
        let list = || FileList::list(&train).unwrap();
        let mut fail = StreamSource::new(list(), views.clone(), OnBadImage::Fail).unwrap();
        let err = fail.hold_in_memory(&mut Silent).unwrap_err().to_string();
        assert!(err.contains("cat/0.jpg"), "{err}");
        let mut skip = StreamSource::new(list(), views, OnBadImage::Skip).unwrap();
        skip.hold_in_memory(&mut Silent).unwrap();
        assert_eq!(skip.take_skipped().len(), 1);
        let skip = Arc::new(skip);
        let batches = drain(Loader::start_source(
            with(&skip, &Augmenter::none()),
            plan(Views::Mixed { prob: 1.0 }),
            pool(),
            1,
            0,
        ));
        let indices: Vec<usize> = batches.unwrap().iter().flat_map(|b| b.2.clone()).collect();
        assert_eq!(indices.len(), 3);
        assert!(!indices.contains(&0));
        let reduced = StreamViews::ImageNetTrain { transform: ImageNetTrain::at(8), reduced_dct: true };
        let mut reduced = StreamSource::new(list(), reduced, OnBadImage::Skip).unwrap();
        assert!(reduced.hold_in_memory(&mut Silent).is_err());
    }

    #[test]
    fn reduced_boxes_stay_inside_the_decoded_image() {
        let r = Region { top: 10, left: 3, height: 300, width: 397 };
        assert_eq!(scaled_region(r, DctScale::Half, (175, 200)), Region { top: 5, left: 2, height: 150, width: 198 });
        assert_eq!(scaled_region(r, DctScale::Full, (350, 400)), r);
        let corner = Region { top: 349, left: 399, height: 1, width: 1 };
        assert_eq!(
            scaled_region(corner, DctScale::Eighth, (44, 50)),
            Region { top: 43, left: 49, height: 1, width: 1 }
        );
    }
}
