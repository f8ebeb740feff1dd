//! SGD with momentum, Nesterov and weight decay on every parameter, as torch.optim.SGD computes
//! it, with momentum buffers that can be saved and restored for resuming.

use tch::Tensor;

/// SGD state: the parameters (by state_dict key) and their momentum buffers.
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Sgd {
    /// An optimizer over the trainable variables of `vs`.
    pub fn new(vs: &tch::nn::VarStore, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = (0..params.len()).map(|_| None).collect();
        Sgd { params, buffers, momentum, weight_decay, nesterov }
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`:
    /// d = g + wd p; b = m b + d (b = d at the first step); d = d + m b (Nesterov) or b; p -= lr d.
    pub fn step(&mut self, lr: f64) {
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
            self.buffers[i] = Some(t.to_kind(p.kind()).to_device(p.device()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// Two steps on f(p) = sum(p^2) / 2 (gradient p) against the hand-computed torch.optim.SGD values.
    #[test]
    fn matches_torch_sgd_with_nesterov_and_weight_decay() {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root().var("w", &[1], nn::Init::Const(1.0));
        let mut opt = Sgd::new(&vs, 0.9, 0.1, true);
        let (lr, m, wd) = (0.5, 0.9, 0.1);
        let (mut want, mut b) = (1.0f64, 0.0f64);
        for step in 0..3 {
            opt.zero_grad();
            (&p * &p / 2.0).sum(Kind::Float).backward();
            opt.step(lr);
            let d = want + wd * want;
            b = if step == 0 { d } else { m * b + d };
            want -= lr * (d + m * b);
            assert!((p.double_value(&[0]) - want).abs() < 1e-6, "step {step}");
        }
        // restoring the buffers gives the same next step
        let state: Vec<_> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let mut fresh = Sgd::new(&vs, 0.9, 0.1, true);
        fresh.load_state(state).unwrap();
        assert!((fresh.state()[0].1.double_value(&[0]) - b).abs() < 1e-6);
        assert!(fresh.load_state(vec![("nope".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu)))]).is_err());
    }
}
