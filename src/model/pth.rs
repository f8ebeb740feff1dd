//! PyTorch's `torch.save` files (`.pth`), read and written without Python: a zip whose
//! `<archive>/data.pkl` pickles the object and whose `<archive>/data/<key>` records hold the
//! tensors' storages. Reading goes through [`crate::pickle`], which runs nothing and refuses
//! every global but those of tensors and `OrderedDict`; what is read is then taken as the
//! reference's train.py takes a file: a checkpoint `{'epoch', 'log', 'optimizer', 'model'}`
//! (or `'state_dict'`), or a bare state_dict.

use super::ModelError;
use crate::io::replace_with;
use crate::pickle::{self, StorageKind, StorageRef, TensorRef, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use tch::{Kind, Tensor};

/// The file's format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A safetensors file (resmooth's own weights).
    Safetensors,
    /// A torch.save zip file.
    Pth,
    /// torch.save's format before PyTorch 1.6 (a bare pickle), not read.
    LegacyPth,
}

/// The format of the weights file at `path` (by its first bytes; safetensors when it cannot tell).
/// A safetensors file starts with its header's length (8 bytes, little-endian) and the header's
/// `{`; that is checked first, since the length's first byte may be anything, 0x80 included (a
/// pickle's first byte).
pub fn sniff(path: &Path) -> WeightsFormat {
    let mut head = [0u8; 9];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match (read, head) {
        (Ok(()), [.., b'{']) => WeightsFormat::Safetensors,
        (Ok(()), [b'P', b'K', 3, 4, ..]) => WeightsFormat::Pth,
        (Ok(()), [0x80, 2..=5, ..]) => WeightsFormat::LegacyPth,
        _ => WeightsFormat::Safetensors,
    }
}

/// A state_dict: tensors by key, in the file's order.
pub type StateDict = Vec<(String, Tensor)>;

/// The SGD state of a reference checkpoint (`optimizer.state_dict()`): momentum buffers by
/// parameter index (the order of `model.parameters()`) and the first group's settings.
#[derive(Debug)]
pub struct SgdState {
    /// `(index, momentum_buffer)` of the parameters that have one.
    pub momentum: Vec<(usize, Tensor)>,
    /// Number of parameters of the (single) group.
    pub params: usize,
    pub lr: Option<f64>,
    pub momentum_factor: Option<f64>,
    pub weight_decay: Option<f64>,
    pub nesterov: Option<bool>,
}

/// What a `.pth` file holds, as the reference's train.py tells its cases apart.
#[derive(Debug)]
pub enum Contents {
    /// A dict with `'model'` (or `'state_dict'`): weights, and the `epoch` and `optimizer` saved
    /// with them when present.
    Checkpoint { key: &'static str, epoch: Option<i64>, weights: StateDict, optimizer: Option<SgdState> },
    /// Anything else is taken as a bare state_dict (its values must all be tensors).
    StateDict(StateDict),
}

impl Contents {
    /// The weights, whichever case.
    pub fn weights(self) -> StateDict {
        match self {
            Contents::Checkpoint { weights, .. } | Contents::StateDict(weights) => weights,
        }
    }
}

/// `k.replace('module.', '')` for every key, as the reference's train.py loads a checkpoint into
/// its model (DataParallel saves its model's keys under `module.`).
pub fn strip_module_prefixes(weights: StateDict) -> StateDict {
    weights.into_iter().map(|(k, v)| (k.replace("module.", ""), v)).collect()
}

/// The tensor kind of a storage type.
fn kind_of(s: StorageKind) -> Kind {
    match s {
        StorageKind::Float => Kind::Float,
        StorageKind::Double => Kind::Double,
        StorageKind::Half => Kind::Half,
        StorageKind::BFloat16 => Kind::BFloat16,
        StorageKind::Long => Kind::Int64,
        StorageKind::Int => Kind::Int,
        StorageKind::Short => Kind::Int16,
        StorageKind::Char => Kind::Int8,
        StorageKind::Byte => Kind::Uint8,
        StorageKind::Bool => Kind::Bool,
    }
}

/// The storage type of a tensor kind, if torch.save has one.
fn storage_of(k: Kind) -> Option<StorageKind> {
    StorageKind::ALL.into_iter().find(|&s| kind_of(s) == k)
}

/// A torch.save file read: its object, with the zip it came from for the tensors.
struct Archive {
    root: Value,
    zip: zip::ZipArchive<std::io::BufReader<std::fs::File>>,
    /// The records' folder (`archive/`, or the name the file was saved under).
    prefix: String,
    storages: HashMap<String, Tensor>,
}

impl Archive {
    fn open(path: &Path) -> Result<Self, String> {
        match sniff(path) {
            WeightsFormat::Pth => {}
            WeightsFormat::LegacyPth => {
                return Err("it is in torch.save's format before PyTorch 1.6 (_use_new_zipfile_serialization=False); \
                     load it in PyTorch and save it again with torch.save"
                    .into())
            }
            WeightsFormat::Safetensors => return Err("it is not a torch.save file (a zip archive)".into()),
        }
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut zip =
            zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| format!("a damaged zip ({e})"))?;
        let pkl = zip
            .file_names()
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .map(str::to_string)
            .ok_or("no data.pkl in the zip: not a torch.save file (a TorchScript file is loaded with --model torchscript:PATH)")?;
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        if let Ok(order) = read_record(&mut zip, &format!("{prefix}byteorder")) {
            if order != b"little" {
                return Err(format!("its tensors are stored {} endian", String::from_utf8_lossy(&order)));
            }
        }
        let bytes = read_record(&mut zip, &pkl)?;
        let root = pickle::load(&bytes).map_err(|e| format!("{pkl}: {e}"))?;
        Ok(Archive { root, zip, prefix, storages: HashMap::new() })
    }

    /// The tensor `t` refers to (a copy, on the CPU).
    fn tensor(&mut self, t: &TensorRef) -> Result<Tensor, String> {
        let storage = self.storage(&t.storage)?;
        let numel = t.storage.numel as i64;
        // the furthest element the view reads must be inside the storage
        let empty = t.size.contains(&0);
        let last = t.offset as i64 + t.size.iter().zip(&t.stride).map(|(&n, &s)| (n - 1).max(0) * s).sum::<i64>();
        if !empty && last >= numel {
            return Err(format!(
                "a tensor of size {:?}, stride {:?} at offset {} reads past its storage of {numel} elements",
                t.size, t.stride, t.offset
            ));
        }
        let view =
            storage.f_as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset as i64).map_err(|e| e.to_string())?;
        Ok(view.contiguous())
    }

    fn storage(&mut self, s: &StorageRef) -> Result<Tensor, String> {
        if let Some(t) = self.storages.get(&s.key) {
            return Ok(t.shallow_clone());
        }
        let name = format!("{}data/{}", self.prefix, s.key);
        let bytes = read_record(&mut self.zip, &name)?;
        let want = s.numel.checked_mul(s.kind.size() as u64);
        if want != Some(bytes.len() as u64) {
            return Err(format!(
                "{name} holds {} bytes, not the {} elements of {}",
                bytes.len(),
                s.numel,
                s.kind.class()
            ));
        }
        let t = Tensor::f_from_data_size(&bytes, &[s.numel as i64], kind_of(s.kind)).map_err(|e| e.to_string())?;
        self.storages.insert(s.key.clone(), t.shallow_clone());
        Ok(t)
    }

    /// The tensors of a dict whose values are all tensors, in order.
    fn state_dict(&mut self, v: &Value, what: &str) -> Result<StateDict, String> {
        let Value::Dict(items) = v else { return Err(format!("{what} is {}, not a state_dict", v.kind())) };
        items
            .iter()
            .map(|(k, v)| {
                let key = k.as_str().ok_or_else(|| format!("{what} has a key that is not text"))?;
                let Value::Tensor(t) = v else { return Err(format!("{what}['{key}'] is {}, not a tensor", v.kind())) };
                Ok((key.to_string(), self.tensor(t)?))
            })
            .collect()
    }

    fn sgd(&mut self, v: &Value) -> Result<SgdState, String> {
        let group = match v.get("param_groups") {
            Some(Value::List(groups)) if groups.len() == 1 => &groups[0],
            _ => return Err("its optimizer state does not have one parameter group (as the reference's SGD)".into()),
        };
        let Some(Value::List(params)) = group.get("params") else {
            return Err("its optimizer's parameter group lists no params".into());
        };
        let mut momentum = Vec::new();
        if let Some(Value::Dict(state)) = v.get("state") {
            for (index, s) in state {
                let i = index.as_int().filter(|&i| (0..params.len() as i64).contains(&i));
                let i =
                    i.ok_or_else(|| format!("its optimizer state names parameter {index:?} of {}", params.len()))?;
                if let Some(Value::Tensor(t)) = s.get("momentum_buffer") {
                    momentum.push((i as usize, self.tensor(t)?));
                }
            }
        }
        Ok(SgdState {
            momentum,
            params: params.len(),
            lr: group.get("lr").and_then(Value::as_f64),
            momentum_factor: group.get("momentum").and_then(Value::as_f64),
            weight_decay: group.get("weight_decay").and_then(Value::as_f64),
            nesterov: match group.get("nesterov") {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
        })
    }
}

fn read_record<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|_| format!("the record {name} is missing"))?;
    let mut bytes = Vec::with_capacity(f.size().min(1 << 32) as usize);
    f.read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(bytes)
}

/// Reads a torch.save file as the reference's train.py reads `--save`: a checkpoint dict with
/// `'model'` (or `'state_dict'`), its `epoch` and `optimizer`; or a bare state_dict. Keys are
/// as saved (see [`strip_module_prefixes`]).
pub fn read(path: &Path) -> Result<Contents, ModelError> {
    let failed = |what: String| ModelError::Pth { path: path.to_path_buf(), what };
    let mut a = Archive::open(path).map_err(failed)?;
    let root = std::mem::replace(&mut a.root, Value::None);
    let key = ["model", "state_dict"].into_iter().find(|k| root.get(k).is_some());
    let Some(key) = key else {
        let weights = a.state_dict(&root, "the file").map_err(|e| {
            failed(format!("{e}: it is neither a checkpoint (a dict with 'model' or 'state_dict') nor a state_dict"))
        })?;
        return Ok(Contents::StateDict(weights));
    };
    let weights = a.state_dict(root.get(key).expect("found"), &format!("['{key}']")).map_err(failed)?;
    let epoch = root.get("epoch").and_then(Value::as_int);
    let optimizer = match root.get("optimizer") {
        Some(o @ Value::Dict(_)) => Some(a.sgd(o).map_err(failed)?),
        _ => None,
    };
    Ok(Contents::Checkpoint { key, epoch, weights, optimizer })
}

/// What [`write`] puts in the reference's checkpoint layout.
pub struct Checkpoint<'a> {
    pub epoch: i64,
    /// `{'train': {...}, 'test': {...}}`, the metrics of the epoch.
    pub log: Value,
    /// The state_dict in the order of the model's `state_dict()`.
    pub weights: &'a [(String, Tensor)],
    pub optimizer: Optimizer<'a>,
}

/// The SGD state written: the group's settings and the momentum buffers by parameter index.
pub struct Optimizer<'a> {
    pub lr: f64,
    pub initial_lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Number of parameters (`model.parameters()`).
    pub params: usize,
    pub buffers: Vec<(usize, &'a Tensor)>,
}

/// Collects the storages of a file being written: one record per tensor.
#[derive(Default)]
struct Records {
    data: Vec<Vec<u8>>,
}

impl Records {
    fn tensor(&mut self, t: &Tensor) -> Result<Value, String> {
        let kind =
            storage_of(t.kind()).ok_or_else(|| format!("a tensor of type {:?} has no torch storage type", t.kind()))?;
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let numel = t.numel();
        let bytes = Vec::<u8>::try_from(t.reshape([-1]).view_dtype(Kind::Uint8)).map_err(|e| e.to_string())?;
        let key = self.data.len().to_string();
        self.data.push(bytes);
        let size = t.size();
        let mut stride = vec![1i64; size.len()];
        for i in (0..size.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * size[i + 1].max(1);
        }
        Ok(Value::Tensor(TensorRef { storage: StorageRef { kind, key, numel: numel as u64 }, offset: 0, size, stride }))
    }
}

fn text(s: &str) -> Value {
    Value::Str(s.to_string())
}

/// Writes `c` at `path` in the reference's layout, `{'epoch', 'log', 'optimizer', 'model'}`, as
/// torch.save writes it (PyTorch's `torch.load(path)['model']` and `load_state_dict(strict=True)`
/// take it), atomically.
pub fn write(path: &Path, c: &Checkpoint) -> Result<(), ModelError> {
    let failed = |what: String| ModelError::Write { path: path.to_path_buf(), err: what };
    let mut records = Records::default();
    let mut model = Vec::with_capacity(c.weights.len());
    for (k, t) in c.weights {
        model.push((text(k), records.tensor(t).map_err(failed)?));
    }
    let o = &c.optimizer;
    let mut state = Vec::new();
    for &(i, t) in &o.buffers {
        state.push((
            Value::Int(i as i64),
            Value::Dict(vec![(text("momentum_buffer"), records.tensor(t).map_err(failed)?)]),
        ));
    }
    // the keys of torch.optim.SGD's param_groups in PyTorch 2.11, then the scheduler's initial_lr
    let group = Value::Dict(vec![
        (text("lr"), Value::Float(o.lr)),
        (text("momentum"), Value::Float(o.momentum)),
        (text("dampening"), Value::Int(0)),
        (text("weight_decay"), Value::Float(o.weight_decay)),
        (text("nesterov"), Value::Bool(o.nesterov)),
        (text("maximize"), Value::Bool(false)),
        (text("foreach"), Value::None),
        (text("differentiable"), Value::Bool(false)),
        (text("fused"), Value::None),
        (text("initial_lr"), Value::Float(o.initial_lr)),
        (text("params"), Value::List((0..o.params as i64).map(Value::Int).collect())),
    ]);
    let root = Value::Dict(vec![
        (text("epoch"), Value::Int(c.epoch)),
        (text("log"), c.log.clone()),
        (
            text("optimizer"),
            Value::Dict(vec![(text("state"), Value::Dict(state)), (text("param_groups"), Value::List(vec![group]))]),
        ),
        (text("model"), Value::Dict(model)),
    ]);
    let pkl = pickle::dump(&root).map_err(|e| failed(e.to_string()))?;
    replace_with(path, |tmp| write_zip(tmp, &pkl, &records.data).map_err(|e| failed(format!("{}: {e}", tmp.display()))))
}

/// The zip torch.save writes: the pickle, its format records and one record per storage, each
/// stored uncompressed and aligned to 64 bytes.
fn write_zip(path: &Path, pkl: &[u8], storages: &[Vec<u8>]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::FileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(storages.iter().map(|s| s.len() as u64).sum::<u64>() + pkl.len() as u64 > u32::MAX as u64 / 2);
    let record = |zip: &mut zip::ZipWriter<_>, name: &str, bytes: &[u8]| -> Result<(), String> {
        zip.start_file_aligned(format!("archive/{name}"), options, 64).map_err(|e| err(&e))?;
        zip.write_all(bytes).map_err(|e| err(&e))
    };
    record(&mut zip, "data.pkl", pkl)?;
    record(&mut zip, ".format_version", b"1")?;
    record(&mut zip, ".storage_alignment", b"64")?;
    record(&mut zip, "byteorder", b"little")?;
    for (i, bytes) in storages.iter().enumerate() {
        record(&mut zip, &format!("data/{i}"), bytes)?;
    }
    record(&mut zip, "version", b"3\n")?;
    let inner = zip.finish().map_err(|e| err(&e))?;
    inner.into_inner().map_err(|e| err(e.error()))?.sync_all().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn a_written_checkpoint_reads_back_with_its_momentum_and_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth");
        let w = Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([3, 4]);
        let b = Tensor::from_slice(&[0.5f64, -1.0]);
        let n = Tensor::from_slice(&[7i64]).reshape([] as [i64; 0]);
        let m = Tensor::from_slice(&[1.5f32, 2.5, 3.5, 4.5]);
        let weights = vec![
            ("module.fc.weight".to_string(), w.shallow_clone()),
            ("fc.bias".into(), b.shallow_clone()),
            ("bn.n".into(), n.shallow_clone()),
        ];
        let optimizer = Optimizer {
            lr: 0.2,
            initial_lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: true,
            params: 3,
            buffers: vec![(2, &m)],
        };
        let log = Value::Dict(vec![(text("test"), Value::Dict(vec![(text("top1"), Value::Float(0.75))]))]);
        write(&path, &Checkpoint { epoch: 12, log, weights: &weights, optimizer }).unwrap();
        let Contents::Checkpoint { key, epoch, weights: back, optimizer: Some(sgd) } = read(&path).unwrap() else {
            panic!("not a checkpoint")
        };
        assert_eq!((key, epoch, sgd.params, sgd.lr, sgd.nesterov), ("model", Some(12), 3, Some(0.2), Some(true)));
        assert_eq!(sgd.momentum.len(), 1);
        assert!(sgd.momentum[0].1.equal(&m) && sgd.momentum[0].0 == 2);
        let back = strip_module_prefixes(back);
        let keys: Vec<&str> = back.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["fc.weight", "fc.bias", "bn.n"], "in the written order, module. stripped");
        for ((_, a), (_, b)) in weights.iter().zip(&back) {
            assert!(a.equal(b) && a.kind() == b.kind() && a.size() == b.size());
        }
        assert!(!path.with_extension("pth.partial").exists());
        // the zip's CRC-32 of each record is checked as it is read: a changed tensor byte is refused
        let bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(16).position(|w| w == Vec::<u8>::try_from(&m.view_dtype(Kind::Uint8)).unwrap()).unwrap();
        let mut damaged = bytes.clone();
        damaged[at + 5] ^= 0x01;
        std::fs::write(&path, &damaged).unwrap();
        let err = read(&path).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("model.pth"), "{err}");
    }

    #[test]
    fn other_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pth");
        std::fs::write(&junk, b"PK\x03\x04 not really").unwrap();
        let err = read(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.pth") && err.contains("zip"), "{err}");
        let legacy = dir.path().join("old.pth");
        std::fs::write(&legacy, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
        let err = read(&legacy).unwrap_err().to_string();
        assert!(err.contains("old.pth") && err.contains("before PyTorch 1.6"), "{err}");
        assert_eq!(sniff(&legacy), WeightsFormat::LegacyPth);
        // a safetensors file whose header length (here 0x0280) starts with a pickle's bytes
        let header = format!("{{\"__metadata__\":{{\"format\":\"pt\"}}{}}}", " ".repeat(0x0280 - 32));
        assert_eq!(header.len(), 0x0280);
        let st = dir.path().join("w.safetensors");
        std::fs::write(&st, [&(header.len() as u64).to_le_bytes()[..], header.as_bytes()].concat()).unwrap();
        assert_eq!(sniff(&st), WeightsFormat::Safetensors);
        // a zip whose pickle calls os.system: refused by name, nothing run
        let evil = dir.path().join("evil.pth");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&evil).unwrap());
        zip.start_file("archive/data.pkl", zip::write::FileOptions::default()).unwrap();
        zip.write_all(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.").unwrap();
        zip.finish().unwrap();
        let err = read(&evil).unwrap_err().to_string();
        assert!(err.contains("evil.pth") && err.contains("posix.system"), "{err}");
    }
}
