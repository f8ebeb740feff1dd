//! Conv, BatchNorm and Linear layers with PyTorch's parameter names and initialisations.

use crate::dist::{BatchNormLayer, SyncBatchNorm};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

thread_local! {
    /// Whether layers built on this thread skip initialising their parameters.
    static SKIP_INIT: Cell<bool> = const { Cell::new(false) };
    /// `--sync-bn`: what the BatchNorm layers built on this thread normalise across.
    static SYNC_BN: RefCell<Option<Arc<SyncBatchNorm>>> = const { RefCell::new(None) };
}

/// Runs `build` with the BatchNorm layers it creates normalising training batches with every
/// rank's statistics through `sync` (`--sync-bn`), as torch.nn.SyncBatchNorm.convert_sync_batchnorm
/// makes a model's.
pub fn with_sync_bn<T>(sync: Arc<SyncBatchNorm>, build: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<SyncBatchNorm>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SYNC_BN.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(SYNC_BN.with(|s| s.borrow_mut().replace(sync)));
    build()
}

/// Runs `build` with the parameters of the layers it creates allocated but not initialised
/// (their values are whatever the memory held), for models whose weights are loaded next or
/// whose keys and shapes alone are wanted: allocation is nearly free, initialisation is not.
pub fn without_init<T>(build: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SKIP_INIT.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SKIP_INIT.with(|s| s.replace(true)));
    build()
}

/// A trainable parameter `name` of `shape` under `p`, initialised by `init` unless inside
/// [`without_init`].
fn param(p: &nn::Path, name: &str, shape: &[i64], init: Init) -> Tensor {
    if SKIP_INIT.with(|s| s.get()) {
        p.add(name, Tensor::empty(shape, (Kind::Float, p.device())), true)
    } else {
        p.var(name, shape, init)
    }
}

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
    groups: i64,
}

impl Conv2d {
    /// A `cin -> cout` convolution with kernel `k` and "same" padding `k / 2`.
    pub fn new(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64, bias: bool, init: ConvInit) -> Self {
        Self::grouped(p, cin, cout, k, stride, 1, bias, init)
    }

    /// A convolution whose channels are split into `groups` independent groups (ResNeXt).
    #[allow(clippy::too_many_arguments)] // nn.Conv2d's own arguments, in its order
    pub fn grouped(
        p: &nn::Path,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        groups: i64,
        bias: bool,
        init: ConvInit,
    ) -> Self {
        let fan_in = (cin / groups * k * k) as f64;
        let w_init = match init {
            ConvInit::Default => Init::Uniform { lo: -1.0 / fan_in.sqrt(), up: 1.0 / fan_in.sqrt() },
            ConvInit::KaimingNormalFanOut => Init::Randn { mean: 0.0, stdev: (2.0 / (cout * k * k) as f64).sqrt() },
        };
        let weight = param(p, "weight", &[cout, cin / groups, k, k], w_init);
        let bias = bias
            .then(|| param(p, "bias", &[cout], Init::Uniform { lo: -1.0 / fan_in.sqrt(), up: 1.0 / fan_in.sqrt() }));
        Conv2d { weight, bias, stride, padding: k / 2, groups }
    }

    /// Applies the convolution in the input's precision (fp32 weights are cast for a bf16 input).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (w, b) = (cast(&self.weight, xs), self.bias.as_ref().map(|b| cast(b, xs)));
        xs.conv2d(&w, b.as_ref(), [self.stride], [self.padding], [1], self.groups)
    }
}

/// BatchNorm2d (momentum 0.1, eps 1e-5) with `weight`, `bias`, `running_mean`, `running_var`
/// and `num_batches_tracked`, initialised as PyTorch does; built inside [`with_sync_bn`], its
/// training forwards use every rank's batch statistics.
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    sync: Option<Arc<SyncBatchNorm>>,
}

impl BatchNorm2d {
    /// A BatchNorm over `c` channels.
    pub fn new(p: &nn::Path, c: i64) -> Self {
        let weight = param(p, "weight", &[c], Init::Const(1.0));
        let bias = param(p, "bias", &[c], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[c]);
        let running_var = p.ones_no_train("running_var", &[c]);
        let _ = p.add("num_batches_tracked", Tensor::zeros([], (Kind::Int64, p.device())), false);
        let sync = SYNC_BN.with(|s| s.borrow().clone());
        BatchNorm2d { weight, bias, running_mean, running_var, sync }
    }

    /// Normalises with batch statistics (updating the running ones) when `train`, else with the
    /// running ones. With `--sync-bn` the batch is every rank's; after a failed collective the
    /// layer falls back to its own batch and the step reports the failure.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if let (Some(sync), true) = (&self.sync, train) {
            let layer = BatchNormLayer {
                weight: &self.weight,
                bias: &self.bias,
                running_mean: &self.running_mean,
                running_var: &self.running_var,
                momentum: 0.1,
                eps: 1e-5,
            };
            if let Some(y) = sync.forward(xs, &layer) {
                return y;
            }
        }
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
        let weight = param(p, "weight", &[cout, cin], Init::Uniform { lo: -bound, up: bound });
        let bias = param(p, "bias", &[cout], Init::Uniform { lo: -bound, up: bound });
        Linear { weight, bias }
    }

    /// This layer with its bias set to zero (the shake-shake networks' initialisation).
    pub fn zero_bias(self) -> Self {
        tch::no_grad(|| {
            let mut bias = self.bias.shallow_clone();
            let _ = bias.zero_();
        });
        self
    }

    /// Applies the layer in the input's precision.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.linear(&cast(&self.weight, xs), Some(&cast(&self.bias, xs)))
    }
}
