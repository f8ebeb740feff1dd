//! A batch's way to the device: one copy of its uint8 views (pinned and asynchronous on a GPU),
//! normalised there as the dataset says, cutout boxes zeroed after normalisation. The batches
//! themselves are made in `resmooth_core::pipeline`; `crate::pipeline` shows both as one module.

use resmooth_core::augment::cutout::fill_cutout;
use resmooth_core::data::Normalisation;
use resmooth_core::pipeline::Batch;
use tch::{Device, Kind, Tensor};

/// Copies a host tensor to `device`: through pinned memory and asynchronously on a GPU, so the
/// CPU does not wait for the GPU to catch up.
pub fn upload(host: Tensor, device: Device) -> Tensor {
    if device.is_cuda() {
        let kind = host.kind();
        host.pin_memory(device).to_device_(device, kind, true, false)
    } else {
        host
    }
}

/// The normalisations made into tensors so far, per thread: (device, values, mean, std).
type NormCache = Vec<(Device, Normalisation, Tensor, Tensor)>;

thread_local! {
    static NORMALISATION: std::cell::RefCell<NormCache> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The per-channel mean and std of `norm` as `[1, 3, 1, 1]` tensors on `device`, made once per
/// thread, device and normalisation.
fn normalisation(device: Device, norm: Normalisation) -> (Tensor, Tensor) {
    NORMALISATION.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, _, m, s)) = cache.iter().find(|(d, n, _, _)| *d == device && *n == norm) {
            return (m.shallow_clone(), s.shallow_clone());
        }
        let m = Tensor::from_slice(&norm.mean).view([1, 3, 1, 1]).to_device(device);
        let s = Tensor::from_slice(&norm.std).view([1, 3, 1, 1]).to_device(device);
        cache.push((device, norm, m.shallow_clone(), s.shallow_clone()));
        (m, s)
    })
}

/// Where and how a batch of images goes: the device, whether it keeps the NHWC memory order
/// (`--memory-format channels_last`), and the dataset's normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub device: Device,
    pub channels_last: bool,
    pub norm: Normalisation,
}

/// Moves `n` HWC uint8 images of size `h` x `w` to the device of `to` in one copy (pinned and
/// asynchronous on a GPU) and normalises them there with `to.norm`: NCHW float,
/// `(x / 255 - mean) / std`; `cutouts` (per image, or empty) are zeroed after normalisation.
pub fn to_device(
    images: &[u8],
    (n, h, w): (usize, usize, usize),
    cutouts: &[Option<[u16; 4]>],
    to: Placement,
) -> Tensor {
    to_device_lit(images, (n, h, w), cutouts, &[], to)
}

/// [`to_device`] with `lighting` (per image, or empty) added to the [0, 1] floats before the
/// normalisation: `(x / 255 + offset - mean) / std`, the float32 operations of the reference's
/// ToTensor, Lighting and Normalize in their order.
pub fn to_device_lit(
    images: &[u8],
    (n, h, w): (usize, usize, usize),
    cutouts: &[Option<[u16; 4]>],
    lighting: &[[f32; 3]],
    to: Placement,
) -> Tensor {
    let device = to.device;
    let x = upload(Tensor::from_slice(images).view([n as i64, h as i64, w as i64, 3]), device);
    let (mean, std) = normalisation(device, to.norm);
    // the permuted NHWC bytes are a channels_last NCHW view; elementwise ops keep that layout
    let x = x.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0;
    let x = if lighting.is_empty() {
        x
    } else {
        x + upload(Tensor::from_slice(lighting.as_flattened()).view([n as i64, 3, 1, 1]), device)
    };
    let x = (x - mean) / std;
    let x = if to.channels_last { x } else { x.contiguous() };
    if cutouts.iter().all(Option::is_none) {
        return x;
    }
    let mut mask = vec![1f32; n * h * w];
    for (image_mask, c) in mask.chunks_exact_mut(h * w).zip(cutouts) {
        if let Some(c) = *c {
            fill_cutout(image_mask, w, c, &[0.0]);
        }
    }
    x * upload(Tensor::from_slice(&mask).view([n as i64, 1, h as i64, w as i64]), device)
}

/// Uploads a [`Batch`] (a trait because the batch is the core crate's type).
pub trait Upload {
    /// The batch as a normalised float tensor placed as `to` says, and its labels.
    fn upload(&self, to: Placement) -> (Tensor, Tensor);
}

impl Upload for Batch {
    fn upload(&self, to: Placement) -> (Tensor, Tensor) {
        let mut cutouts = vec![None; self.n_ori];
        cutouts.extend(self.applied.iter().map(|a| a.cutout));
        let x = to_device_lit(&self.images, (self.len(), self.height, self.width), &cutouts, &self.lighting, to);
        (x, upload(Tensor::from_slice(&self.labels), to.device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_device_normalises_and_applies_cutout() {
        let img = vec![255u8; 2 * 2 * 2 * 3];
        let cpu = Placement { device: Device::Cpu, channels_last: false, norm: Normalisation::CIFAR };
        let x = to_device(&img, (2, 2, 2), &[None, Some([0, 1, 0, 2])], cpu);
        assert_eq!(x.size(), vec![2, 3, 2, 2]);
        assert_eq!(x.stride(), vec![12, 4, 2, 1]);
        let cl = to_device(&img, (2, 2, 2), &[None, Some([0, 1, 0, 2])], Placement { channels_last: true, ..cpu });
        assert_eq!(cl.stride(), vec![12, 1, 6, 3], "channels_last keeps the NHWC order");
        assert!(cl.allclose(&x, 0.0, 0.0, false));
        let Normalisation { mean, std } = Normalisation::CIFAR;
        let want = (1.0 - mean[1]) / std[1];
        assert!((x.double_value(&[0, 1, 1, 1]) - want as f64).abs() < 1e-5);
        assert_eq!(x.double_value(&[1, 0, 0, 1]), 0.0);
        assert!((x.double_value(&[1, 2, 1, 0]) - ((1.0 - mean[2]) / std[2]) as f64).abs() < 1e-5);
    }

    #[test]
    fn each_dataset_is_normalised_with_its_own_statistics() {
        let img = vec![128u8; 2 * 2 * 3];
        let own = Normalisation { mean: [0.5, 0.25, 0.0], std: [0.5, 0.25, 2.0] };
        for norm in [Normalisation::CIFAR, own, Normalisation::TINY, own] {
            let x = to_device(&img, (1, 2, 2), &[], Placement { device: Device::Cpu, channels_last: false, norm });
            for c in 0..3 {
                let want = (128.0 / 255.0 - norm.mean[c] as f64) / norm.std[c] as f64;
                assert!((x.double_value(&[0, c as i64, 1, 0]) - want).abs() < 1e-5, "{norm:?} channel {c}");
            }
        }
    }

    #[test]
    fn lighting_offsets_equal_the_reference_torch_expression() {
        use rand::SeedableRng;
        use rand_chacha::ChaCha8Rng;
        use resmooth_core::augment::imagenet::Lighting;
        // eigvec.clone().mul(alpha.view(1, 3).expand(3, 3)).mul(eigval.view(1, 3).expand(3, 3)).sum(1)
        let l = Lighting::IMAGENET;
        let eigvec = Tensor::from_slice(&l.eigvec.concat()).view([3, 3]);
        let eigval = Tensor::from_slice(&l.eigval);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for k in 0..500 {
            let alphas = if k < 3 { [0.0, -0.0, [0.0, 1e-30, -1e-30][k]] } else { l.draw(&mut rng) };
            let alpha = Tensor::from_slice(&alphas);
            let rgb = eigvec
                .copy()
                .g_mul(&alpha.view([1, 3]).expand([3, 3], false))
                .g_mul(&eigval.view([1, 3]).expand([3, 3], false));
            let want = Vec::<f32>::try_from(rgb.sum_dim_intlist(1, false, Kind::Float)).unwrap();
            let got = l.offset(alphas);
            assert_eq!(
                got.map(f32::to_bits).to_vec(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{alphas:?}"
            );
        }
    }
}
