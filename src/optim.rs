//! SGD with momentum, Nesterov and weight decay on every parameter, as torch.optim.SGD computes
//! it, with momentum buffers that can be saved and restored for resuming.
//!
//! Training uses the fused step: one `at::_fused_sgd_` call for all parameters (through the C++
//! shim in src/shim/, since tch's bindings leave that op out), with the learning rate held in a
//! tensor on the device, instead of about five kernels per parameter tensor. On the CPU it gives
//! the weights torch.optim.SGD gives, bit for bit; the per-parameter step, written with tch's
//! tensor ops (a separate multiply and add where PyTorch fuses them), stays as the reference
//! the fused one is tested against and agrees with it to float32 rounding.

pub use crate::config::SgdKernel;
use std::ffi::{c_char, c_int, c_void, CStr};
use tch::{Device, Kind, Tensor};

/// The C++ shim (src/shim/optim.cpp, built by build.rs).
mod shim {
    use std::ffi::{c_char, c_int, c_void};

    extern "C" {
        pub fn resmooth_free_error(error: *mut c_char);
        pub fn resmooth_fused_sgd(
            params: *const *const c_void,
            grads: *const *const c_void,
            buffers: *const *const c_void,
            n: usize,
            weight_decay: f64,
            momentum: f64,
            lr: *const c_void,
            dampening: f64,
            nesterov: c_int,
            first_step: c_int,
        ) -> *mut c_char;
        pub fn resmooth_grads_to_none(params: *const *const c_void, n: usize) -> *mut c_char;
    }
}

/// Panics with the shim's error message, if it returned one: a failing ATen op, as tch's own
/// tensor ops panic on one.
fn check(error: *mut c_char, what: &str) {
    if error.is_null() {
        return;
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, released once here.
    let message = unsafe {
        let m = CStr::from_ptr(error).to_string_lossy().into_owned();
        shim::resmooth_free_error(error);
        m
    };
    panic!("{what} failed in libtorch: {message}");
}

/// The raw tch tensor pointers of `tensors`, as the shim takes them.
fn raw<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Vec<*const c_void> {
    tensors.into_iter().map(|t| t.as_ptr() as *const c_void).collect()
}

/// SGD state: the parameters (by state_dict key) and their momentum buffers.
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    kernel: SgdKernel,
    /// The fused step's learning rate: the value last written and the one-element tensor on the
    /// parameters' device that holds it.
    lr: Option<(f64, Tensor)>,
}

impl Sgd {
    /// An optimizer over the trainable variables of `vs`, with the fused step.
    pub fn new(vs: &tch::nn::VarStore, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = (0..params.len()).map(|_| None).collect();
        Sgd { params, buffers, momentum, weight_decay, nesterov, kernel: SgdKernel::Fused, lr: None }
    }

    /// The same optimizer with the step computed by `kernel`.
    pub fn with_kernel(mut self, kernel: SgdKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// How the step is computed.
    pub fn kernel(&self) -> SgdKernel {
        self.kernel
    }

    /// Drops the gradients, as PyTorch's `zero_grad()` does (`set_to_none`): the next backward
    /// pass writes them afresh, with no zeroing kernel and no accumulation.
    pub fn zero_grad(&mut self) {
        let params = raw(self.params.iter().map(|(_, p)| p));
        // SAFETY: the pointers are live tch tensors owned by `self.params`.
        check(unsafe { shim::resmooth_grads_to_none(params.as_ptr(), params.len()) }, "zero_grad");
    }

    /// One update with learning rate `lr`:
    /// d = g + wd p; b = m b + d (b = d at the first step); d = d + m b (Nesterov) or b; p -= lr d.
    /// Parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        match self.kernel {
            SgdKernel::Fused => self.fused_step(lr),
            SgdKernel::PerParameter => self.per_parameter_step(lr),
        }
    }

    /// The per-parameter step: five tensor ops for each parameter tensor.
    fn per_parameter_step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(self.buffers.iter_mut()) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut d = if self.weight_decay != 0.0 { g + &*p * self.weight_decay } else { g };
                if self.momentum != 0.0 {
                    let b = match buf {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                            b
                        }
                        None => buf.insert(d.detach().copy()),
                    };
                    d = if self.nesterov { d + &*b * self.momentum } else { b.shallow_clone() };
                }
                let _ = p.g_sub_(&(d * lr));
            }
        });
    }

    /// The fused step: the parameters that have a gradient, in (at most) two `_fused_sgd_`
    /// calls, one for those whose momentum buffer exists and one for those taking their first
    /// step (whose buffers it fills).
    fn fused_step(&mut self, lr: f64) {
        let Some(device) = self.params.first().map(|(_, p)| p.device()) else { return };
        let lr = self.lr_tensor(lr, device);
        let momentum = self.momentum != 0.0;
        let (mut later, mut first) = (Group::default(), Group::default());
        for ((_, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let group = if buf.is_some() || !momentum { &mut later } else { &mut first };
            if momentum {
                group.buffers.push(buf.get_or_insert_with(|| p.empty_like()).shallow_clone());
            }
            group.params.push(p.shallow_clone());
            group.grads.push(g);
        }
        for (group, first_step) in [(later, false), (first, true)] {
            group.run(self.weight_decay, self.momentum, &lr, self.nesterov, first_step);
        }
    }

    /// Writes `lr` to the device tensor the fused step reads, as a step at `lr` would: called
    /// before a CUDA graph of the step is captured or replayed, so that the captured step
    /// itself writes nothing and reads the rate of the step being replayed.
    pub fn set_lr(&mut self, lr: f64) {
        if let Some(device) = self.params.first().map(|(_, p)| p.device()) {
            let _ = self.lr_tensor(lr, device);
        }
    }

    /// The learning rate as a one-element float32 tensor on `device`, written only when it changes.
    fn lr_tensor(&mut self, lr: f64, device: Device) -> Tensor {
        match &mut self.lr {
            Some((value, t)) if t.device() == device => {
                if *value != lr {
                    let _ = t.fill_(lr);
                    *value = lr;
                }
                t.shallow_clone()
            }
            slot => {
                let t = Tensor::from_slice(&[lr]).to_kind(Kind::Float).to_device(device);
                *slot = Some((lr, t.shallow_clone()));
                t
            }
        }
    }

    /// The momentum buffers by parameter key (those that exist yet).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .filter_map(|((k, _), b)| b.as_ref().map(|b| (k.clone(), b.shallow_clone())))
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::state`]; unknown keys or shapes are an error.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<(), String> {
        for (k, t) in state {
            let i = self
                .params
                .iter()
                .position(|(pk, _)| *pk == k)
                .ok_or_else(|| format!("optimizer state for unknown parameter {k}"))?;
            let p = &self.params[i].1;
            if t.size() != p.size() {
                return Err(format!("optimizer state for {k} has shape {:?}, expected {:?}", t.size(), p.size()));
            }
            // the buffer takes the parameter's memory layout, as the fused kernel requires
            let mut b = p.empty_like();
            tch::no_grad(|| b.copy_(&t));
            self.buffers[i] = Some(b);
        }
        Ok(())
    }
}

/// The parameters of one `_fused_sgd_` call, with their gradients and momentum buffers.
#[derive(Default)]
struct Group {
    params: Vec<Tensor>,
    grads: Vec<Tensor>,
    buffers: Vec<Tensor>,
}

impl Group {
    fn run(&self, weight_decay: f64, momentum: f64, lr: &Tensor, nesterov: bool, first_step: bool) {
        if self.params.is_empty() {
            return;
        }
        let (params, grads, buffers) = (raw(&self.params), raw(&self.grads), raw(&self.buffers));
        // SAFETY: every pointer is a live tch tensor held by `self` or `lr` for the whole call;
        // `buffers` is empty (momentum 0) or as long as `params`.
        let error = unsafe {
            shim::resmooth_fused_sgd(
                params.as_ptr(),
                grads.as_ptr(),
                buffers.as_ptr(),
                params.len(),
                weight_decay,
                momentum,
                lr.as_ptr() as *const c_void,
                0.0,
                nesterov as c_int,
                first_step as c_int,
            )
        };
        check(error, "the fused SGD step");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

    /// Two steps on f(p) = sum(p^2) / 2 (gradient p) against the hand-computed torch.optim.SGD
    /// values, with either kernel.
    #[test]
    fn matches_torch_sgd_with_nesterov_and_weight_decay() {
        for kernel in SgdKernel::ALL.iter().copied() {
            let vs = nn::VarStore::new(Device::Cpu);
            let p = vs.root().var("w", &[1], nn::Init::Const(1.0));
            let mut opt = Sgd::new(&vs, 0.9, 0.1, true).with_kernel(kernel);
            let (lr, m, wd) = (0.5, 0.9, 0.1);
            let (mut want, mut b) = (1.0f64, 0.0f64);
            for step in 0..3 {
                opt.zero_grad();
                (&p * &p / 2.0).sum(Kind::Float).backward();
                opt.step(lr);
                let d = want + wd * want;
                b = if step == 0 { d } else { m * b + d };
                want -= lr * (d + m * b);
                assert!((p.double_value(&[0]) - want).abs() < 1e-6, "{kernel} step {step}");
            }
            // restoring the buffers gives the same next step
            let state: Vec<_> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
            let mut fresh = Sgd::new(&vs, 0.9, 0.1, true).with_kernel(kernel);
            fresh.load_state(state).unwrap();
            assert!((fresh.state()[0].1.double_value(&[0]) - b).abs() < 1e-6);
            assert!(fresh.load_state(vec![("nope".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu)))]).is_err());
        }
    }

    /// Deterministic values in [-1, 1] of shape `shape` for `phase` (tests run in parallel and
    /// share torch's global generator, so these draw nothing from it).
    fn wave(shape: &[i64], phase: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.754_877 + phase).sin().view(shape)
    }

    /// A VarStore with parameters of ResNet shapes (conv, BatchNorm, linear) filled from `seed`.
    fn params(seed: i64) -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        for (i, (name, shape)) in
            [("conv", &[16i64, 8, 3, 3][..]), ("bn_weight", &[16]), ("bn_bias", &[16]), ("fc", &[10, 64])]
                .into_iter()
                .enumerate()
        {
            let mut v = root.var(name, shape, nn::Init::Const(0.0));
            tch::no_grad(|| v.copy_(&(wave(shape, seed as f64 + i as f64) * 3.0)));
        }
        vs
    }

    /// Runs `steps` steps of `opt` over `vs` with gradients made from `seed` (the gradient of
    /// sum(p * r) is r); the parameter `skip` gets no gradient at step 1.
    fn run(vs: &nn::VarStore, opt: &mut Sgd, steps: usize, seed: i64, skip: &str) {
        let vars = vs.variables();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for step in 0..steps {
            opt.zero_grad();
            let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
            for (i, name) in names.iter().enumerate() {
                if step != 1 || name.as_str() != skip {
                    let r = wave(&vars[*name].size(), (seed * 100 + step as i64 * 10 + i as i64) as f64);
                    loss += (&vars[*name] * r).sum(Kind::Float);
                }
            }
            loss.backward();
            opt.step(0.1 + 0.05 * step as f64);
        }
    }

    /// The largest difference between the same parameters of two stores.
    fn max_diff(a: &nn::VarStore, b: &nn::VarStore) -> f64 {
        let (a, b) = (a.variables(), b.variables());
        a.iter().map(|(k, t)| (t - &b[k]).abs().max().double_value(&[])).fold(0.0, f64::max)
    }

    /// The fused step gives the per-parameter step's weights and momentum buffers after several
    /// steps (Nesterov or not, with weight decay, a changing learning rate, a parameter without a
    /// gradient for one step), to float32 rounding; a step without Nesterov or without weight
    /// decay is far outside that tolerance.
    #[test]
    fn fused_step_gives_the_per_parameter_weights() {
        // a few float32 ulps of weights that reach about 10 (the two differ by about one)
        const TOLERANCE: f64 = 1e-5;
        for nesterov in [true, false] {
            let (fused_vs, reference_vs) = (params(1), params(1));
            let mut fused = Sgd::new(&fused_vs, 0.9, 0.05, nesterov);
            let mut reference = Sgd::new(&reference_vs, 0.9, 0.05, nesterov).with_kernel(SgdKernel::PerParameter);
            run(&fused_vs, &mut fused, 6, 7, "bn_bias");
            run(&reference_vs, &mut reference, 6, 7, "bn_bias");
            let diff = max_diff(&fused_vs, &reference_vs);
            assert!(diff < TOLERANCE, "nesterov {nesterov}: weights differ by {diff}");
            for ((k, a), (_, b)) in fused.state().iter().zip(reference.state()) {
                let d = (a - b).abs().max().double_value(&[]);
                assert!(d < TOLERANCE, "nesterov {nesterov}: momentum of {k} differs by {d}");
            }
            // the tolerance sees a wrong rule
            for (momentum, wd, nest) in [(0.9, 0.05, !nesterov), (0.9, 0.0, nesterov), (0.8, 0.05, nesterov)] {
                let other_vs = params(1);
                let mut other = Sgd::new(&other_vs, momentum, wd, nest);
                run(&other_vs, &mut other, 6, 7, "bn_bias");
                assert!(max_diff(&other_vs, &reference_vs) > 100.0 * TOLERANCE);
            }
        }
    }

    /// A resumed fused optimizer continues as the uninterrupted one, bit for bit.
    #[test]
    fn fused_state_round_trips() {
        let (a_vs, b_vs) = (params(2), params(2));
        let mut a = Sgd::new(&a_vs, 0.9, 5e-4, true);
        run(&a_vs, &mut a, 2, 3, "");
        let mut b = Sgd::new(&b_vs, 0.9, 5e-4, true);
        run(&b_vs, &mut b, 2, 3, "");
        let saved: Vec<_> = b.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let mut b = Sgd::new(&b_vs, 0.9, 5e-4, true);
        b.load_state(saved).unwrap();
        run(&a_vs, &mut a, 2, 4, "");
        run(&b_vs, &mut b, 2, 4, "");
        assert_eq!(max_diff(&a_vs, &b_vs), 0.0);
    }
}
