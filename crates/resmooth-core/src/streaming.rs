//! The streaming source: an image folder listed once and decoded every epoch, file by file, by the
//! loader's rayon pool straight into the batch layout of [`crate::pipeline`], with the loader's
//! prefetch. Memory holds the file list (names only) and the batches in flight, whatever the
//! dataset's size. Every view is drawn from the generator of (seed, epoch, sample, view), as in
//! memory, so a streamed epoch gives the batches an in-memory epoch gives, and resume and
//! determinism keep working. A file that cannot be read stops the epoch with its name
//! (`--on-bad-image fail`) or is left out of its batch and reported (`skip`).

use crate::augment::imagenet::{eval_view, ImageNetTrain, TrainDraw, IMAGENET_SIZE};
use crate::augment::{Applied, Augmenter};
use crate::data::jpeg::DctScale;
use crate::data::resize::Region;
use crate::data::stream::{BadImage, FileList, OnBadImage};
use crate::data::{decode_bytes, image_size, is_jpeg, DataError, Size};
use crate::pipeline::{sample_rng, view_of, Batch, BatchSource, EpochPlan};
use rayon::prelude::*;
use std::sync::Mutex;

/// How the views of a streamed folder are made.
#[derive(Debug, Clone)]
pub enum StreamViews {
    /// The views of `aug` (crop + flip and the `--aug` policy), of images decoded at `size`, as
    /// an in-memory folder makes them.
    Fixed { size: Size, aug: Augmenter },
    /// The reference's ImageNet training view, with libjpeg-turbo's reduced-DCT decoding when
    /// `reduced_dct` (opt-in: its pixels are not Pillow's). Original views only, for now: the
    /// augmented view (the `--aug` policy, then this transform) comes with `--dataset imagenet`.
    /// The crop, flip, jitter and lighting are drawn from the image's size (its header) before
    /// decoding, so the draws do not depend on the decoding scale.
    ImageNetTrain { transform: ImageNetTrain, reduced_dct: bool },
    /// The reference's ImageNet test view: `Resize(256, BICUBIC)` + `CenterCrop(224)`.
    ImageNetEval,
}

/// An image folder split read file by file.
pub struct StreamSource {
    files: FileList,
    views: StreamViews,
    on_bad: OnBadImage,
    /// (height, width) of every view.
    view_size: (usize, usize),
    skipped: Mutex<Vec<BadImage>>,
}

/// What making one view gave besides its pixels.
#[derive(Default)]
struct Made {
    applied: Option<Applied>,
    lighting: Option<[f32; 3]>,
}

impl StreamSource {
    /// A source over `files` making `views`; a `Fixed` source of `Size::Native` takes the size of
    /// its first file (read from the header), which every file must share.
    pub fn new(files: FileList, views: StreamViews, on_bad: OnBadImage) -> Result<StreamSource, DataError> {
        if files.is_empty() {
            return Err(DataError::Invalid("a streamed split needs at least one image".into()));
        }
        let view_size = match &views {
            StreamViews::Fixed { size: Size::Square(s), .. } => (*s, *s),
            StreamViews::Fixed { size: Size::Native, .. } => {
                let first = files.path(0);
                let bytes = std::fs::read(&first).map_err(|e| DataError::io(&first, e))?;
                image_size(&first, &bytes)?
            }
            StreamViews::ImageNetTrain { transform, .. } => (transform.size(), transform.size()),
            StreamViews::ImageNetEval => (IMAGENET_SIZE, IMAGENET_SIZE),
        };
        Ok(StreamSource { files, views, on_bad, view_size, skipped: Mutex::new(Vec::new()) })
    }

    /// The (height, width) of every view.
    pub fn view_size(&self) -> (usize, usize) {
        self.view_size
    }

    /// The files and classes of the split.
    pub fn files(&self) -> &FileList {
        &self.files
    }

    /// The images left out since the last call (`--on-bad-image skip`), in the order met.
    pub fn take_skipped(&self) -> Vec<BadImage> {
        self.skipped.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }

    /// Reads sample `index` and writes its view into `out`.
    fn view(&self, index: usize, original: bool, plan: &EpochPlan, out: &mut [u8]) -> Result<Made, DataError> {
        let path = self.files.path(index);
        match &self.views {
            StreamViews::Fixed { size, aug } => {
                let (h, w) = self.view_size;
                let mut img = vec![0u8; h * w * 3];
                crate::data::decode_into(&path, *size, (h, w), &self.files.path(0), &mut img)?;
                let applied = view_of(&img, (h, w), aug, (plan.seed, plan.epoch, index), original, out);
                Ok(Made { applied, lighting: None })
            }
            StreamViews::ImageNetTrain { transform, reduced_dct } => {
                let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                let (h, w) = image_size(&path, &bytes)?;
                let mut rng = sample_rng(plan.seed, plan.epoch, index as u64, 0);
                let d = transform.draw(h, w, &mut rng);
                let scale = if *reduced_dct && is_jpeg(&bytes) {
                    DctScale::for_crop(d.region.height, d.region.width, transform.size())
                } else {
                    DctScale::Full
                };
                let (sh, sw, rgb) = decode_bytes(&path, &bytes, scale)?;
                if scale == DctScale::Full && (sh, sw) != (h, w) {
                    return Err(DataError::malformed(
                        &path,
                        format!("decodes to {sw}x{sh} but its header says {w}x{h}"),
                    ));
                }
                let region = scaled_region(d.region, scale, (sh, sw));
                let offset = transform.apply(&TrainDraw { region, ..d }, &rgb, (sh, sw), out);
                Ok(Made { applied: None, lighting: Some(offset) })
            }
            StreamViews::ImageNetEval => {
                let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                let (h, w, rgb) = decode_bytes(&path, &bytes, DctScale::Full)?;
                eval_view(&rgb, (h, w), out);
                Ok(Made::default())
            }
        }
    }
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

impl BatchSource for StreamSource {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn fill(&self, indices: &[usize], plan: &EpochPlan, batch: &mut Batch) -> Result<(), DataError> {
        let (h, w) = self.view_size;
        let per = h * w * 3;
        let slots = plan.views.slots(indices);
        if slots.iter().any(|s| !s.1) && !matches!(self.views, StreamViews::Fixed { .. }) {
            return Err(DataError::Invalid(
                "the streaming source makes no augmented ImageNet views yet; use original views only (--prob 1.0)"
                    .into(),
            ));
        }
        (batch.height, batch.width) = (h, w);
        batch.images.resize(slots.len() * per, 0);
        let made: Vec<Result<Made, DataError>> = batch
            .images
            .par_chunks_mut(per)
            .zip(slots.par_iter())
            .map(|(out, &(i, original))| self.view(i, original, plan, out))
            .collect();
        // keep the slots that were made, in order, moving their pixels down over the holes
        let mut kept = Vec::with_capacity(slots.len());
        for (k, (&(i, original), m)) in slots.iter().zip(made).enumerate() {
            match m {
                Ok(m) => kept.push((k, i, original, m)),
                Err(e) if self.on_bad == OnBadImage::Fail => return Err(e),
                Err(e) => {
                    if let Ok(mut s) = self.skipped.lock() {
                        s.push(BadImage { index: i, path: self.files.path(i), reason: e.to_string() });
                    }
                }
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
        batch.lighting.clear();
        if kept.iter().any(|k| k.3.lighting.is_some()) {
            batch.lighting.extend(kept.iter().map(|k| k.3.lighting.unwrap_or([0.0; 3])));
        }
        batch.applied = kept.into_iter().filter_map(|k| k.3.applied).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::imagenet::RandomResizedCrop;
    use crate::config::{AugName, DatasetName};
    use crate::data::{decode_rgb, read_imagefolder};
    use crate::pipeline::{Loader, Views};
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
        EpochPlan { seed: 11, epoch: 3, batch_size: 3, shuffle: true, drop_last: false, views }
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

    #[test]
    fn streamed_batches_equal_the_in_memory_batches() {
        let dir = tempfile::tempdir().unwrap();
        for (size, side) in [(Size::Native, (12, 12)), (Size::Square(8), (10, 14))] {
            let _ = std::fs::remove_dir_all(dir.path().join("train"));
            folder(dir.path(), "train", 4, |k| if size == Size::Native { side } else { (side.0 + k as u32, side.1) });
            folder(dir.path(), "test", 1, |_| side);
            let ds = read_imagefolder(dir.path(), size, &mut Silent).unwrap();
            let aug = Augmenter::new(AugName::RandAugment, 2, 28, 4, DatasetName::Cifar10);
            for views in [Views::Both, Views::Mixed { prob: 0.5 }] {
                let memory = Loader::start(Arc::new(ds.train.clone()), plan(views), Arc::new(aug.clone()), pool(), 2);
                let source =
                    stream(&dir.path().join("train"), StreamViews::Fixed { size, aug: aug.clone() }, OnBadImage::Fail);
                let streamed = Loader::start_source(source, plan(views), pool(), 2, 0);
                let (memory, streamed) = (drain(memory).unwrap(), drain(streamed).unwrap());
                assert_eq!(memory.len(), 3);
                assert_eq!(memory, streamed, "{size:?} {views:?}");
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
        let fail = stream(&train, StreamViews::Fixed { size: Size::Native, aug: aug.clone() }, OnBadImage::Fail);
        let err = drain(Loader::start_source(fail, plan(all), pool(), 1, 0)).unwrap_err().to_string();
        assert!(err.contains("cat/2.jpg") && err.contains("truncated"), "{err}");

        let skip = stream(&train, StreamViews::Fixed { size: Size::Native, aug }, OnBadImage::Skip);
        let batches = drain(Loader::start_source(skip.clone(), plan(all), pool(), 1, 0)).unwrap();
        let indices: Vec<usize> = batches.iter().flat_map(|b| b.2.clone()).collect();
        assert_eq!(indices.len(), 5, "the five good images, once each");
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
        let full = drain(Loader::start_source(stream(&train, views(false), OnBadImage::Fail), p.clone(), pool(), 2, 0))
            .unwrap();
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
        let reduced =
            drain(Loader::start_source(stream(&train, views(true), OnBadImage::Fail), p.clone(), pool(), 2, 0))
                .unwrap();
        let (mut diff, mut n, mut changed) = (0u64, 0u64, false);
        for (f, r) in full.iter().zip(&reduced) {
            assert_eq!((&f.2, &f.5), (&r.2, &r.5));
            diff += f.0.iter().zip(&r.0).map(|(a, b)| a.abs_diff(*b) as u64).sum::<u64>();
            n += f.0.len() as u64;
            changed |= f.0 != r.0;
        }
        assert!(changed && diff / n < 12, "mean difference {}", diff as f64 / n as f64);
        // the test view, and no augmented ImageNet views yet
        let eval =
            drain(Loader::start_source(stream(&train, StreamViews::ImageNetEval, OnBadImage::Fail), p, pool(), 2, 0))
                .unwrap();
        let (h, w, src) = decode_rgb(&list.path(eval[0].2[0])).unwrap();
        let mut want = vec![0u8; 224 * 224 * 3];
        eval_view(&src, (h, w), &mut want);
        assert_eq!(&eval[0].0[..want.len()], &want[..]);
        let both =
            Loader::start_source(stream(&train, views(false), OnBadImage::Skip), plan(Views::Both), pool(), 2, 0);
        let err = drain(both).unwrap_err().to_string();
        assert!(err.contains("--prob 1.0"), "{err}");
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
