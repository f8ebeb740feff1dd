//! Shake-shake networks of depth 26 as the reference builds them: `shakeshake26_2x{32,64,96,112}d`
//! (two residual branches of basic blocks) and `shakeshake26_2x96d_next` (two ResNeXt bottleneck
//! branches). In training the branches are mixed per sample by `a` in the forward pass and by an
//! independent `b` in the backward pass (a, b ~ U(0, 1)); in evaluation by 0.5.

use super::layers::{BatchNorm2d, Conv2d, ConvInit, Linear};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// The shake-shake mix of two branch outputs (N, C, H, W): in training, with coefficients drawn
/// per sample, `a x1 + (1 - a) x2` forward and gradients `b`, `1 - b` to `x1`, `x2` (the
/// reference's autograd function draws `b` in its backward pass); in evaluation `(x1 + x2) / 2`.
pub fn shake(x1: &Tensor, x2: &Tensor, train: bool) -> Tensor {
    if !train {
        return (x1 + x2) * 0.5;
    }
    let draw = || Tensor::rand([x1.size()[0], 1, 1, 1], (Kind::Float, x1.device())).to_kind(x1.kind());
    let (a, b) = (draw(), draw());
    mix(x1, x2, &a, &b)
}

/// `a x1 + (1 - a) x2` whose gradient is that of `b x1 + (1 - b) x2`: the difference between
/// the two mixes is added as a constant (detached), so the forward pass mixes by `a` and
/// autograd differentiates the mix by `b`.
pub fn mix(x1: &Tensor, x2: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let d = x1 - x2;
    let forward_only = (&d * (a - b)).detach();
    x2 + &d * b + forward_only
}

/// The projection of a block whose width changes: ReLU, then two 1x1 convolutions with
/// `stride`, the second on the input shifted by one pixel up and left (zero-filled), their
/// outputs concatenated and batch-normalised.
#[derive(Debug)]
struct Shortcut {
    conv1: Conv2d,
    conv2: Conv2d,
    bn: BatchNorm2d,
    stride: i64,
}

impl Shortcut {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let init = ConvInit::KaimingNormalFanOut;
        Shortcut {
            conv1: Conv2d::new(&(p / "conv1"), cin, cout / 2, 1, 1, false, init),
            conv2: Conv2d::new(&(p / "conv2"), cin, cout / 2, 1, 1, false, init),
            bn: BatchNorm2d::new(&(p / "bn"), cout),
            stride,
        }
    }

    /// The two halves before BatchNorm.
    fn project(&self, xs: &Tensor) -> Tensor {
        let h = xs.relu();
        let (height, width, s) = (h.size()[2], h.size()[3], self.stride);
        let shifted = h.slice(2, 1, height, 1).slice(3, 1, width, 1).constant_pad_nd([0, 1, 0, 1]);
        let every = |t: &Tensor| t.slice(2, 0, height, s).slice(3, 0, width, s);
        Tensor::cat(&[self.conv1.forward(&every(&h)), self.conv2.forward(&every(&shifted))], 1)
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.project(xs), train)
    }
}

/// One residual branch: conv-BN pairs with a ReLU between them (and, for the basic branch,
/// before the first), laid out as the reference's `nn.Sequential` (its ReLUs take indices too).
#[derive(Debug)]
struct Branch {
    relu_first: bool,
    layers: Vec<(Conv2d, BatchNorm2d)>,
}

/// A convolution of a branch: input and output channels, kernel, stride and groups.
type ConvShape = (i64, i64, i64, i64, i64);

impl Branch {
    fn new(p: &nn::Path, relu_first: bool, convs: &[ConvShape]) -> Self {
        let mut index = usize::from(relu_first);
        let layers = convs
            .iter()
            .map(|&(cin, cout, k, stride, groups)| {
                let conv =
                    Conv2d::grouped(&(p / index), cin, cout, k, stride, groups, false, ConvInit::KaimingNormalFanOut);
                let bn = BatchNorm2d::new(&(p / (index + 1)), cout);
                index += 3; // conv, BN, ReLU
                (conv, bn)
            })
            .collect();
        Branch { relu_first, layers }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = if self.relu_first { xs.relu() } else { xs.shallow_clone() };
        for (i, (conv, bn)) in self.layers.iter().enumerate() {
            if i > 0 {
                x = x.relu();
            }
            x = bn.forward_t(&conv.forward(&x), train);
        }
        x
    }
}

/// Two branches mixed by [`shake`], plus the input or, where the width changes, its projection.
#[derive(Debug)]
struct ShakeBlock {
    branch1: Branch,
    branch2: Branch,
    shortcut: Option<Shortcut>,
}

impl ShakeBlock {
    /// A block of two basic branches (ReLU-conv3x3-BN-ReLU-conv3x3-BN).
    fn basic(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let convs = [(cin, cout, 3, stride, 1), (cout, cout, 3, 1, 1)];
        // The reference builds a projection for every block (`equal_io and None or Shortcut(..)`
        // is never None) and uses it only where the width changes: the unused one is still part
        // of its parameters and state_dict, untouched by training (its gradient stays empty).
        let shortcut = Shortcut::new(&(p / "shortcut"), cin, cout, stride);
        ShakeBlock {
            branch1: Branch::new(&(p / "branch1"), true, &convs),
            branch2: Branch::new(&(p / "branch2"), true, &convs),
            shortcut: (cin != cout).then_some(shortcut),
        }
    }

    /// A block of two bottleneck branches (conv1x1-BN-ReLU-grouped conv3x3-BN-ReLU-conv1x1-BN).
    fn bottleneck(p: &nn::Path, cin: i64, mid: i64, cout: i64, groups: i64, stride: i64) -> Self {
        let convs = [(cin, mid, 1, 1, 1), (mid, mid, 3, stride, groups), (mid, cout, 1, 1, 1)];
        ShakeBlock {
            branch1: Branch::new(&(p / "branch1"), false, &convs),
            branch2: Branch::new(&(p / "branch2"), false, &convs),
            shortcut: (cin != cout).then(|| Shortcut::new(&(p / "shortcut"), cin, cout, stride)),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = shake(&self.branch1.forward_t(xs, train), &self.branch2.forward_t(xs, train), train);
        match &self.shortcut {
            Some(s) => h + s.forward_t(xs, train),
            None => h + xs,
        }
    }
}

/// A shake-shake network: a 3x3 `c_in` stem (with bias), three stages `layer1..3` of blocks,
/// ReLU, global average pooling and `fc_out` (zero bias, as the reference initialises it).
#[derive(Debug)]
pub struct ShakeNet {
    c_in: Conv2d,
    blocks: Vec<ShakeBlock>,
    fc_out: Linear,
}

impl ShakeNet {
    /// `shakeshake26_2x{width}d`: a 16-channel stem, then four blocks per stage of widths
    /// `width`, `2 width`, `4 width` (the first block of stages 2 and 3 with stride 2).
    pub fn resnet26(p: &nn::Path, width: i64, num_classes: i64) -> Self {
        let c_in = Conv2d::new(&(p / "c_in"), 3, 16, 3, 1, true, ConvInit::KaimingNormalFanOut);
        let mut blocks = Vec::new();
        let mut cin = 16;
        for (i, cout) in [width, 2 * width, 4 * width].into_iter().enumerate() {
            let layer = p / format!("layer{}", i + 1);
            for b in 0..4 {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                blocks.push(ShakeBlock::basic(&(&layer / b), cin, cout, stride));
                cin = cout;
            }
        }
        Self::with_head(p, c_in, blocks, cin, num_classes)
    }

    /// `shakeshake26_2x{width}d_next`: a 64-channel stem, then two bottleneck blocks per stage
    /// with `4 n` outputs and `n (width / 64) groups` middle channels, for n = 64, 128, 256.
    pub fn resnext26(p: &nn::Path, width: i64, groups: i64, num_classes: i64) -> Self {
        let c_in = Conv2d::new(&(p / "c_in"), 3, 64, 3, 1, true, ConvInit::KaimingNormalFanOut);
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (i, n) in [64, 128, 256].into_iter().enumerate() {
            let layer = p / format!("layer{}", i + 1);
            let (mid, cout) = (n * (width / 64) * groups, 4 * n);
            for b in 0..2 {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                blocks.push(ShakeBlock::bottleneck(&(&layer / b), cin, mid, cout, groups, stride));
                cin = cout;
            }
        }
        Self::with_head(p, c_in, blocks, cin, num_classes)
    }

    fn with_head(p: &nn::Path, c_in: Conv2d, blocks: Vec<ShakeBlock>, width: i64, num_classes: i64) -> Self {
        let fc_out = Linear::new(&(p / "fc_out"), width, num_classes).zero_bias();
        ShakeNet { c_in, blocks, fc_out }
    }
}

impl ModuleT for ShakeNet {
    /// The reference pools with an 8x8 window, which is the global average for the 32x32 images
    /// it trains on; pooling globally gives the same logits there and works at any size.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self.c_in.forward(xs);
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        self.fc_out.forward(&x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn leaf(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).reshape([2, 1, 1, 2]).set_requires_grad(true)
    }

    #[test]
    fn mix_uses_a_forward_and_b_backward_per_sample() {
        let (x1, x2) = (leaf(&[1.0, 2.0, 3.0, 4.0]), leaf(&[-1.0, 0.5, 2.0, 8.0]));
        let a = Tensor::from_slice(&[0.25f32, 0.9]).reshape([2, 1, 1, 1]);
        let b = Tensor::from_slice(&[0.6f32, 0.1]).reshape([2, 1, 1, 1]);
        let out = mix(&x1, &x2, &a, &b);
        let want = &a * &x1 + (1.0 - &a) * &x2;
        assert!(f64::try_from((&out - &want).abs().max()).unwrap() < 1e-6);
        out.sum(Kind::Float).backward();
        let expand = |t: &Tensor| t.expand([2, 1, 1, 2], false);
        assert!(x1.grad().allclose(&expand(&b), 1e-6, 1e-6, false), "{}", x1.grad());
        assert!(x2.grad().allclose(&expand(&(1.0 - &b)), 1e-6, 1e-6, false), "{}", x2.grad());
    }

    #[test]
    fn training_draws_per_sample_coefficients_and_evaluation_averages() {
        tch::manual_seed(0);
        let x1 = Tensor::randn([64, 3, 2, 2], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([64, 3, 2, 2], (Kind::Float, Device::Cpu));
        let eval = shake(&x1, &x2, false);
        assert!(eval.allclose(&((&x1 + &x2) * 0.5), 0.0, 0.0, false));
        let train = shake(&x1, &x2, true);
        // a = (out - x2) / (x1 - x2) is one value per sample, in [0, 1], not the same for all
        let a = ((&train - &x2) / (&x1 - &x2)).flatten(1, -1);
        let spread_within = (a.max_dim(1, false).0 - a.min_dim(1, false).0).abs().max();
        assert!(f64::try_from(spread_within).unwrap() < 1e-3);
        let per_sample = a.select(1, 0);
        assert!(
            f64::try_from(per_sample.min()).unwrap() >= -1e-4 && f64::try_from(per_sample.max()).unwrap() <= 1.0001
        );
        assert!(f64::try_from(per_sample.std(true)).unwrap() > 0.1, "coefficients are drawn per sample");
    }

    #[test]
    fn shortcut_shifts_the_second_half_by_one_pixel() {
        let vs = nn::VarStore::new(Device::Cpu);
        let s = Shortcut::new(&vs.root(), 1, 2, 2);
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                if v.dim() == 4 {
                    let _ = v.fill_(1.0);
                }
            }
        });
        // 4x4 image 0..15 (and a negative copy the ReLU zeroes): the first half samples (0,0),
        // (0,2), (2,0), (2,2); the second, shifted, (1,1), (1,3), (3,1), (3,3)
        let x = Tensor::arange(16, (Kind::Float, Device::Cpu)).reshape([1, 1, 4, 4]);
        let h = tch::no_grad(|| s.project(&Tensor::cat(&[&x, &(-&x)], 0)));
        assert_eq!(h.size(), [2, 2, 2, 2]);
        assert_eq!(f64::try_from(h.get(1).abs().sum(Kind::Float)).unwrap(), 0.0);
        let h = h.get(0);
        let got = Vec::<f32>::try_from(h.flatten(0, -1)).unwrap();
        assert_eq!(got, [0.0, 2.0, 8.0, 10.0, 5.0, 7.0, 13.0, 15.0]);
    }
}
