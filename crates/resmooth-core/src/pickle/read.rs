//! The pickle reader: a stack machine over the opcodes of protocols 0 to 5, whose globals are a
//! closed list. Containers live in arenas and are referred to by index, so a pickle that refers
//! back to a container (as Python's memo allows) sees its later contents, as Python would, and
//! no nesting, however deep or circular, can overflow the stack while the machine runs; the
//! values it returns are nested at most [`MAX_DEPTH`] deep.

use super::{Array, Dtype, PickleError, StorageKind, StorageRef, TensorRef, Value};
use std::collections::HashMap;
use std::rc::Rc;

/// How deep the values of a pickle may nest (a checkpoint's nest 4 deep, CIFAR's 2).
const MAX_DEPTH: usize = 64;

/// The globals a pickle may name: what torch.save writes for state_dicts and optimizer states,
/// and what numpy writes for arrays. Any other global is refused by name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    /// `collections.OrderedDict`: read as a dict, its items in order.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`: a strided view of a storage.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`: an `nn.Parameter`, read as its tensor.
    RebuildParameter,
    /// `torch.FloatStorage` and its siblings, in a storage's persistent id.
    Storage(StorageKind),
    /// `numpy.core.multiarray._reconstruct` (`numpy._core` since numpy 2): an empty array, filled by BUILD.
    Reconstruct,
    /// `numpy.ndarray`, the first argument of `_reconstruct`.
    Ndarray,
    /// `numpy.dtype`, its byte order set by BUILD.
    NumpyDtype,
    /// `numpy.core.numeric._frombuffer`: an array of protocol 5 pickles.
    FromBuffer,
    /// `_codecs.encode(text, 'latin1')`: how protocol 2 writes Python 3 bytes.
    Encode,
}

impl Global {
    /// The global `module.name`, if it is one read.
    fn named(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch", class) => Global::Storage(StorageKind::ALL.into_iter().find(|k| k.class() == class)?),
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
            ("numpy", "ndarray") => Global::Ndarray,
            ("numpy", "dtype") => Global::NumpyDtype,
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => Global::FromBuffer,
            ("_codecs", "encode") => Global::Encode,
            _ => return None,
        })
    }
}

/// A value on the machine's stack or in its memo; containers are arena indices.
#[derive(Debug, Clone)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(usize),
    Tuple(usize),
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Array(usize),
    Dtype(usize),
}

/// Reads the pickle `bytes` into a value. Nothing in it is run: globals other than those of
/// tensors, numpy arrays and `OrderedDict` are refused by name.
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine::new(bytes);
    let top = m.run()?;
    m.value(&top, 0)
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the opcode being run starts, for messages.
    at: usize,
    stack: Vec<Obj>,
    marks: Vec<usize>,
    memo: HashMap<u64, Obj>,
    lists: Vec<Vec<Obj>>,
    tuples: Vec<Vec<Obj>>,
    dicts: Vec<DictObj>,
    arrays: Vec<Array>,
    dtypes: Vec<Dtype>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Machine {
            bytes,
            pos: 0,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            lists: Vec::new(),
            tuples: Vec::new(),
            dicts: Vec::new(),
            arrays: Vec::new(),
            dtypes: Vec::new(),
        }
    }

    fn bad<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed { at: self.at, what: what.into() })
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return self.bad(format!(
                "{n} bytes announced but only {} left (the file is cut short)",
                self.bytes.len() - self.pos
            ));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else { return self.bad("a line without its end") };
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_text(&mut self) -> Result<&'a str, PickleError> {
        let line = self.line()?;
        std::str::from_utf8(line).or_else(|_| self.bad("a line that is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Obj, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.bad("an opcode takes a value from an empty stack");
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>, PickleError> {
        let Some(mark) = self.marks.pop() else { return self.bad("an opcode needs a MARK that is not there") };
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> Result<&Obj, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(top) if self.stack.len() > floor => Ok(top),
            _ => self.bad("an opcode works on an empty stack"),
        }
    }

    fn push_tuple(&mut self, items: Vec<Obj>) {
        self.tuples.push(items);
        self.stack.push(Obj::Tuple(self.tuples.len() - 1));
    }

    fn push_list(&mut self, items: Vec<Obj>) {
        self.lists.push(items);
        self.stack.push(Obj::List(self.lists.len() - 1));
    }

    fn push_dict(&mut self) {
        self.dicts.push(DictObj::default());
        self.stack.push(Obj::Dict(self.dicts.len() - 1));
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                self.stack.push(v.clone());
                Ok(())
            }
            None => self.bad(format!("memo entry {key} read before it is written")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn pairs(&self, items: Vec<Obj>) -> Result<Vec<(Obj, Obj)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.bad("a dict with a key and no value");
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn set_items(&mut self, items: Vec<(Obj, Obj)>) -> Result<(), PickleError> {
        let Obj::Dict(d) = *self.top()? else { return self.bad("SETITEM(S) on something that is not a dict") };
        let dict = &mut self.dicts[d];
        for (k, v) in items {
            match Key::of(&k).map(|key| (dict.index.get(&key).copied(), key)) {
                Some((Some(at), _)) => dict.items[at].1 = v,
                Some((None, key)) => {
                    dict.index.insert(key, dict.items.len());
                    dict.items.push((k, v));
                }
                None => dict.items.push((k, v)),
            }
        }
        Ok(())
    }

    /// Runs the opcodes up to STOP; the value left on the stack.
    fn run(&mut self) -> Result<Obj, PickleError> {
        loop {
            self.at = self.pos;
            let [op] = self.fixed::<1>()?;
            match op {
                0x80 => {
                    let [proto] = self.fixed::<1>()?;
                    if proto > 5 {
                        return self.bad(format!("pickle protocol {proto} (at most 5 exists)"));
                    }
                }
                0x95 => {
                    self.fixed::<8>()?;
                }
                b'.' => {
                    let top = self.pop()?;
                    return if self.stack.is_empty() && self.marks.is_empty() {
                        Ok(top)
                    } else {
                        self.bad("values left on the stack at STOP")
                    };
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.marks.last().copied().unwrap_or(0) {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?.clone();
                    self.stack.push(top);
                }
                b'N' => self.stack.push(Obj::None),
                0x88 => self.stack.push(Obj::Bool(true)),
                0x89 => self.stack.push(Obj::Bool(false)),
                b'I' => {
                    let text = self.line_text()?;
                    let v = match text {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        t => Obj::Int(t.trim().parse().or_else(|_| self.bad(format!("INT {t:?}")))?),
                    };
                    self.stack.push(v);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.fixed()?);
                    self.stack.push(Obj::Int(v as i64));
                }
                b'K' => {
                    let [v] = self.fixed::<1>()?;
                    self.stack.push(Obj::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.fixed()?);
                    self.stack.push(Obj::Int(v as i64));
                }
                b'L' => {
                    let text = self.line_text()?;
                    let digits = text.trim().trim_end_matches('L');
                    let v = digits.parse().or_else(|_| self.bad(format!("LONG {text:?} beyond 64 bits")))?;
                    self.stack.push(Obj::Int(v));
                }
                0x8a => {
                    let [n] = self.fixed::<1>()?;
                    let v = self.long(n as u64)?;
                    self.stack.push(Obj::Int(v));
                }
                0x8b => {
                    let n = u32::from_le_bytes(self.fixed()?);
                    let v = self.long(n as u64)?;
                    self.stack.push(Obj::Int(v));
                }
                b'F' => {
                    let text = self.line_text()?;
                    let v = text.trim().parse().or_else(|_| self.bad(format!("FLOAT {text:?}")))?;
                    self.stack.push(Obj::Float(v));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.fixed()?);
                    self.stack.push(Obj::Float(v));
                }
                b'S' => {
                    let line = self.line()?;
                    let v = python_string(line).or_else(|what| self.bad(what))?;
                    self.stack.push(Obj::Bytes(v.into()));
                }
                b'V' => {
                    let line = self.line()?;
                    let v = raw_unicode_escape(line).or_else(|what| self.bad(what))?;
                    self.stack.push(Obj::Str(v.into()));
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'T' => {
                            let n = i32::from_le_bytes(self.fixed()?);
                            u64::try_from(n).or_else(|_| self.bad("a negative string length"))?
                        }
                        b'U' | b'C' => self.fixed::<1>()?[0] as u64,
                        b'B' => u32::from_le_bytes(self.fixed()?) as u64,
                        _ => u64::from_le_bytes(self.fixed()?),
                    };
                    let v = self.take(n)?;
                    self.stack.push(Obj::Bytes(v.into()));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u32::from_le_bytes(self.fixed()?) as u64,
                        0x8c => self.fixed::<1>()?[0] as u64,
                        _ => u64::from_le_bytes(self.fixed()?),
                    };
                    let raw = self.take(n)?;
                    let v = std::str::from_utf8(raw).or_else(|_| self.bad("a unicode string that is not UTF-8"))?;
                    self.stack.push(Obj::Str(v.into()));
                }
                b'}' => self.push_dict(),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push_dict();
                    self.set_items(pairs)?;
                }
                b']' => self.push_list(Vec::new()),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_list(items);
                }
                b')' => self.push_tuple(Vec::new()),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_tuple(items);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.bad(format!("TUPLE{n} with fewer than {n} values on the stack"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_tuple(items);
                }
                b'a' | b'e' => {
                    let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                    let Obj::List(l) = *self.top()? else {
                        return self.bad("APPEND(S) on something that is not a list");
                    };
                    self.lists[l].extend(items);
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![(k, v)]
                    } else {
                        let items = self.pop_mark()?;
                        self.pairs(items)?
                    };
                    self.set_items(items)?;
                }
                b'p' => {
                    let text = self.line_text()?;
                    let key = text.trim().parse().or_else(|_| self.bad(format!("PUT {text:?}")))?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let [key] = self.fixed::<1>()?;
                    self.memo_put(key as u64)?;
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.fixed()?);
                    self.memo_put(key as u64)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let text = self.line_text()?;
                    let key = text.trim().parse().or_else(|_| self.bad(format!("GET {text:?}")))?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let [key] = self.fixed::<1>()?;
                    self.memo_get(key as u64)?;
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.fixed()?);
                    self.memo_get(key as u64)?;
                }
                b'c' => {
                    let module = self.line_text()?;
                    let name = self.line_text()?;
                    let g =
                        Global::named(module, name).ok_or_else(|| PickleError::Global(format!("{module}.{name}")))?;
                    self.stack.push(Obj::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(module), Obj::Str(name)) = (module, name) else {
                        return self.bad("STACK_GLOBAL without two strings");
                    };
                    let g =
                        Global::named(&module, &name).ok_or_else(|| PickleError::Global(format!("{module}.{name}")))?;
                    self.stack.push(Obj::Global(g));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let Obj::Tuple(t) = args else { return self.bad("REDUCE without an argument tuple") };
                    let args = self.tuples[t].clone();
                    let v = self.call(f, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    match self.pop()? {
                        Obj::Global(Global::OrderedDict) => self.push_dict(),
                        _ => return self.bad("NEWOBJ of a class other than OrderedDict"),
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    self.build(obj, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent(pid)?;
                    self.stack.push(storage);
                }
                other => {
                    return Err(PickleError::Opcode { name: opcode_name(other), at: self.at });
                }
            }
        }
    }

    /// A little-endian two's complement integer of `n` bytes (LONG1, LONG4).
    fn long(&mut self, n: u64) -> Result<i64, PickleError> {
        if n > 8 {
            return self.bad(format!("an integer of {n} bytes (beyond 64 bits)"));
        }
        let raw = self.take(n)?;
        if raw.is_empty() {
            return Ok(0);
        }
        let negative = raw[raw.len() - 1] & 0x80 != 0;
        let mut buf = [if negative { 0xff } else { 0 }; 8];
        buf[..raw.len()].copy_from_slice(raw);
        Ok(i64::from_le_bytes(buf))
    }

    fn ints(&self, obj: &Obj, what: &str) -> Result<Vec<i64>, PickleError> {
        let items = match obj {
            Obj::Tuple(t) => &self.tuples[*t],
            Obj::List(l) => &self.lists[*l],
            _ => return self.bad(format!("{what} is not a tuple of integers")),
        };
        items
            .iter()
            .map(|v| match v {
                Obj::Int(i) => Ok(*i),
                _ => self.bad(format!("{what} is not a tuple of integers")),
            })
            .collect()
    }

    fn text(&self, obj: &Obj, what: &str) -> Result<String, PickleError> {
        match obj {
            Obj::Str(s) => Ok(s.to_string()),
            Obj::Bytes(b) => {
                std::str::from_utf8(b).map(str::to_string).or_else(|_| self.bad(format!("{what} is not text")))
            }
            _ => self.bad(format!("{what} is not text")),
        }
    }

    /// REDUCE: calls one of the read globals on `args`.
    fn call(&mut self, f: Obj, args: Vec<Obj>) -> Result<Obj, PickleError> {
        let Obj::Global(g) = f else { return self.bad("REDUCE of something that is not a global") };
        match g {
            Global::OrderedDict => {
                let mut pairs = Vec::new();
                if let Some(items) = args.first() {
                    let items = match items {
                        Obj::List(l) => self.lists[*l].clone(),
                        Obj::Tuple(t) => self.tuples[*t].clone(),
                        _ => return self.bad("OrderedDict of something that is not a list of pairs"),
                    };
                    for item in items {
                        let pair = match item {
                            Obj::Tuple(t) => self.tuples[t].clone(),
                            Obj::List(l) => self.lists[l].clone(),
                            _ => return self.bad("OrderedDict of something that is not a list of pairs"),
                        };
                        let [k, v]: [Obj; 2] =
                            pair.try_into().or_else(|_| self.bad("an OrderedDict item that is not a pair"))?;
                        pairs.push((k, v));
                    }
                }
                self.push_dict();
                self.set_items(pairs)?;
                Ok(self.stack.pop().expect("just pushed"))
            }
            Global::RebuildTensor => {
                if !(6..=7).contains(&args.len()) {
                    return self.bad(format!("_rebuild_tensor_v2 with {} arguments (6 or 7 expected)", args.len()));
                }
                let Obj::Storage(storage) = &args[0] else { return self.bad("_rebuild_tensor_v2 without a storage") };
                let Obj::Int(offset) = args[1] else { return self.bad("_rebuild_tensor_v2 without an offset") };
                let size = self.ints(&args[2], "a tensor's size")?;
                let stride = self.ints(&args[3], "a tensor's stride")?;
                if size.len() != stride.len() || offset < 0 || size.iter().chain(&stride).any(|&d| d < 0) {
                    return self.bad(format!("a tensor of size {size:?}, stride {stride:?} at offset {offset}"));
                }
                Ok(Obj::Tensor(Rc::new(TensorRef {
                    storage: (**storage).clone(),
                    offset: offset as u64,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter => match args.first() {
                Some(t @ Obj::Tensor(_)) => Ok(t.clone()),
                _ => self.bad("_rebuild_parameter without a tensor"),
            },
            Global::Reconstruct => {
                if !matches!(args.first(), Some(Obj::Global(Global::Ndarray))) {
                    return self.bad("_reconstruct of something that is not numpy.ndarray");
                }
                let dtype = Dtype { descr: "u1".into(), byte_order: '|' };
                self.arrays.push(Array { shape: vec![0], dtype, fortran: false, data: Vec::new() });
                Ok(Obj::Array(self.arrays.len() - 1))
            }
            Global::NumpyDtype => {
                let descr = self.text(args.first().unwrap_or(&Obj::None), "a dtype's type")?;
                self.dtypes.push(Dtype { descr, byte_order: '=' });
                Ok(Obj::Dtype(self.dtypes.len() - 1))
            }
            Global::Encode => {
                let text = self.text(args.first().unwrap_or(&Obj::None), "the text of _codecs.encode")?;
                let codec = self.text(args.get(1).unwrap_or(&Obj::None), "the codec of _codecs.encode")?;
                if !matches!(codec.as_str(), "latin1" | "latin-1") {
                    return self.bad(format!("_codecs.encode with codec {codec} (latin1 expected)"));
                }
                let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                let bytes = bytes.map_or_else(|| self.bad("latin1 text with a character beyond 255"), Ok)?;
                Ok(Obj::Bytes(bytes.into()))
            }
            Global::FromBuffer => {
                let [buf, dtype, shape, order]: [Obj; 4] =
                    args.try_into().or_else(|_| self.bad("_frombuffer with other than 4 arguments"))?;
                let Obj::Bytes(data) = buf else { return self.bad("_frombuffer without bytes") };
                let Obj::Dtype(d) = dtype else { return self.bad("_frombuffer without a dtype") };
                let shape = self.ints(&shape, "an array's shape")?;
                let fortran = self.text(&order, "an array's order")? == "F";
                let array = self.array(shape, self.dtypes[d].clone(), fortran, data.to_vec())?;
                self.arrays.push(array);
                Ok(Obj::Array(self.arrays.len() - 1))
            }
            Global::Storage(_) | Global::Ndarray => self.bad("a class called as a function"),
        }
    }

    /// An array checked: its bytes are exactly its shape's elements.
    fn array(&self, shape: Vec<i64>, dtype: Dtype, fortran: bool, data: Vec<u8>) -> Result<Array, PickleError> {
        let Some(item) = dtype_size(&dtype.descr) else {
            return self.bad(format!("numpy dtype {:?} (only numbers and bools are read)", dtype.descr));
        };
        let shape: Option<Vec<u64>> = shape.iter().map(|&d| u64::try_from(d).ok()).collect();
        let shape = shape.map_or_else(|| self.bad("an array with a negative dimension"), Ok)?;
        let want = shape.iter().try_fold(item as u64, |n, &d| n.checked_mul(d));
        if want != Some(data.len() as u64) {
            return self.bad(format!(
                "an array of shape {shape:?} and dtype {} with {} bytes",
                dtype.descr,
                data.len()
            ));
        }
        Ok(Array { shape, dtype, fortran, data })
    }

    /// BUILD: sets the state of an array or a dtype; an OrderedDict's attributes (a state_dict's
    /// `_metadata`) are dropped.
    fn build(&mut self, obj: Obj, state: Obj) -> Result<(), PickleError> {
        match obj {
            Obj::Dict(_) => Ok(()),
            Obj::Array(a) => {
                let Obj::Tuple(t) = state else { return self.bad("an array's state is not a tuple") };
                let items = self.tuples[t].clone();
                // (version, shape, dtype, is_fortran, data), or without the version before numpy 1.0
                let items = if items.len() == 5 { &items[1..] } else { &items[..] };
                let [shape, dtype, fortran, data] = items else {
                    return self.bad("an array's state of another length");
                };
                let shape = self.ints(shape, "an array's shape")?;
                let Obj::Dtype(d) = dtype else { return self.bad("an array's state without a dtype") };
                let fortran = match fortran {
                    Obj::Bool(b) => *b,
                    Obj::Int(i) => *i != 0,
                    _ => return self.bad("an array's order flag is not a bool"),
                };
                let Obj::Bytes(data) = data else { return self.bad("an array of objects (only numbers are read)") };
                self.arrays[a] = self.array(shape, self.dtypes[*d].clone(), fortran, data.to_vec())?;
                Ok(())
            }
            Obj::Dtype(d) => {
                let Obj::Tuple(t) = state else { return self.bad("a dtype's state is not a tuple") };
                let order = self.tuples[t].get(1).cloned().unwrap_or(Obj::None);
                let order = self.text(&order, "a dtype's byte order")?;
                self.dtypes[d].byte_order = order.chars().next().unwrap_or('|');
                Ok(())
            }
            _ => self.bad("BUILD of an object other than an array, a dtype or an OrderedDict"),
        }
    }

    /// BINPERSID: a torch.save storage, `('storage', torch.XStorage, key, location, numel)`.
    fn persistent(&self, pid: Obj) -> Result<Obj, PickleError> {
        let Obj::Tuple(t) = pid else { return self.bad("a persistent id that is not a tuple") };
        let items = &self.tuples[t];
        let [tag, kind, key, _location, numel] = items.as_slice() else {
            return self.bad("a persistent id that is not a torch.save storage");
        };
        if self.text(tag, "a persistent id's tag")? != "storage" {
            return self.bad("a persistent id that is not a torch.save storage");
        }
        let Obj::Global(Global::Storage(kind)) = kind else { return self.bad("a storage without its type") };
        let key = self.text(key, "a storage's key")?;
        let Obj::Int(numel) = numel else { return self.bad("a storage without its size") };
        let numel = u64::try_from(*numel).or_else(|_| self.bad("a storage of negative size"))?;
        Ok(Obj::Storage(Rc::new(StorageRef { kind: *kind, key, numel })))
    }

    /// The value of `obj`, nested `depth` deep.
    fn value(&self, obj: &Obj, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return self.bad(format!("values nested deeper than {MAX_DEPTH} levels (or containing themselves)"));
        }
        let all = |items: &[Obj]| items.iter().map(|v| self.value(v, depth + 1)).collect::<Result<Vec<_>, _>>();
        Ok(match obj {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(i) => Value::Int(*i),
            Obj::Float(f) => Value::Float(*f),
            Obj::Str(s) => Value::Str(s.to_string()),
            Obj::Bytes(b) => Value::Bytes(b.to_vec()),
            Obj::List(l) => Value::List(all(&self.lists[*l])?),
            Obj::Tuple(t) => Value::Tuple(all(&self.tuples[*t])?),
            Obj::Dict(d) => Value::Dict(
                self.dicts[*d]
                    .items
                    .iter()
                    .map(|(k, v)| Ok((self.value(k, depth + 1)?, self.value(v, depth + 1)?)))
                    .collect::<Result<_, PickleError>>()?,
            ),
            Obj::Tensor(t) => Value::Tensor((**t).clone()),
            Obj::Array(a) => Value::Array(self.arrays[*a].clone()),
            Obj::Global(_) | Obj::Storage(_) | Obj::Dtype(_) => {
                return self.bad("a class, storage or dtype outside the value it makes");
            }
        })
    }
}

/// A dict: its items in order, and where each key (of the types that compare simply) is.
#[derive(Debug, Default)]
struct DictObj {
    items: Vec<(Obj, Obj)>,
    index: HashMap<Key, usize>,
}

/// What a dict key compares by: Python's equality for ints, bools and text (a Python 2 `str`
/// key equals the same text, as `pickle.load(f, encoding='latin1')` makes it).
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Text(Vec<u8>),
}

impl Key {
    fn of(k: &Obj) -> Option<Key> {
        match k {
            Obj::Int(i) => Some(Key::Int(*i)),
            Obj::Bool(b) => Some(Key::Int(*b as i64)),
            Obj::Str(s) => Some(Key::Text(s.as_bytes().to_vec())),
            Obj::Bytes(b) => Some(Key::Text(b.to_vec())),
            _ => None,
        }
    }
}

/// Bytes per element of a numpy type string (`u1`, `<f4`, `|b1`, …); `None` for other types.
fn dtype_size(descr: &str) -> Option<usize> {
    let d = descr.trim_start_matches(['<', '>', '|', '=']);
    let (kind, size) = d.split_at(d.find(|c: char| c.is_ascii_digit())?);
    matches!(kind, "u" | "i" | "f" | "b").then(|| size.parse().ok()).flatten()
}

/// The bytes of a protocol 0 STRING argument: a Python `repr` of a str, in quotes.
fn python_string(line: &[u8]) -> Result<Vec<u8>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = match line {
        [q, inner @ .., e] if (*q == b'\'' || *q == b'"') && q == e => inner,
        _ => return Err("a STRING that is not quoted".into()),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter().copied();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = [it.next().unwrap_or(0), it.next().unwrap_or(0)];
                let v = std::str::from_utf8(&hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(v.ok_or("a STRING with a bad \\x escape")?);
            }
            Some(c @ (b'\\' | b'\'' | b'"')) => out.push(c),
            _ => return Err("a STRING with an escape that is not read".into()),
        }
    }
    Ok(out)
}

/// The text of a protocol 0 UNICODE argument (raw-unicode-escape: `\uXXXX`, `\UXXXXXXXX`, the
/// other bytes latin1).
fn raw_unicode_escape(line: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let mut i = 0;
    while i < line.len() {
        let width = match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (b, _) => {
                out.push(b as char);
                i += 1;
                continue;
            }
        };
        let hex = line.get(i + 2..i + 2 + width).ok_or("a UNICODE with a cut escape")?;
        let code = std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
        out.push(code.and_then(char::from_u32).ok_or("a UNICODE with a bad escape")?);
        i += 2 + width;
    }
    Ok(out)
}

/// The name of an opcode that is not read.
fn opcode_name(op: u8) -> String {
    let name = match op {
        b'P' => "PERSID",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return format!("0x{op:02x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{'a': [1, -2, 3.5], 'b': (True, None, b'xy'), 7: 'z'}` as Python 3.11 pickles it with
    /// protocol 2.
    #[test]
    fn plain_values_of_protocol_2() {
        let bytes = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00eX\x01\x00\x00\x00bq\x03\x88NU\x02xyq\x04\x87q\x05K\x07X\x01\x00\x00\x00zq\x06u.";
        let v = load(bytes).unwrap();
        assert_eq!(v.get("a"), Some(&Value::List(vec![Value::Int(1), Value::Int(-2), Value::Float(3.5)])));
        assert_eq!(v.get("b"), Some(&Value::Tuple(vec![Value::Bool(true), Value::None, Value::Bytes(b"xy".to_vec())])));
        let Value::Dict(items) = &v else { panic!("{v:?}") };
        assert_eq!(items[2], (Value::Int(7), Value::Str("z".into())));
    }

    /// Protocol 0 (Python 2's text opcodes), as `pickle.dumps({'k': [1, 'x\n'], 'f': 0.5}, 0)`
    /// wrote them in Python 2, with the memo GETs a shared list makes.
    #[test]
    fn text_opcodes_of_protocol_0_and_shared_containers() {
        let bytes = b"(dp0\nS'k'\np1\n(lp2\nI1\naS'x\\n'\np3\naI01\nasS'f'\np4\nF0.5\nsS'again'\np5\ng2\ns.";
        let v = load(bytes).unwrap();
        let list = Value::List(vec![Value::Int(1), Value::Bytes(b"x\n".to_vec()), Value::Bool(true)]);
        assert_eq!(v.get("k"), Some(&list));
        assert_eq!(v.get("f"), Some(&Value::Float(0.5)));
        // the memo refers to the list itself: its later items are seen, as in Python
        assert_eq!(v.get("again"), Some(&list));
    }

    #[test]
    fn other_globals_are_refused_by_name_and_nothing_runs() {
        for (bytes, name) in [
            (&b"cposix\nsystem\n(S'touch /tmp/pwned'\ntR."[..], "posix.system"),
            (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93.", "builtins.eval"),
            (b"\x80\x02ctorch\nload\nq\x00.", "torch.load"),
            (b"\x80\x02c__torch__.Net\nNet\n.", "__torch__.Net.Net"),
        ] {
            assert_eq!(load(bytes), Err(PickleError::Global(name.into())), "{name}");
            let message = PickleError::Global(name.into()).to_string();
            assert!(message.contains(name) && message.contains("nothing in the file is run"), "{message}");
        }
        let err = load(b"(ios\nsystem\n.").unwrap_err();
        assert!(matches!(&err, PickleError::Opcode { name, .. } if name == "INST"), "{err}");
    }

    #[test]
    fn cut_circular_and_malformed_pickles_are_errors() {
        // cut inside a BINBYTES that announces more than there is
        assert!(matches!(load(b"\x80\x03B\xff\xff\xff\x7fab"), Err(PickleError::Malformed { .. })));
        assert!(matches!(load(b"\x80\x02K\x01"), Err(PickleError::Malformed { .. })), "no STOP");
        assert!(matches!(load(b"\x80\x02e."), Err(PickleError::Malformed { .. })), "APPENDS without MARK");
        assert!(matches!(load(b"\x80\x02K\x01K\x02."), Err(PickleError::Malformed { .. })), "two values left");
        assert!(matches!(load(b"\x80\x02h\x05."), Err(PickleError::Malformed { .. })), "GET before PUT");
        // a list that contains itself: l = []; l.append(l)
        let err = load(b"\x80\x02]q\x00h\x00a.").unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
        // a million nested lists, which a recursive reader could not survive
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b"(", 1_000_000).flatten());
        deep.extend(std::iter::repeat_n(b"l", 1_000_000).flatten());
        deep.push(b'.');
        assert!(load(&deep).unwrap_err().to_string().contains("nested deeper"));
    }

    #[test]
    fn numbers_of_every_width() {
        // LONG1 of 8 bytes, LONG1 negative, BININT2, LONG text, INT text
        let bytes = b"\x80\x02(\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x8a\x02\x00\xffM\x34\x12L-12L\nI42\nt.";
        let want = [i64::MAX, -256, 0x1234, -12, 42].map(Value::Int).to_vec();
        assert_eq!(load(bytes).unwrap(), Value::Tuple(want));
        assert!(load(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").is_err(), "beyond 64 bits");
        assert_eq!(dtype_size("<f4"), Some(4));
        assert_eq!(dtype_size("|b1"), Some(1));
        assert_eq!(dtype_size("u1"), Some(1));
        assert_eq!(dtype_size("|O"), None);
        assert_eq!(dtype_size("<U5"), None);
    }
}
