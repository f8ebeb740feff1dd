//! Conv, BatchNorm and Linear layers with PyTorch's parameter names and initialisations.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// `t` in the kind of `like` (a no-op when they agree): mixed precision keeps fp32 master
/// weights and computes convolutions and matrix products in bf16, as autocast does.
fn cast(t: &Tensor, like: &Tensor) -> Tensor {
    if t.kind() == like.kind() {
        t.shallow_clone()
    } else {
        t.to_kind(like.kind())
    }
}

/// How a convolution's weight is initialised.
#[derive(Debug, Clone, Copy)]
pub enum ConvInit {
    /// PyTorch's default: kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Default,
    /// torchvision ResNet: kaiming_normal(mode = fan_out, relu), std = sqrt(2 / fan_out).
    KaimingNormalFanOut,
}

/// A 2-D convolution with square kernel, `weight` (and `bias`) named as in PyTorch.
#[derive(Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// A `cin -> cout` convolution with kernel `k` and "same" padding `k / 2`.
    pub fn new(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64, bias: bool, init: ConvInit) -> Self {
        let fan_in = (cin * k * k) as f64;
        let w_init = match init {
            ConvInit::Default => Init::Uniform { lo: -1.0 / fan_in.sqrt(), up: 1.0 / fan_in.sqrt() },
            ConvInit::KaimingNormalFanOut => Init::Randn { mean: 0.0, stdev: (2.0 / (cout * k * k) as f64).sqrt() },
        };
        let weight = p.var("weight", &[cout, cin, k, k], w_init);
        let bias =
            bias.then(|| p.var("bias", &[cout], Init::Uniform { lo: -1.0 / fan_in.sqrt(), up: 1.0 / fan_in.sqrt() }));
        Conv2d { weight, bias, stride, padding: k / 2 }
    }

    /// Applies the convolution in the input's precision (fp32 weights are cast for a bf16 input).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (w, b) = (cast(&self.weight, xs), self.bias.as_ref().map(|b| cast(b, xs)));
        xs.conv2d(&w, b.as_ref(), [self.stride], [self.padding], [1], 1)
    }
}

/// BatchNorm2d (momentum 0.1, eps 1e-5) with `weight`, `bias`, `running_mean`, `running_var`
/// and `num_batches_tracked`, initialised as PyTorch does.
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm2d {
    /// A BatchNorm over `c` channels.
    pub fn new(p: &nn::Path, c: i64) -> Self {
        let weight = p.var("weight", &[c], Init::Const(1.0));
        let bias = p.var("bias", &[c], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[c]);
        let running_var = p.ones_no_train("running_var", &[c]);
        let _ = p.add("num_batches_tracked", Tensor::zeros([], (Kind::Int64, p.device())), false);
        BatchNorm2d { weight, bias, running_mean, running_var }
    }

    /// Normalises with batch statistics (updating the running ones) when `train`, else with the running ones.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            true,
        )
    }
}

/// A fully connected layer with PyTorch's default initialisation.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// A `cin -> cout` layer.
    pub fn new(p: &nn::Path, cin: i64, cout: i64) -> Self {
        let bound = 1.0 / (cin as f64).sqrt();
        let weight = p.var("weight", &[cout, cin], Init::Uniform { lo: -bound, up: bound });
        let bias = p.var("bias", &[cout], Init::Uniform { lo: -bound, up: bound });
        Linear { weight, bias }
    }

    /// Applies the layer in the input's precision.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.linear(&cast(&self.weight, xs), Some(&cast(&self.bias, xs)))
    }
}
