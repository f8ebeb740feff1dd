//! Pre-activation WideResNet-28-10 (convs with bias, dropout 0, BatchNorm momentum 0.1), with the
//! reference's module names and PyTorch's default initialisation.

use super::layers::{BatchNorm2d, Conv2d, ConvInit, Linear};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
struct WideBasic {
    bn1: BatchNorm2d,
    conv1: Conv2d,
    bn2: BatchNorm2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl WideBasic {
    fn new(p: &nn::Path, cin: i64, planes: i64, stride: i64) -> Self {
        let init = ConvInit::Default;
        WideBasic {
            bn1: BatchNorm2d::new(&(p / "bn1"), cin),
            conv1: Conv2d::new(&(p / "conv1"), cin, planes, 3, 1, true, init),
            bn2: BatchNorm2d::new(&(p / "bn2"), planes),
            conv2: Conv2d::new(&(p / "conv2"), planes, planes, 3, stride, true, init),
            shortcut: (stride != 1 || cin != planes)
                .then(|| Conv2d::new(&(p / "shortcut" / "0"), cin, planes, 1, stride, true, init)),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        // dropout has rate 0 in wresnet28_10, so it is the identity and is left out
        let out = self.conv1.forward(&self.bn1.forward_t(xs, train).relu());
        let out = self.conv2.forward(&self.bn2.forward_t(&out, train).relu());
        match &self.shortcut {
            Some(conv) => out + conv.forward(xs),
            None => out + xs,
        }
    }
}

/// The reference's `WideResNet(depth, widen_factor)`; `wresnet28_10` is depth 28, width 10.
#[derive(Debug)]
pub struct WideResNet {
    conv1: Conv2d,
    blocks: Vec<WideBasic>,
    bn1: BatchNorm2d,
    linear: Linear,
}

impl WideResNet {
    /// Builds a WideResNet of `depth` (6n + 4) and `widen` factor under `p`.
    pub fn new(p: &nn::Path, depth: usize, widen: i64, num_classes: i64) -> Self {
        assert!((depth - 4).is_multiple_of(6), "WideResNet depth must be 6n + 4");
        let n = (depth - 4) / 6;
        let stages = [16, 16 * widen, 32 * widen, 64 * widen];
        let conv1 = Conv2d::new(&(p / "conv1"), 3, stages[0], 3, 1, true, ConvInit::Default);
        let mut blocks = Vec::new();
        let mut cin = stages[0];
        for layer in 0..3 {
            let lp = p / format!("layer{}", layer + 1);
            for b in 0..n {
                let stride = if b == 0 && layer > 0 { 2 } else { 1 };
                blocks.push(WideBasic::new(&(&lp / b), cin, stages[layer + 1], stride));
                cin = stages[layer + 1];
            }
        }
        let bn1 = BatchNorm2d::new(&(p / "bn1"), cin);
        let linear = Linear::new(&(p / "linear"), cin, num_classes);
        WideResNet { conv1, blocks, bn1, linear }
    }
}

impl ModuleT for WideResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self.conv1.forward(xs);
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        let x = self.bn1.forward_t(&x, train).relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        self.linear.forward(&x)
    }
}
