//! `small_cnn`: ours, not the reference's. A small network for the built-in demo dataset, so
//! that the whole method runs in minutes on a laptop's CPU: three conv-BN-ReLU-max-pool stages
//! (16, 32 and 64 channels, 32x32 → 4x4), global average pooling and a linear classifier,
//! 24 thousand parameters (ResNet-18 has 11.2 million). Its state_dict keys are those of
//! the PyTorch module in `scripts/check_weights.py` (`features.<n>` of an `nn.Sequential`,
//! `classifier`), which loads its weights with `strict=True`.

use super::layers::{BatchNorm2d, Conv2d, ConvInit, Linear};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The channels of the three stages.
const WIDTHS: [i64; 3] = [16, 32, 64];
/// Modules per stage in `features`: conv, BatchNorm, ReLU, max-pool.
const PER_STAGE: usize = 4;

/// The `small_cnn` model.
#[derive(Debug)]
pub struct SmallCnn {
    stages: Vec<(Conv2d, BatchNorm2d)>,
    classifier: Linear,
}

impl SmallCnn {
    /// Builds the model under `p` with `num_classes` outputs, with PyTorch's default initialisation.
    pub fn new(p: &nn::Path, num_classes: i64) -> Self {
        let f = p / "features";
        let mut cin = 3;
        let stages = WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &cout)| {
                let at = i * PER_STAGE;
                let conv = Conv2d::new(&(&f / at), cin, cout, 3, 1, false, ConvInit::Default);
                cin = cout;
                (conv, BatchNorm2d::new(&(&f / (at + 1)), cout))
            })
            .collect();
        SmallCnn { stages, classifier: Linear::new(&(p / "classifier"), cin, num_classes) }
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (conv, bn) in &self.stages {
            x = bn.forward_t(&conv.forward(&x), train).relu().max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        }
        self.classifier.forward(&x.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
    }
}
