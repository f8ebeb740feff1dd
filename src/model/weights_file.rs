//! Safetensors files as resmooth writes and reads them: every file it writes carries, in the
//! header's `__metadata__`, a CRC-32C of its tensors (each one's name, dtype, shape and bytes,
//! in name order), which [`read_safetensors`] checks when it is there. Files from elsewhere
//! (`safetensors.torch.save_file`, earlier versions of resmooth) have none and load as before.

use super::ModelError;
use crate::io::replace_with;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tch::{Kind, Tensor};

/// The `__metadata__` key of the checksum: CRC-32C (hex) of the tensors, see [`checksum`].
pub const CHECKSUM_KEY: &str = "resmooth.crc32c";

/// One tensor's bytes on the host, as they go into the file.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    fn of(t: &Tensor) -> Result<Self, String> {
        let t = t.contiguous();
        let dtype = Dtype::try_from(t.kind()).map_err(|e| e.to_string())?;
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, t.numel()).map_err(|e| e.to_string())?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        Ok(HostTensor { dtype, shape, bytes })
    }
}

/// CRC-32C (hex) of named tensors: for each, in name order, its name, dtype, shape and bytes.
/// It does not depend on where the file puts each tensor, only on what it holds.
fn checksum<'a>(tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut crc = 0u32;
    for (name, dtype, shape, bytes) in sorted {
        crc = crc32c::crc32c_append(crc, format!("{name}\0{dtype:?}\0{shape:?}\0").as_bytes());
        crc = crc32c::crc32c_append(crc, bytes);
    }
    format!("{crc:08x}")
}

/// Writes tensors as safetensors with their checksum in the metadata, atomically (see
/// [`crate::io::replace_with`]).
pub fn write_safetensors_atomic(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ModelError> {
    let failed = |err: String| ModelError::Write { path: path.to_path_buf(), err };
    let host: Vec<(&str, HostTensor)> = tensors
        .iter()
        .map(|(k, t)| HostTensor::of(t).map(|h| (k.as_str(), h)))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let sum = checksum(host.iter().map(|(k, h)| (*k, h.dtype, h.shape.as_slice(), h.bytes.as_slice())));
    // "format": "pt" is what safetensors.torch.save_file writes, so the files read as PyTorch's there
    let metadata = BTreeMap::from([("format", "pt".to_string()), (CHECKSUM_KEY, sum)]);
    replace_with(path, |tmp| {
        write_file(tmp, &metadata, host).map_err(|e| ModelError::Write { path: tmp.to_path_buf(), err: e.to_string() })
    })
}

/// Writes a safetensors file: the header (its length, then its JSON), then each tensor's bytes.
/// The safetensors crate writes the metadata's keys in hash order, which differs from process to
/// process; here every key is in sorted order, so the same tensors make the same bytes (a resumed
/// run's weights equal an uninterrupted one's, byte for byte). The tensors go in the crate's
/// order, by decreasing alignment and then name, so that each one's data is aligned.
fn write_file(
    path: &Path,
    metadata: &BTreeMap<&str, String>,
    mut host: Vec<(&str, HostTensor)>,
) -> std::io::Result<()> {
    host.sort_by(|(a, x), (b, y)| y.dtype.cmp(&x.dtype).then(a.cmp(b)));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0;
    for (name, h) in &host {
        let end = offset + h.bytes.len();
        let info = serde_json::json!({ "dtype": h.dtype, "shape": h.shape, "data_offsets": [offset, end] });
        header.insert(name.to_string(), info);
        offset = end;
    }
    let mut json = serde_json::to_vec(&header)?;
    // the header is padded with spaces to a multiple of 8 bytes, as the safetensors crate does
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    for (_, h) in &host {
        out.write_all(&h.bytes)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Reads every tensor of a safetensors file, with an error naming the file; a file whose
/// metadata carries resmooth's checksum is refused when its tensors no longer match it.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing { path: path.to_path_buf(), hint: "no such weights file".into() });
    }
    let read = |err: String| ModelError::Read { path: path.to_path_buf(), err };
    let buffer = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    let file = SafeTensors::deserialize(&buffer).map_err(|e| read(format!("{e:?}")))?;
    let views = file.tensors();
    let (_, header) = SafeTensors::read_metadata(&buffer).map_err(|e| read(format!("{e:?}")))?;
    if let Some(want) = header.metadata().as_ref().and_then(|m| m.get(CHECKSUM_KEY)) {
        let got = checksum(views.iter().map(|(k, v)| (k.as_str(), v.dtype(), v.shape(), v.data())));
        if &got != want {
            return Err(ModelError::Damaged { path: path.to_path_buf(), want: want.clone(), got });
        }
    }
    views
        .into_iter()
        .map(|(name, v)| {
            let kind = Kind::try_from(v.dtype()).map_err(|e| read(format!("{name}: {e}")))?;
            let size: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(v.data(), &size, kind).map_err(|e| read(format!("{name}: {e}")))?;
            Ok((name, t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tensors() -> Vec<(String, Tensor)> {
        vec![
            ("b.weight".into(), Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([3, 4]) / 7.0),
            ("a.num_batches_tracked".into(), Tensor::from(5i64)),
            ("c.half".into(), Tensor::ones([5], (Kind::BFloat16, Device::Cpu))),
        ]
    }

    /// Where each tensor's bytes are in a safetensors file: (name, start, end) in the file.
    fn data_spans(bytes: &[u8]) -> Vec<(String, usize, usize)> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        header
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .map(|(k, v)| {
                let o = &v["data_offsets"];
                (k.clone(), 8 + n + o[0].as_u64().unwrap() as usize, 8 + n + o[1].as_u64().unwrap() as usize)
            })
            .collect()
    }

    #[test]
    fn written_files_carry_a_checksum_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        write_safetensors_atomic(&path, &tensors()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap();
        assert_eq!(meta[CHECKSUM_KEY].len(), 8, "{meta:?}");
        assert_eq!(meta["format"], "pt");
        let mut back = read_safetensors(&path).unwrap();
        back.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want = tensors();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        for ((k, a), (l, b)) in back.iter().zip(&want) {
            assert_eq!((k, a.kind(), a.size()), (l, b.kind(), b.size()));
            assert!(a.equal(b), "{k}");
        }
    }

    #[test]
    fn the_same_tensors_make_the_same_bytes_that_other_readers_read() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
        write_safetensors_atomic(&a, &tensors()).unwrap();
        let mut reversed = tensors();
        reversed.reverse();
        write_safetensors_atomic(&b, &reversed).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "the bytes depend on the order given");
        // tch's reader (the safetensors crate's, without the checksum) reads the same tensors
        let mut back = Tensor::read_safetensors(&a).unwrap();
        back.sort_by(|x, y| x.0.cmp(&y.0));
        let mut want = tensors();
        want.sort_by(|x, y| x.0.cmp(&y.0));
        for ((k, x), (l, y)) in back.iter().zip(&want) {
            assert!(k == l && x.kind() == y.kind() && x.equal(y), "{k}");
        }
        // each tensor's data starts at a multiple of its element size (after the header)
        let bytes = std::fs::read(&a).unwrap();
        for (name, start, _) in data_spans(&bytes) {
            let size = want.iter().find(|(k, _)| *k == name).unwrap().1.kind().elt_size_in_bytes();
            assert_eq!(start % size, 0, "{name} at {start}");
        }
    }

    #[test]
    fn a_flipped_byte_in_any_tensor_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_safetensors_atomic(&path, &tensors()).unwrap();
        let good = std::fs::read(&path).unwrap();
        for (name, start, end) in data_spans(&good) {
            for at in [start, (start + end) / 2, end - 1] {
                let mut bad = good.clone();
                bad[at] ^= 0x10;
                std::fs::write(&path, &bad).unwrap();
                let err = read_safetensors(&path).unwrap_err();
                assert!(matches!(err, ModelError::Damaged { .. }), "{name} byte {at}: {err}");
                let text = err.to_string();
                assert!(text.contains("model.safetensors") && text.contains("damaged"), "{text}");
            }
        }
    }

    #[test]
    fn files_without_a_checksum_load_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.safetensors");
        // as safetensors.torch.save_file or an earlier resmooth writes them: no metadata
        Tensor::write_safetensors(&tensors(), &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_safetensors(&path).unwrap().len(), 3);
        // with nothing to check against, a changed byte goes unnoticed, as it did before
        let (_, start, _) = data_spans(&bytes)[0].clone();
        bytes[start] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_safetensors(&path).is_ok());
    }
}
