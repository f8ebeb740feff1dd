//! The pickle writer: protocol 2, the protocol torch.save uses, with tensors as torch.save writes
//! them (`_rebuild_tensor_v2` of a persistent storage id), so that `torch.load` (also with
//! `weights_only=True`, its default) reads the file.

use super::{PickleError, TensorRef, Value};

/// The pickle of `value` (protocol 2). Numpy arrays are not written.
pub fn dump(value: &Value) -> Result<Vec<u8>, PickleError> {
    let mut out = vec![0x80, 2];
    write(value, &mut out)?;
    out.push(b'.');
    Ok(out)
}

fn global(module: &str, name: &str, out: &mut Vec<u8>) {
    out.push(b'c');
    for part in [module, name] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
}

fn text(s: &str, out: &mut Vec<u8>) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn int(i: i64, out: &mut Vec<u8>) {
    match i {
        0..=0xff => out.extend_from_slice(&[b'K', i as u8]),
        0x100..=0xffff => {
            out.push(b'M');
            out.extend_from_slice(&(i as u16).to_le_bytes());
        }
        _ if i32::try_from(i).is_ok() => {
            out.push(b'J');
            out.extend_from_slice(&(i as i32).to_le_bytes());
        }
        _ => {
            out.extend_from_slice(&[0x8a, 8]);
            out.extend_from_slice(&i.to_le_bytes());
        }
    }
}

fn tuple(items: &[Value], out: &mut Vec<u8>) -> Result<(), PickleError> {
    match items.len() {
        0 => out.push(b')'),
        n @ 1..=3 => {
            for v in items {
                write(v, out)?;
            }
            out.push(0x84 + n as u8);
        }
        _ => {
            out.push(b'(');
            for v in items {
                write(v, out)?;
            }
            out.push(b't');
        }
    }
    Ok(())
}

fn tensor(t: &TensorRef, out: &mut Vec<u8>) -> Result<(), PickleError> {
    global("torch._utils", "_rebuild_tensor_v2", out);
    out.push(b'(');
    // the persistent id of the storage: ('storage', torch.XStorage, key, 'cpu', numel)
    out.push(b'(');
    text("storage", out);
    global("torch", t.storage.kind.class(), out);
    text(&t.storage.key, out);
    text("cpu", out);
    int(t.storage.numel as i64, out);
    out.push(b't');
    out.push(b'Q');
    int(t.offset as i64, out);
    tuple(&t.size.iter().map(|&d| Value::Int(d)).collect::<Vec<_>>(), out)?;
    tuple(&t.stride.iter().map(|&d| Value::Int(d)).collect::<Vec<_>>(), out)?;
    out.push(0x89); // requires_grad False
    global("collections", "OrderedDict", out); // no backward hooks
    out.push(b')');
    out.push(b'R');
    out.push(b't');
    out.push(b'R');
    Ok(())
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), PickleError> {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(b) => out.push(if *b { 0x88 } else { 0x89 }),
        Value::Int(i) => int(*i, out),
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => text(s, out),
        Value::Bytes(b) => {
            // as Python 3 writes bytes in protocol 2
            global("_codecs", "encode", out);
            text(&b.iter().map(|&c| c as char).collect::<String>(), out);
            text("latin1", out);
            out.extend_from_slice(&[0x86, b'R']);
        }
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for v in items {
                    write(v, out)?;
                }
                out.push(b'e');
            }
        }
        Value::Tuple(items) => tuple(items, out)?,
        Value::Dict(items) => {
            out.push(b'}');
            if !items.is_empty() {
                out.push(b'(');
                for (k, v) in items {
                    write(k, out)?;
                    write(v, out)?;
                }
                out.push(b'u');
            }
        }
        Value::Tensor(t) => tensor(t, out)?,
        Value::Array(_) => {
            return Err(PickleError::Opcode { name: "a numpy array (not written)".into(), at: out.len() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{load, StorageKind, StorageRef};
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let t = TensorRef {
            storage: StorageRef { kind: StorageKind::Float, key: "3".into(), numel: 12 },
            offset: 2,
            size: vec![2, 5],
            stride: vec![5, 1],
        };
        let value = Value::Dict(vec![
            (Value::Str("epoch".into()), Value::Int(200)),
            (Value::Int(-70_000), Value::Int(i64::MIN)),
            (Value::Str("v".into()), Value::List(vec![Value::Float(-0.25), Value::None, Value::Bool(false)])),
            (Value::Str("t".into()), Value::Tuple((0..5).map(Value::Int).collect())),
            (Value::Str("w".into()), Value::Tensor(t)),
            (Value::Str("b".into()), Value::Bytes(vec![0, 200, 255])),
            (Value::Str("e".into()), Value::Dict(Vec::new())),
            (Value::Str("one".into()), Value::Tuple(vec![Value::Int(70_000)])),
        ]);
        assert_eq!(load(&dump(&value).unwrap()).unwrap(), value);
    }
}
