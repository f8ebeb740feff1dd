//! What a finished training epoch leaves for the logs beyond its metrics line: the per-sample
//! statistics the reference collects (read from the device once per epoch) and the two views of
//! one sample. The engine hands them to the TensorBoard writer as an [`EpochRecord`].

use super::EpochMetrics;

/// The statistics of one part of the training batches (the original views or the augmented
/// views) over an epoch, as the reference's `statistics` collect them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartStats {
    /// The part's batch loss averaged over the epoch, each batch weighted by its whole size (the
    /// reference's `loss_org` / `loss_aug`; a batch without the part counts 0).
    pub loss: f64,
    /// The part's two per-sample terms, by name, averaged the same way: `ce` and `uniform` (label
    /// smoothing) or `ce` and `kl` (Distillation). Empty when no batch had the part.
    pub terms: Vec<(&'static str, f64)>,
    /// `log(ce + 1e-10)` of every sample of the part, in training order.
    pub log_losses: Vec<f32>,
}

/// The per-sample statistics of one training epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochStats {
    pub origin: PartStats,
    pub augmentation: PartStats,
    /// The smoothing `(1 - p_ID) * eps` of every sample trained with a sample-wise criterion
    /// (the reference's `smooth`); empty for the other criteria.
    pub smoothing: Vec<f32>,
}

/// An RGB image, HWC bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The image as PNG bytes.
    pub fn png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        image::write_buffer_with_format(
            &mut std::io::Cursor::new(&mut out),
            &self.pixels,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .expect("an RGB buffer of its own size encodes as PNG");
        out
    }
}

/// The original and the augmented view of one training sample in an epoch, as the reference
/// shows them (the first sample of the epoch's last batch).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleViews {
    /// The sample's index in the training split.
    pub index: usize,
    pub original: RgbImage,
    pub augmented: RgbImage,
}

/// Everything the logs get of one finished epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochRecord<'a> {
    pub metrics: &'a EpochMetrics,
    /// `None` under `--fair-comparison` (the reference collects no statistics there).
    pub stats: Option<&'a EpochStats>,
    pub views: Option<&'a SampleViews>,
}
