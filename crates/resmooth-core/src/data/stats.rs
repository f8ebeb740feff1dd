//! The normalisation of a folder dataset: the per-channel mean and standard deviation of its
//! training pixels (on the [0, 1] scale), cached beside the data in [`STATS_FILE`] and reused
//! while the training files and the image size are unchanged.

use super::decode::{decode_into, decode_rgb, Size, DECODERS};
use super::{DataError, ImageSet, Normalisation};
use crate::progress::{Progress, Unit};
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The cache file, in the dataset's root folder.
pub const STATS_FILE: &str = "resmooth-normalisation.json";

/// Exact per-channel histograms of uint8 values.
type Histograms = [[u64; 256]; 3];

/// Adds the values of the HWC pixels `rgb` to `hist`.
fn count(mut hist: Histograms, rgb: &[u8]) -> Histograms {
    for px in rgb.chunks_exact(3) {
        hist[0][px[0] as usize] += 1;
        hist[1][px[1] as usize] += 1;
        hist[2][px[2] as usize] += 1;
    }
    hist
}

/// The sum of two sets of histograms.
fn merge(mut a: Histograms, b: Histograms) -> Histograms {
    for (a, b) in a.iter_mut().zip(&b) {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    }
    a
}

/// Per-channel mean and population standard deviation of every pixel of `set`, on [0, 1].
pub fn pixel_statistics(set: &ImageSet) -> Normalisation {
    // exact per-channel histograms, then the moments from them in f64
    let hist = set.pixels.par_chunks(3 << 16).fold(|| [[0; 256]; 3], count).reduce(|| [[0; 256]; 3], merge);
    moments(&hist)
}

/// Per-channel mean and population standard deviation from per-channel histograms of uint8
/// values, on [0, 1].
fn moments(hist: &[[u64; 256]; 3]) -> Normalisation {
    let (mut mean, mut std) = ([0f32; 3], [0f32; 3]);
    for c in 0..3 {
        let n: u64 = hist[c].iter().sum();
        let n = n.max(1) as f64;
        let m = hist[c].iter().enumerate().map(|(v, &k)| v as f64 / 255.0 * k as f64).sum::<f64>() / n;
        let var = hist[c].iter().enumerate().map(|(v, &k)| (v as f64 / 255.0 - m).powi(2) * k as f64).sum::<f64>() / n;
        mean[c] = m as f32;
        std[c] = var.sqrt() as f32;
    }
    Normalisation { mean, std }
}

/// What the cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    /// MD5 of the training files' names, sizes and modification times, the image size and the decoders.
    fingerprint: String,
    images: usize,
    height: usize,
    width: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

/// A fingerprint of the training files (relative names, sizes, modification times), `size` and
/// the decoders (statistics cached from another decoder's pixels are computed again).
fn fingerprint(root: &Path, files: &[(PathBuf, i64)], size: Size) -> Result<String, DataError> {
    let mut hasher = Md5::new();
    hasher.update(format!("{size:?}\n{DECODERS}\n").as_bytes());
    for (path, label) in files {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let rel = path.strip_prefix(root).unwrap_or(path);
        let line = format!("{}\t{label}\t{}\t{}\n", rel.display(), meta.len(), modified.map_or(0, |d| d.as_nanos()));
        hasher.update(line.as_bytes());
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The normalisation of the folder dataset at `root` whose training split `set` was read from
/// `files` at `size`: from [`STATS_FILE`] when it matches them, else computed and cached (a
/// cache that cannot be written is only noted to `progress`).
pub(crate) fn folder_normalisation(
    root: &Path,
    files: &[(PathBuf, i64)],
    size: Size,
    set: &ImageSet,
    progress: &mut dyn Progress,
) -> Result<Normalisation, DataError> {
    cached_or(root, files, size, progress, |_| Ok((pixel_statistics(set), (set.height, set.width))))
}

/// The normalisation of a streamed folder (its training `files`, labelled, decoded at `size`): the cached
/// statistics while the files and size are unchanged, else one pass over the files, decoded in
/// parallel and counted into per-channel histograms (memory bounded), then cached.
pub(crate) fn streamed_normalisation(
    root: &Path,
    files: &[(PathBuf, i64)],
    size: Size,
    progress: &mut dyn Progress,
) -> Result<Normalisation, DataError> {
    cached_or(root, files, size, progress, |progress| {
        let Some((first, _)) = files.first() else {
            return Err(DataError::Invalid("a streamed split needs at least one image".into()));
        };
        let (h, w) = match size {
            Size::Square(s) => (s, s),
            Size::Native => {
                let (h, w, _) = decode_rgb(first)?;
                (h, w)
            }
        };
        let mut hist = [[0; 256]; 3];
        progress.start("computing the normalisation of the training images", Some(files.len() as u64), 0, Unit::Steps);
        for (k, chunk) in files.chunks(1024).enumerate() {
            let part = chunk
                .par_iter()
                .map(|(path, _)| {
                    let mut img = vec![0u8; h * w * 3];
                    decode_into(path, size, (h, w), first, &mut img)?;
                    Ok(count([[0; 256]; 3], &img))
                })
                .collect::<Result<Vec<_>, DataError>>()?;
            hist = part.into_iter().fold(hist, merge);
            progress.advance((k * 1024 + chunk.len()) as u64, "");
        }
        progress.finish();
        Ok((moments(&hist), (h, w)))
    })
}

/// The normalisation cached in [`STATS_FILE`] under `root` when it was computed from `files` at
/// `size`, else what `compute` gives (with the images' height and width), cached for next time
/// (a cache that cannot be written is only noted to `progress`).
fn cached_or(
    root: &Path,
    files: &[(PathBuf, i64)],
    size: Size,
    progress: &mut dyn Progress,
    compute: impl FnOnce(&mut dyn Progress) -> Result<(Normalisation, (usize, usize)), DataError>,
) -> Result<Normalisation, DataError> {
    let path = root.join(STATS_FILE);
    let key = fingerprint(root, files, size)?;
    let cached = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok());
    if let Some(c) = cached.filter(|c| c.fingerprint == key && c.images == files.len()) {
        return Ok(Normalisation { mean: c.mean, std: c.std });
    }
    let (norm, (height, width)) = compute(progress)?;
    let record = Cached { fingerprint: key, images: files.len(), height, width, mean: norm.mean, std: norm.std };
    let text = serde_json::to_string_pretty(&record).expect("the statistics serialise");
    if let Err(e) = crate::io::write_atomic(&path, text.as_bytes()) {
        progress.note(&format!("normalisation not cached ({e}); it is computed again next time"));
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn statistics_are_the_pixel_moments() {
        let mut set = ImageSet::new(1, 2);
        set.push(&[0, 255, 51, 255, 255, 51], 0);
        set.push(&[0, 0, 51, 255, 0, 51], 0);
        let n = pixel_statistics(&set);
        assert_eq!(n.mean, [0.5, 0.5, 0.2]);
        assert_eq!(n.std, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn the_cache_is_reused_until_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        std::fs::write(&file, b"x").unwrap();
        let files = vec![(file.clone(), 0)];
        let mut set = ImageSet::new(1, 1);
        set.push(&[255, 0, 0], 0);
        let first = folder_normalisation(dir.path(), &files, Size::Native, &set, &mut Silent).unwrap();
        assert_eq!(first.mean, [1.0, 0.0, 0.0]);
        // other pixels with the same files: the cached values come back
        let mut other = ImageSet::new(1, 1);
        other.push(&[0, 0, 255], 0);
        assert_eq!(folder_normalisation(dir.path(), &files, Size::Native, &other, &mut Silent).unwrap(), first);
        // another image size or changed files: computed again
        let resized = folder_normalisation(dir.path(), &files, Size::Square(8), &other, &mut Silent).unwrap();
        assert_eq!(resized.mean, [0.0, 0.0, 1.0]);
        std::fs::write(&file, b"longer").unwrap();
        assert_eq!(folder_normalisation(dir.path(), &files, Size::Native, &set, &mut Silent).unwrap(), first);
        let cache: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(STATS_FILE)).unwrap()).unwrap();
        assert_eq!(cache["images"], 1);
    }
}
