//! ResNet-18 for 32x32 inputs: torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool,
//! laid out as the reference's `feature` (Sequential) + `classifier` modules.

use super::layers::{BatchNorm2d, Conv2d, ConvInit, Linear};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let init = ConvInit::KaimingNormalFanOut;
        let downsample = (stride != 1 || cin != cout).then(|| {
            let d = p / "downsample";
            (Conv2d::new(&(&d / "0"), cin, cout, 1, stride, false, init), BatchNorm2d::new(&(&d / "1"), cout))
        });
        BasicBlock {
            conv1: Conv2d::new(&(p / "conv1"), cin, cout, 3, stride, false, init),
            bn1: BatchNorm2d::new(&(p / "bn1"), cout),
            conv2: Conv2d::new(&(p / "conv2"), cout, cout, 3, 1, false, init),
            bn2: BatchNorm2d::new(&(p / "bn2"), cout),
            downsample,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train);
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(xs), train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// The reference's `resnet18` model.
#[derive(Debug)]
pub struct ResNet18 {
    stem: Conv2d,
    bn: BatchNorm2d,
    layers: Vec<BasicBlock>,
    classifier: Linear,
}

impl ResNet18 {
    /// Builds the model under `p` with `num_classes` outputs.
    pub fn new(p: &nn::Path, num_classes: i64) -> Self {
        let f = p / "feature";
        // the stem is a fresh nn.Conv2d in the reference, so it keeps PyTorch's default init
        let stem = Conv2d::new(&(&f / "0"), 3, 64, 3, 1, false, ConvInit::Default);
        let bn = BatchNorm2d::new(&(&f / "1"), 64);
        let mut layers = Vec::new();
        let mut cin = 64;
        // feature.2 is the ReLU; feature.3..=6 are layer1..layer4
        for (i, cout) in [64, 128, 256, 512].into_iter().enumerate() {
            let l = &f / (i + 3);
            let stride = if i == 0 { 1 } else { 2 };
            layers.push(BasicBlock::new(&(&l / "0"), cin, cout, stride));
            layers.push(BasicBlock::new(&(&l / "1"), cout, cout, 1));
            cin = cout;
        }
        let classifier = Linear::new(&(p / "classifier"), 512, num_classes);
        ResNet18 { stem, bn, layers, classifier }
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self.bn.forward_t(&self.stem.forward(xs), train).relu();
        for block in &self.layers {
            x = block.forward_t(&x, train);
        }
        let x = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        self.classifier.forward(&x)
    }
}
