//! The reference's ImageNet-style bottleneck ResNets (`resnet50`, `resnet200`): a 7x7 stride-2
//! stem and a 3x3 stride-2 max-pool, four stages of bottleneck blocks, global average pooling and
//! `fc`. Every convolution is initialised kaiming-normal (fan out), as the reference's loop does.

use super::layers::{BatchNorm2d, Conv2d, ConvInit, Linear};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Output channels of a bottleneck block per channel of its 3x3 convolution.
const EXPANSION: i64 = 4;

#[derive(Debug)]
struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Bottleneck {
    /// 1x1 to `planes`, 3x3 with `stride`, 1x1 to `planes * 4`; a projection when the shape changes.
    fn new(p: &nn::Path, cin: i64, planes: i64, stride: i64) -> Self {
        let init = ConvInit::KaimingNormalFanOut;
        let cout = planes * EXPANSION;
        let downsample = (stride != 1 || cin != cout).then(|| {
            let d = p / "downsample";
            (Conv2d::new(&(&d / "0"), cin, cout, 1, stride, false, init), BatchNorm2d::new(&(&d / "1"), cout))
        });
        Bottleneck {
            conv1: Conv2d::new(&(p / "conv1"), cin, planes, 1, 1, false, init),
            bn1: BatchNorm2d::new(&(p / "bn1"), planes),
            conv2: Conv2d::new(&(p / "conv2"), planes, planes, 3, stride, false, init),
            bn2: BatchNorm2d::new(&(p / "bn2"), planes),
            conv3: Conv2d::new(&(p / "conv3"), planes, cout, 1, 1, false, init),
            bn3: BatchNorm2d::new(&(p / "bn3"), cout),
            downsample,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train).relu();
        let out = self.bn3.forward_t(&self.conv3.forward(&out), train);
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(xs), train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// The reference's `ResNet(dataset='imagenet', depth, bottleneck=True)`.
#[derive(Debug)]
pub struct BottleneckResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<Bottleneck>,
    fc: Linear,
}

impl BottleneckResNet {
    /// Builds the ResNet of `depth` (50 or 200) under `p` with `num_classes` outputs.
    pub fn new(p: &nn::Path, depth: usize, num_classes: i64) -> Self {
        let stages = match depth {
            50 => [3, 4, 6, 3],
            200 => [3, 24, 36, 3],
            _ => panic!("the reference registers bottleneck ResNets of depth 50 and 200, not {depth}"),
        };
        let conv1 = Conv2d::new(&(p / "conv1"), 3, 64, 7, 2, false, ConvInit::KaimingNormalFanOut);
        let bn1 = BatchNorm2d::new(&(p / "bn1"), 64);
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (i, (planes, n)) in [64, 128, 256, 512].into_iter().zip(stages).enumerate() {
            let layer = p / format!("layer{}", i + 1);
            for b in 0..n {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::new(&(&layer / b), cin, planes, stride));
                cin = planes * EXPANSION;
            }
        }
        let fc = Linear::new(&(p / "fc"), cin, num_classes);
        BottleneckResNet { conv1, bn1, blocks, fc }
    }
}

impl ModuleT for BottleneckResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        let mut x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        self.fc.forward(&x.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
    }
}
