//! The models, chosen by name, with weights stored under the reference's state_dict keys.

mod layers;
mod resnet;
mod wideresnet;

pub use resnet::ResNet18;
pub use wideresnet::WideResNet;

use crate::config::{ModelName, Precision};
use crate::io::{replace_with, FileError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// Errors of building models and moving their weights in and out of files.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path} not found: {hint}")]
    Missing { path: PathBuf, hint: String },
    #[error("cannot read weights from {path}: {err} (is it a safetensors file written by resmooth or by safetensors.torch.save_file?)")]
    Read { path: PathBuf, err: String },
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path} does not hold {model} weights for {classes} classes: {what}")]
    Mismatch { path: PathBuf, model: String, classes: i64, what: String },
}

/// A model: its variables (named as the reference's state_dict) and its forward function.
#[derive(Debug)]
pub struct Model {
    pub name: ModelName,
    pub num_classes: i64,
    pub vs: nn::VarStore,
    /// Precision of the forward computation: Float, or BFloat16 (mixed precision: fp32 weights,
    /// BatchNorm statistics and loss; bf16 convolutions and matrix products).
    pub compute: Kind,
    net: Box<dyn ModuleT>,
}

impl Model {
    /// Builds model `name` with `num_classes` outputs on `device`, initialised as PyTorch does,
    /// computing in fp32.
    pub fn new(name: ModelName, num_classes: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net: Box<dyn ModuleT> = match name {
            ModelName::ResNet18 => Box::new(ResNet18::new(&root, num_classes)),
            ModelName::WResNet28x10 => Box::new(WideResNet::new(&root, 28, 10, num_classes)),
        };
        Model { name, num_classes, vs, compute: Kind::Float, net }
    }

    /// This model computing in `precision` (bf16: mixed precision, fp32 weights).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.compute = match precision {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        };
        self
    }

    /// Logits (fp32) for a normalised NCHW float batch, computed in [`Model::compute`]
    /// precision; `train` selects batch statistics in BatchNorm.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if self.compute == Kind::Float {
            return self.net.forward_t(xs, train);
        }
        self.net.forward_t(&xs.to_kind(self.compute), train).to_kind(Kind::Float)
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// The variables (parameters and buffers) by state_dict key, sorted.
    pub fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().collect()
    }

    /// Sets every BatchNorm's `num_batches_tracked` to `steps` (PyTorch counts training forwards).
    pub fn set_batches_tracked(&self, steps: i64) {
        tch::no_grad(|| {
            for (k, v) in self.vs.variables() {
                if k.ends_with("num_batches_tracked") {
                    let mut v = v;
                    let _ = v.fill_(steps);
                }
            }
        });
    }

    /// The `num_batches_tracked` value of the first BatchNorm (0 for a fresh model).
    pub fn batches_tracked(&self) -> i64 {
        self.state_dict()
            .iter()
            .find(|(k, _)| k.ends_with("num_batches_tracked"))
            .map(|(_, v)| v.int64_value(&[]))
            .unwrap_or(0)
    }

    /// Writes the state_dict as safetensors at `path`, atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let tensors: Vec<(String, Tensor)> =
            self.state_dict().into_iter().map(|(k, v)| (k, v.to_device(Device::Cpu).contiguous())).collect();
        write_safetensors_atomic(path, &tensors)
    }

    /// Loads weights written by [`Model::save`] (or a converted reference checkpoint), checking
    /// that the keys and shapes are exactly this model's.
    pub fn load(&mut self, path: &Path) -> Result<(), ModelError> {
        let tensors = read_safetensors(path)?;
        self.load_from(path, tensors.into_iter().collect())
    }

    /// Copies `tensors` (keyed as the state_dict) into the model; `source` names them in errors.
    pub fn load_from(&mut self, source: &Path, mut tensors: BTreeMap<String, Tensor>) -> Result<(), ModelError> {
        let own = self.state_dict();
        let mismatch = |what: String| ModelError::Mismatch {
            path: source.to_path_buf(),
            model: self.name.to_string(),
            classes: self.num_classes,
            what,
        };
        let missing: Vec<&String> = own.keys().filter(|k| !tensors.contains_key(*k)).collect();
        let extra: Vec<&String> = tensors.keys().filter(|k| !own.contains_key(*k)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let guess = if tensors.contains_key("linear.weight") {
                " (its keys are those of wresnet28_10)"
            } else if tensors.contains_key("classifier.weight") {
                " (its keys are those of resnet18)"
            } else {
                ""
            };
            return Err(mismatch(format!(
                "{} keys missing (e.g. {}), {} unexpected (e.g. {}){guess}; pass the --model it was trained with",
                missing.len(),
                missing.first().map(|s| s.as_str()).unwrap_or("-"),
                extra.len(),
                extra.first().map(|s| s.as_str()).unwrap_or("-"),
            )));
        }
        for (k, v) in &own {
            let t = &tensors[k];
            if t.size() != v.size() {
                return Err(mismatch(format!(
                    "{k} has shape {:?}, expected {:?}; was it trained on a dataset with another number of classes?",
                    t.size(),
                    v.size()
                )));
            }
        }
        tch::no_grad(|| {
            for (k, v) in own {
                let src = tensors.remove(&k).expect("checked above");
                let mut v = v;
                v.copy_(&src.to_kind(v.kind()).to_device(v.device()));
            }
        });
        Ok(())
    }
}

/// Reads every tensor of a safetensors file, with an error naming the file.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing { path: path.to_path_buf(), hint: "no such weights file".into() });
    }
    Tensor::read_safetensors(path).map_err(|e| ModelError::Read { path: path.to_path_buf(), err: e.to_string() })
}

/// Writes tensors as safetensors, atomically (see [`crate::io::replace_with`]).
pub fn write_safetensors_atomic(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ModelError> {
    replace_with(path, |tmp| {
        Tensor::write_safetensors(tensors, tmp)
            .map_err(|e| ModelError::Write { path: tmp.to_path_buf(), err: e.to_string() })
    })
}

/// True for floating-point tensors (parameters and running statistics, not counters).
pub fn is_float(t: &Tensor) -> bool {
    matches!(t.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_and_keys_match_the_reference() {
        for (name, classes, params, entries) in [
            ("resnet18", 10, 11_173_962, 122),
            ("resnet18", 100, 11_220_132, 122),
            ("wresnet28_10", 10, 36_489_290, 183),
            ("wresnet28_10", 100, 36_546_980, 183),
        ] {
            let m = Model::new(name.parse().unwrap(), classes, Device::Cpu);
            assert_eq!(m.num_parameters(), params, "{name} {classes}");
            assert_eq!(m.state_dict().len(), entries, "{name} {classes}");
        }
    }

    #[test]
    fn key_names_are_the_reference_state_dict_keys() {
        let r = Model::new(ModelName::ResNet18, 10, Device::Cpu).state_dict();
        for k in [
            "feature.0.weight",
            "feature.1.weight",
            "feature.1.running_mean",
            "feature.1.num_batches_tracked",
            "feature.3.0.conv1.weight",
            "feature.3.1.bn2.running_var",
            "feature.4.0.downsample.0.weight",
            "feature.4.0.downsample.1.bias",
            "feature.6.1.conv2.weight",
            "classifier.weight",
            "classifier.bias",
        ] {
            assert!(r.contains_key(k), "resnet18 lacks {k}");
        }
        assert_eq!(r["feature.1.num_batches_tracked"].kind(), Kind::Int64);
        let w = Model::new(ModelName::WResNet28x10, 10, Device::Cpu).state_dict();
        for k in [
            "conv1.weight",
            "conv1.bias",
            "layer1.0.bn1.weight",
            "layer1.0.shortcut.0.weight",
            "layer2.0.shortcut.0.bias",
            "layer3.3.conv2.weight",
            "bn1.running_mean",
            "linear.weight",
        ] {
            assert!(w.contains_key(k), "wresnet28_10 lacks {k}");
        }
        assert!(!w.contains_key("layer1.1.shortcut.0.weight"));
    }

    #[test]
    fn initialisation_follows_pytorch() {
        let r = Model::new(ModelName::ResNet18, 10, Device::Cpu).state_dict();
        let stem = &r["feature.0.weight"];
        assert!(stem.abs().max().double_value(&[]) <= 1.0 / 27f64.sqrt());
        let conv = &r["feature.6.0.conv1.weight"]; // 512 x 256 x 3 x 3, kaiming normal fan_out
        let std = conv.std(true).double_value(&[]);
        assert!((std - (2.0f64 / (512.0 * 9.0)).sqrt()).abs() < 1e-3, "{std}");
        assert_eq!(r["feature.1.weight"].sum(Kind::Float).double_value(&[]), 64.0);
        assert_eq!(r["feature.1.running_var"].sum(Kind::Float).double_value(&[]), 64.0);
    }

    #[test]
    fn bf16_forward_is_close_to_fp32_and_trains() {
        tch::manual_seed(1);
        let m = Model::new(ModelName::ResNet18, 10, Device::Cpu);
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let fp32 = tch::no_grad(|| m.forward_t(&x, false));
        let m = m.with_precision(Precision::Bf16);
        let bf16_eval = tch::no_grad(|| m.forward_t(&x, false));
        let bf16 = m.forward_t(&x, true);
        assert_eq!(bf16.kind(), Kind::Float);
        bf16.sum(Kind::Float).backward();
        let g = m.vs.trainable_variables()[0].grad();
        assert_eq!(g.kind(), Kind::Float, "master weights and their gradients stay fp32");
        let rel = (&bf16_eval - &fp32).abs().max().double_value(&[]) / fp32.abs().max().double_value(&[]);
        assert!(rel < 0.05, "bf16 logits differ by {rel} (relative)");
    }

    #[test]
    fn save_load_round_trip_and_foreign_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = Model::new(ModelName::ResNet18, 10, Device::Cpu);
        a.set_batches_tracked(7);
        a.save(&path).unwrap();
        tch::manual_seed(99);
        let mut b = Model::new(ModelName::ResNet18, 10, Device::Cpu);
        b.load(&path).unwrap();
        assert_eq!(b.batches_tracked(), 7);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let diff = (a.forward_t(&x, false) - b.forward_t(&x, false)).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0);

        let mut c = Model::new(ModelName::ResNet18, 100, Device::Cpu);
        let err = c.load(&path).unwrap_err().to_string();
        assert!(err.contains("classifier") && err.contains("classes"), "{err}");
        let mut w = Model::new(ModelName::WResNet28x10, 10, Device::Cpu);
        let err = w.load(&path).unwrap_err().to_string();
        assert!(err.contains("resnet18") && err.contains("m.safetensors"), "{err}");
        std::fs::write(dir.path().join("junk.safetensors"), b"garbage").unwrap();
        let err = b.load(&dir.path().join("junk.safetensors")).unwrap_err().to_string();
        assert!(err.contains("junk.safetensors"), "{err}");
        let err = b.load(&dir.path().join("none.safetensors")).unwrap_err().to_string();
        assert!(err.contains("none.safetensors") && err.contains("not found"), "{err}");
    }
}
