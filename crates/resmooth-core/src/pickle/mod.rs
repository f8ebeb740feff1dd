//! Python's pickle format, the part that checkpoints and datasets use: a reader that builds
//! plain values (dicts, lists, numbers, strings, torch.save tensors, numpy arrays) and never
//! runs anything, and a writer of the same values (protocol 2, as torch.save writes).
//!
//! Why a reader of our own (measured on torch.save files of PyTorch 2.11): libtorch's own
//! unpickler (`torch::pickle_load`, or its `Unpickler` with a type resolver through the shim)
//! turns `collections.OrderedDict`, the type of every state_dict, into None before any resolver
//! is asked (`readGlobal` in unpickler.cpp), accepts only protocol 2 and knows no numpy
//! global, so it reads neither a real checkpoint nor torchvision's CIFAR pickles. serde-pickle
//! 1.2.0, tried on the same files: "unsupported opcode 'Q'" on every torch.save `data.pkl`
//! (BINPERSID, the opcode of its tensors), "expected dict, got Global(Other)" on
//! `OrderedDict()`, and an unknown global either fails without its name ("unresolved global
//! reference") or, with `replace_unresolved_globals`, is silently replaced by its arguments;
//! so it can neither rebuild a tensor nor refuse `posix.system` by name. This reader (about 800
//! lines formatted, no dependency) is a stack machine over the opcodes of protocols
//! 0 to 5 whose globals are a closed list ([`read`]): a file naming any other (`posix.system`,
//! `builtins.eval`, a class) is refused with that name before anything else happens.

mod read;
mod write;

pub use read::load;
pub use write::dump;

/// The element type of a torch storage (`torch.FloatStorage` and its siblings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
}

impl StorageKind {
    /// Every storage type, in the order of [`StorageKind::class`].
    pub const ALL: [StorageKind; 10] = [
        StorageKind::Float,
        StorageKind::Double,
        StorageKind::Half,
        StorageKind::BFloat16,
        StorageKind::Long,
        StorageKind::Int,
        StorageKind::Short,
        StorageKind::Char,
        StorageKind::Byte,
        StorageKind::Bool,
    ];

    /// The class name torch.save writes (`FloatStorage`, …).
    pub fn class(self) -> &'static str {
        match self {
            StorageKind::Float => "FloatStorage",
            StorageKind::Double => "DoubleStorage",
            StorageKind::Half => "HalfStorage",
            StorageKind::BFloat16 => "BFloat16Storage",
            StorageKind::Long => "LongStorage",
            StorageKind::Int => "IntStorage",
            StorageKind::Short => "ShortStorage",
            StorageKind::Char => "CharStorage",
            StorageKind::Byte => "ByteStorage",
            StorageKind::Bool => "BoolStorage",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageKind::Double | StorageKind::Long => 8,
            StorageKind::Float | StorageKind::Int => 4,
            StorageKind::Half | StorageKind::BFloat16 | StorageKind::Short => 2,
            StorageKind::Char | StorageKind::Byte | StorageKind::Bool => 1,
        }
    }
}

/// A storage of a torch.save file: its record `data/<key>` holds `numel` elements.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub kind: StorageKind,
    pub key: String,
    pub numel: u64,
}

/// A tensor of a torch.save file (`torch._utils._rebuild_tensor_v2`): a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// A numpy dtype as numpy pickles it: its type string (`u1`, `i8`, `f4`, …) and byte order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dtype {
    pub descr: String,
    /// `<`, `>`, `|` (not applicable) or `=` (native).
    pub byte_order: char,
}

/// A numpy array: its shape, dtype and raw bytes (C order unless `fortran`).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<u64>,
    pub dtype: Dtype,
    pub fortran: bool,
    pub data: Vec<u8>,
}

/// A value read from (or written to) a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `bytes`, or a Python 2 `str` (read as bytes, as `pickle.load(f, encoding='bytes')` does).
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A dict or an `OrderedDict`, its items in file order.
    Dict(Vec<(Value, Value)>),
    Tensor(TensorRef),
    Array(Array),
}

impl Value {
    /// The text of a `str`, or of `bytes` that are UTF-8 (Python 2's `str` keys).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value of `key` in a dict (`str` or Python 2 `str` keys).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// An integer (a bool counts as 0 or 1, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// A number as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => self.as_int().map(|i| i as f64),
        }
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Tensor(_) => "a tensor",
            Value::Array(_) => "a numpy array",
        }
    }
}

/// Why a pickle was not read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    /// The pickle names a global that is not on the list of those read; nothing was run.
    #[error("it names the Python global {0}, which is not read: only tensors, numpy arrays and plain containers are (nothing in the file is run)")]
    Global(String),
    /// An opcode that this reader does not take (code objects, extensions, out-of-band buffers, …).
    #[error("opcode {name} at byte {at} is not read (only the opcodes of plain data, tensors and numpy arrays are)")]
    Opcode { name: String, at: usize },
    /// The bytes are not a well-formed pickle of the values read.
    #[error("not a valid pickle at byte {at}: {what}")]
    Malformed { at: usize, what: String },
}
