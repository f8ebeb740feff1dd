//! The models, chosen by name, with weights stored under the reference's state_dict keys.

mod bottleneck;
mod layers;
pub mod pth;
mod resnet;
pub mod shakeshake;
mod small_cnn;
mod torchscript;
mod weights_file;
mod wideresnet;

pub use bottleneck::BottleneckResNet;
pub use resnet::ResNet18;
pub use shakeshake::ShakeNet;
pub use small_cnn::SmallCnn;
pub use torchscript::TorchScriptNet;
pub use weights_file::{read_safetensors, write_safetensors_atomic, CHECKSUM_KEY};
pub use wideresnet::WideResNet;

use crate::config::{ModelName, ModelSpec, Precision};
use crate::dist::{DistError, SyncBatchNorm};
use crate::io::FileError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    #[error("cannot read {path} as a PyTorch checkpoint (torch.save): {what}")]
    Pth { path: PathBuf, what: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path} does not hold {model} weights for {classes} classes: {what}")]
    Mismatch { path: PathBuf, model: String, classes: i64, what: String },
    #[error("{path}: {what}")]
    TorchScript { path: PathBuf, what: String },
    /// A weights file whose tensors no longer match the checksum written with them.
    #[error("{path} is damaged: its tensors have checksum {got}, not the {want} written with them (a failing disk or a copy gone wrong changed them); copy the file again from where it came from, or make it again with the run that wrote it")]
    Damaged { path: PathBuf, want: String, got: String },
}

/// A model: its variables (named as the reference's state_dict) and its forward function.
#[derive(Debug)]
pub struct Model {
    pub spec: ModelSpec,
    pub num_classes: i64,
    pub vs: nn::VarStore,
    /// Precision of the forward computation: Float, or BFloat16 (mixed precision: fp32 weights,
    /// BatchNorm statistics and loss; bf16 convolutions and matrix products).
    pub compute: Kind,
    net: Box<dyn ModuleT>,
    /// `--sync-bn`: what its BatchNorm layers normalise training batches across.
    sync_bn: Option<Arc<SyncBatchNorm>>,
}

impl Model {
    /// Builds the reference's model `name` (or our `small_cnn`) with `num_classes` outputs on
    /// `device`, initialised as the reference does, computing in fp32.
    pub fn new(name: ModelName, num_classes: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net: Box<dyn ModuleT> = match name {
            ModelName::ResNet18 => Box::new(ResNet18::new(&root, num_classes)),
            ModelName::ResNet50 => Box::new(BottleneckResNet::new(&root, 50, num_classes)),
            ModelName::ResNet200 => Box::new(BottleneckResNet::new(&root, 200, num_classes)),
            ModelName::WResNet40x2 => Box::new(WideResNet::new(&root, 40, 2, num_classes)),
            ModelName::WResNet28x10 => Box::new(WideResNet::new(&root, 28, 10, num_classes)),
            ModelName::ShakeShake26x2x32d => Box::new(ShakeNet::resnet26(&root, 32, num_classes)),
            ModelName::ShakeShake26x2x64d => Box::new(ShakeNet::resnet26(&root, 64, num_classes)),
            ModelName::ShakeShake26x2x96d => Box::new(ShakeNet::resnet26(&root, 96, num_classes)),
            ModelName::ShakeShake26x2x112d => Box::new(ShakeNet::resnet26(&root, 112, num_classes)),
            ModelName::ShakeShake26x2x96dNext => Box::new(ShakeNet::resnext26(&root, 96, 4, num_classes)),
            ModelName::SmallCnn => Box::new(SmallCnn::new(&root, num_classes)),
        };
        Model { spec: ModelSpec::Builtin(name), num_classes, vs, compute: Kind::Float, net, sync_bn: None }
    }

    /// [`Model::new`] with the parameters allocated but not initialised (BatchNorm statistics
    /// are): for weights that are loaded next, or for checks of keys, shapes and parameter
    /// counts, which this makes fast even for resnet200.
    pub fn new_uninitialised(name: ModelName, num_classes: i64, device: Device) -> Self {
        layers::without_init(|| Self::new(name, num_classes, device))
    }

    /// [`Model::build_for`] 32x32 images (CIFAR's and SVHN's size).
    pub fn build(spec: &ModelSpec, num_classes: i64, device: Device) -> Result<Self, ModelError> {
        Self::build_for(spec, num_classes, [32, 32], device)
    }

    /// Builds the model `--model` names for images of `image` = [height, width]: one of the
    /// reference's (see [`Model::new`]), or the module of a TorchScript file with the weights it
    /// was saved with, checked once on 3-channel images of that size (see
    /// [`TorchScriptNet::check`]), so that a module that cannot take them is refused here rather
    /// than failing in the middle of a run.
    pub fn build_for(
        spec: &ModelSpec,
        num_classes: i64,
        image: [usize; 2],
        device: Device,
    ) -> Result<Self, ModelError> {
        let path = match spec {
            ModelSpec::Builtin(name) => return Ok(Self::new(*name, num_classes, device)),
            ModelSpec::TorchScript(path) => path,
        };
        if !path.is_file() {
            return Err(ModelError::Missing {
                path: path.clone(),
                hint: "no such TorchScript file (save one with torch.jit.save(torch.jit.script(model), PATH))".into(),
            });
        }
        let failed = |what: String| ModelError::TorchScript { path: path.clone(), what };
        let vs = nn::VarStore::new(device);
        let net = TorchScriptNet::load(path, device)
            .map_err(|e| failed(format!("not a TorchScript module saved by torch.jit.save: {e}")))?;
        net.register(&vs.root()).map_err(failed)?;
        net.check(num_classes, image, device).map_err(failed)?;
        Ok(Model { spec: spec.clone(), num_classes, vs, compute: Kind::Float, net: Box::new(net), sync_bn: None })
    }

    /// [`Model::new`] with its BatchNorm layers normalising training batches with every rank's
    /// statistics through `sync` (`--sync-bn`; validated: built-in models only, a TorchScript
    /// module's layers are its own).
    pub fn new_synced(name: ModelName, num_classes: i64, device: Device, sync: Arc<SyncBatchNorm>) -> Self {
        let model = layers::with_sync_bn(Arc::clone(&sync), || Self::new(name, num_classes, device));
        Model { sync_bn: Some(sync), ..model }
    }

    /// The collective of `--sync-bn` that failed in a forward pass, if one did.
    pub fn sync_bn_failure(&self) -> Option<DistError> {
        self.sync_bn.as_ref().and_then(|s| s.failure())
    }

    /// This model computing in `precision` (bf16: mixed precision, fp32 weights). TorchScript
    /// modules compute in the precision of their weights, fp32 (the configuration refuses bf16).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.compute = match (&self.spec, precision) {
            (ModelSpec::TorchScript(_), _) | (_, Precision::Fp32) => Kind::Float,
            (_, Precision::Bf16) => Kind::BFloat16,
        };
        self
    }

    /// Logits (fp32) for a normalised NCHW float batch, computed in [`Model::compute`]
    /// precision; `train` selects batch statistics in BatchNorm.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.compute {
            Kind::Float => self.net.forward_t(xs, train),
            _ => self.forward_computed(xs, train).to_kind(Kind::Float),
        }
    }

    /// The network's output as it computed it, in [`Model::compute`] precision: the input cast
    /// to it, each convolution and matrix product computing in it.
    fn forward_computed(&self, xs: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(&xs.to_kind(self.compute), train)
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

    /// Loads weights written by [`Model::save`], or a PyTorch `.pth` file (a reference
    /// checkpoint's `model` or `state_dict`, or a bare state_dict, DataParallel's `module.`
    /// prefixes stripped, see [`pth::read`]), checking that the keys and shapes are exactly this
    /// model's. The format is told by the file's first bytes.
    pub fn load(&mut self, path: &Path) -> Result<(), ModelError> {
        if !path.is_file() {
            return Err(ModelError::Missing { path: path.to_path_buf(), hint: "no such weights file".into() });
        }
        let tensors = match pth::sniff(path) {
            pth::WeightsFormat::Safetensors => read_safetensors(path)?,
            _ => pth::strip_module_prefixes(pth::read(path)?.weights()),
        };
        self.load_from(path, tensors.into_iter().collect())
    }

    /// The names of the trainable parameters in the order of the reference's
    /// `model.parameters()`, the indices of its optimizer state (see [`Model::state_dict_ordered`]).
    pub fn parameter_names(&self) -> Vec<String> {
        let trainable: std::collections::HashSet<String> =
            self.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(k, _)| k).collect();
        self.state_dict_ordered().into_iter().map(|(k, _)| k).filter(|k| trainable.contains(k)).collect()
    }

    /// The state_dict in the order of the reference's `model.state_dict()`: PyTorch's walk of
    /// the modules in the order each registers its children, each module's parameters then its
    /// buffers. For the reference's models the order of the children is theirs
    /// ([`children_order`]); a TorchScript module's variables are in the order it registered them.
    pub fn state_dict_ordered(&self) -> Vec<(String, Tensor)> {
        match &self.spec {
            ModelSpec::Builtin(name) => {
                let mut all: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
                all.sort_by_cached_key(|(k, _)| reference_rank(*name, k));
                all
            }
            ModelSpec::TorchScript(_) => self.registration_order(),
        }
    }

    /// The variables in the order they were registered (the trainable ones by address, each
    /// module's buffers after its last parameter).
    fn registration_order(&self) -> Vec<(String, Tensor)> {
        let mut all = self.state_dict();
        let by_address: std::collections::HashMap<usize, String> =
            all.iter().filter(|(_, t)| t.numel() > 0).map(|(k, t)| (t.data_ptr() as usize, k.clone())).collect();
        let params: Vec<String> = self
            .vs
            .trainable_variables()
            .iter()
            .filter_map(|t| by_address.get(&(t.data_ptr() as usize)).cloned())
            .collect();
        let module = |k: &str| k.rsplit_once('.').map_or(String::new(), |(m, _)| m.to_string());
        let mut out = Vec::with_capacity(all.len());
        for (i, p) in params.iter().enumerate() {
            out.extend(all.remove_entry(p));
            let m = module(p);
            if params.get(i + 1).map(|n| module(n)) != Some(m.clone()) {
                let buffers: Vec<String> = all.keys().filter(|k| module(k) == m).cloned().collect();
                out.extend(buffers.iter().filter_map(|k| all.remove_entry(k)));
            }
        }
        out.extend(all);
        out
    }

    /// Copies `tensors` (keyed as the state_dict) into the model; `source` names them in errors.
    pub fn load_from(&mut self, source: &Path, mut tensors: BTreeMap<String, Tensor>) -> Result<(), ModelError> {
        let own = self.state_dict();
        let mismatch = |what: String| ModelError::Mismatch {
            path: source.to_path_buf(),
            model: self.spec.to_string(),
            classes: self.num_classes,
            what,
        };
        let missing: Vec<&String> = own.keys().filter(|k| !tensors.contains_key(*k)).collect();
        let extra: Vec<&String> = tensors.keys().filter(|k| !own.contains_key(*k)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let guess = recognise(&tensors).map(|name| format!(" (its keys are those of {name})")).unwrap_or_default();
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

/// The order in which the reference's modules of `name` register their named children (at the
/// top of the model when `top`, below it otherwise); children numbered by `nn.Sequential` come
/// in their numbers' order. Checked against PyTorch by tests/reference_files.rs.
fn children_order(name: ModelName, top: bool) -> &'static [&'static str] {
    use ModelName::*;
    match name {
        ResNet18 => &["feature", "classifier", "conv1", "bn1", "conv2", "bn2", "downsample"],
        ResNet50 | ResNet200 => &[
            "conv1",
            "bn1",
            "conv2",
            "bn2",
            "conv3",
            "bn3",
            "downsample",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
            "fc",
        ],
        WResNet40x2 | WResNet28x10 if top => &["conv1", "layer1", "layer2", "layer3", "bn1", "linear"],
        WResNet40x2 | WResNet28x10 => &["bn1", "conv1", "bn2", "conv2", "shortcut"],
        ShakeShake26x2x32d | ShakeShake26x2x64d | ShakeShake26x2x96d | ShakeShake26x2x112d | ShakeShake26x2x96dNext => {
            &["c_in", "layer1", "layer2", "layer3", "fc_out", "shortcut", "branch1", "branch2", "conv1", "conv2", "bn"]
        }
        // ours: the PyTorch module of scripts/check_weights.py
        SmallCnn => &["features", "classifier"],
    }
}

/// Where the state_dict key `key` of model `name` comes in the reference's `state_dict()`: the
/// rank of each of its modules among its siblings, then of the tensor in its module.
fn reference_rank(name: ModelName, key: &str) -> Vec<(usize, usize, String)> {
    const TENSORS: [&str; 5] = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"];
    let parts: Vec<&str> = key.split('.').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let known = if i == last {
                TENSORS.iter().position(|t| t == part)
            } else if let Ok(n) = part.parse::<usize>() {
                Some(n)
            } else {
                children_order(name, i == 0).iter().position(|c| c == part)
            };
            match known {
                Some(rank) => (0, rank, String::new()),
                None => (1, 0, part.to_string()),
            }
        })
        .collect()
}

/// Which of the reference's models a state_dict belongs to, by the keys that tell them apart.
fn recognise(state: &BTreeMap<String, Tensor>) -> Option<String> {
    let has = |k: &str| state.contains_key(k);
    let name = if has("features.0.weight") {
        "small_cnn".to_string()
    } else if has("classifier.weight") {
        "resnet18".to_string()
    } else if has("linear.weight") {
        if has("layer1.5.conv1.weight") { "wresnet40_2" } else { "wresnet28_10" }.to_string()
    } else if has("fc.weight") {
        if has("layer3.35.conv1.weight") { "resnet200" } else { "resnet50" }.to_string()
    } else if has("layer1.0.branch1.7.weight") {
        "shakeshake26_2x96d_next".to_string()
    } else {
        // fc_out takes the 4w channels of shakeshake26_2x{w}d
        format!("shakeshake26_2x{}d", state.get("fc_out.weight")?.size().get(1)? / 4)
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a 64 of the sorted state_dict as `key:d0,d1,..` lines.
    fn fingerprint(state: &BTreeMap<String, Tensor>) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in state {
            let dims: Vec<String> = v.size().iter().map(|d| d.to_string()).collect();
            for b in format!("{k}:{}\n", dims.join(",")).bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// Parameter counts (`sum(p.numel() for p in model.parameters())`), state_dict entries and
    /// the fingerprint of the sorted keys and shapes (10 classes) of the reference's own
    /// networks (`get_model(name, classes)` in PyTorch 2.11).
    #[test]
    fn parameter_counts_and_keys_match_the_reference() {
        for (name, params_10, params_100, entries, keys) in [
            ("resnet18", 11_173_962, 11_220_132, 122, 0x7aca_3afb_77d9_22a3_u64),
            ("resnet50", 23_528_522, 23_712_932, 320, 0xec71_d348_2cd4_cde8),
            ("resnet200", 62_645_322, 62_829_732, 1220, 0xcf79_aca5_dfe0_069a),
            ("wresnet40_2", 2_246_474, 2_258_084, 267, 0x2643_1180_ef62_372e),
            ("wresnet28_10", 36_489_290, 36_546_980, 183, 0xef70_ba4a_d203_8a97),
            ("shakeshake26_2x32d", 2_989_002, 3_000_612, 376, 0x0dd5_91d3_1866_41e5),
            ("shakeshake26_2x64d", 11_914_698, 11_937_828, 376, 0x7a36_ded9_b74e_da5b),
            ("shakeshake26_2x96d", 26_777_546, 26_812_196, 376, 0xe086_60f5_2c1c_6fdf),
            ("shakeshake26_2x112d", 36_435_402, 36_475_812, 376, 0x9644_0f98_c803_a840),
            ("shakeshake26_2x96d_next", 22_717_706, 22_809_956, 241, 0x656d_90b5_d720_e5a4),
            // ours (not the reference's): the figures of the PyTorch module in scripts/check_weights.py
            ("small_cnn", 24_346, 30_196, 20, 0x1e9a_ee4c_fc7b_eab1),
        ] {
            for (classes, params) in [(10, params_10), (100, params_100)] {
                let m = Model::new_uninitialised(name.parse().unwrap(), classes, Device::Cpu);
                assert_eq!(m.num_parameters(), params, "{name} {classes}");
                let state = m.state_dict();
                assert_eq!(state.len(), entries, "{name} {classes}");
                if classes == 10 {
                    assert_eq!(fingerprint(&state), keys, "{name}: keys or shapes differ from the reference's");
                }
                assert_eq!(recognise(&state).as_deref(), Some(name));
            }
        }
        assert_eq!(ModelName::ALL.len(), 11, "every model the reference registers, and ours, is checked above");
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

        // the reference's own loops: every conv of the bottleneck ResNets and shake-shake nets
        // kaiming normal (fan out), BatchNorm 1 / 0, shake-shake's fc_out bias zero
        let std_of = |t: &Tensor| t.std(true).double_value(&[]);
        let b = Model::new(ModelName::ResNet50, 10, Device::Cpu).state_dict();
        let std = std_of(&b["conv1.weight"]); // 64 x 3 x 7 x 7
        assert!((std - (2.0f64 / (64.0 * 49.0)).sqrt()).abs() < 2e-3, "{std}");
        let std = std_of(&b["layer4.0.downsample.0.weight"]); // 2048 x 1024 x 1 x 1
        assert!((std - (2.0f64 / 2048.0).sqrt()).abs() < 1e-3, "{std}");
        assert!(b["fc.weight"].abs().max().double_value(&[]) <= 1.0 / 2048f64.sqrt());
        let s = Model::new(ModelName::ShakeShake26x2x96dNext, 10, Device::Cpu).state_dict();
        let std = std_of(&s["layer2.0.branch1.3.weight"]); // 512 x 128 x 3 x 3, 4 groups
        assert!((std - (2.0f64 / (512.0 * 9.0)).sqrt()).abs() < 1e-3, "{std}");
        assert_eq!(s["fc_out.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(s["c_in.bias"].abs().max().double_value(&[]) <= 1.0 / 27f64.sqrt());
        assert_eq!(s["layer3.1.branch2.7.weight"].sum(Kind::Float).double_value(&[]), 1024.0);
    }

    #[test]
    fn uninitialised_models_have_the_same_variables_and_later_models_are_initialised() {
        let fresh = Model::new_uninitialised(ModelName::WResNet40x2, 10, Device::Cpu).state_dict();
        let init = Model::new(ModelName::WResNet40x2, 10, Device::Cpu).state_dict();
        let shapes = |s: &BTreeMap<String, Tensor>| s.iter().map(|(k, v)| (k.clone(), v.size())).collect::<Vec<_>>();
        assert_eq!(shapes(&fresh), shapes(&init));
        // initialisation is back on after the uninitialised build: BatchNorm weights are ones
        assert_eq!(init["bn1.weight"].sum(Kind::Float).double_value(&[]), 128.0);
    }

    /// The reference's ShakeResNet owns a projection in every block, used only where the width
    /// changes; as in PyTorch (whose gradient stays None there) training leaves the unused ones
    /// untouched, while the used ones and the branches learn.
    #[test]
    fn shake_shake_trains_and_leaves_the_unused_projections_untouched() {
        tch::manual_seed(2);
        let m = Model::new(ModelName::ShakeShake26x2x32d, 10, Device::Cpu);
        let snapshot = |k: &str| m.state_dict()[k].detach().copy();
        let keys = ["layer1.1.shortcut.conv1.weight", "layer1.0.shortcut.conv1.weight", "layer3.3.branch2.4.weight"];
        let before: Vec<Tensor> = keys.iter().map(|k| snapshot(k)).collect();
        let mut opt = crate::optim::Sgd::new(&m.vs, 0.9, 5e-4, true);
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 3, 5, 9]);
        for _ in 0..2 {
            let loss = m.forward_t(&x, true).cross_entropy_for_logits(&y);
            opt.zero_grad();
            loss.backward();
            opt.step(0.1);
        }
        assert!(!m.state_dict()[keys[0]].grad().defined(), "the unused projection gets no gradient");
        let changed: Vec<bool> = keys.iter().zip(&before).map(|(k, b)| !snapshot(k).equal(b)).collect();
        assert_eq!(changed, [false, true, true], "{keys:?}");
        // evaluation mixes the branches by 0.5: deterministic
        let (a, b) = tch::no_grad(|| (m.forward_t(&x, false), m.forward_t(&x, false)));
        assert!(a.equal(&b));
    }

    #[test]
    fn bf16_forward_is_close_to_fp32_and_trains() {
        for name in [ModelName::ResNet18, ModelName::ShakeShake26x2x32d] {
            tch::manual_seed(1);
            let m = Model::new(name, 10, Device::Cpu);
            let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
            let fp32 = tch::no_grad(|| m.forward_t(&x, false));
            let m = m.with_precision(Precision::Bf16);
            // inside the forward the layers compute in bf16, up to the classifier's matrix product
            let inside = tch::no_grad(|| m.forward_computed(&x, false));
            assert_eq!(inside.kind(), Kind::BFloat16, "{name}: --precision bf16 computes in bf16");
            let bf16_eval = tch::no_grad(|| m.forward_t(&x, false));
            // bf16's rounding shows in the logits: close to fp32's but not the same numbers
            assert!(!bf16_eval.equal(&fp32), "{name}: bf16 logits are exactly fp32's: bf16 is not used");
            let bf16 = m.forward_t(&x, true);
            assert_eq!(bf16.kind(), Kind::Float);
            bf16.sum(Kind::Float).backward();
            let g = m.vs.trainable_variables()[0].grad();
            assert_eq!(g.kind(), Kind::Float, "{name}: master weights and their gradients stay fp32");
            let rel = (&bf16_eval - &fp32).abs().max().double_value(&[]) / fp32.abs().max().double_value(&[]);
            assert!(rel < 0.05, "{name}: bf16 logits differ by {rel} (relative)");
        }
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
