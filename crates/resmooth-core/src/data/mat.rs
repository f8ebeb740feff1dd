//! MATLAB level-5 MAT-files (as SVHN ships them): the numeric arrays, compressed (miCOMPRESSED)
//! or not, either byte order. Cells, structs, sparse and character arrays are skipped.

use super::DataError;
use flate2::read::ZlibDecoder;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_DOUBLE: u32 = 6;
const MX_UINT8: u32 = 9;
const MX_UINT64: u32 = 15;

/// The values of a numeric array: `uint8` arrays stay bytes, every other class becomes `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

impl MatData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }

    /// True when the array holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named numeric array, values in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: MatData,
}

struct Parser<R> {
    r: R,
    big_endian: bool,
}

type Res<T> = Result<T, String>;
/// A data-element tag: its type, its byte count and, for a small element, its data.
type Tag = (u32, usize, Option<Vec<u8>>);

fn truncated(what: &str) -> String {
    format!("truncated or corrupt while reading {what} (the file is cut short or damaged; get it again)")
}

impl<R: Read> Parser<R> {
    fn u32(&self, b: &[u8]) -> u32 {
        let b: [u8; 4] = b[..4].try_into().unwrap();
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn exact(&mut self, n: usize, what: &str) -> Res<Vec<u8>> {
        // a declared size is not trusted for the up-front allocation: the buffer grows as bytes arrive
        let mut buf = Vec::with_capacity(n.min(1 << 20));
        (&mut self.r).take(n as u64).read_to_end(&mut buf).map_err(|e| format!("{}: {e}", truncated(what)))?;
        if buf.len() != n {
            return Err(truncated(what));
        }
        Ok(buf)
    }

    /// Reads a data-element tag; `None` at a clean end of input. Returns (type, bytes, small data).
    fn tag(&mut self, what: &str) -> Res<Option<Tag>> {
        let mut first = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.r.read(&mut first[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(truncated(what)),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{}: {e}", truncated(what))),
            }
        }
        let word = self.u32(&first[..4]);
        if word >> 16 != 0 {
            // small data element: type and size share the first word, data in the second
            let n = (word >> 16) as usize;
            if n > 4 {
                return Err(format!("{what}: small data element of {n} bytes (at most 4 allowed)"));
            }
            return Ok(Some((word & 0xffff, n, Some(first[4..4 + n].to_vec()))));
        }
        Ok(Some((word, self.u32(&first[4..]) as usize, None)))
    }

    /// Reads one sub-element of a matrix: its type and bytes, skipping the padding to 8 bytes.
    fn sub(&mut self, what: &str) -> Res<(u32, Vec<u8>)> {
        let (ty, n, small) = self.tag(what)?.ok_or_else(|| truncated(what))?;
        if let Some(data) = small {
            return Ok((ty, data));
        }
        let data = self.exact(n, what)?;
        self.exact((8 - n % 8) % 8, what)?;
        Ok((ty, data))
    }

    /// Parses the body of an miMATRIX element; `None` for an array that is not numeric.
    fn matrix(&mut self) -> Res<Option<MatArray>> {
        let (ty, flags) = self.sub("array flags")?;
        if ty != MI_UINT32 || flags.len() != 8 {
            return Err(format!("array flags of type {ty} and {} bytes, expected 8 bytes of miUINT32", flags.len()));
        }
        let word = self.u32(&flags);
        let class = word & 0xff;
        if !(MX_DOUBLE..=MX_UINT64).contains(&class) {
            return Ok(None);
        }
        let (ty, dims) = self.sub("dimensions")?;
        if ty != MI_INT32 || dims.len() % 4 != 0 || dims.len() < 8 {
            return Err("dimensions are not an miINT32 array of at least 2 values".into());
        }
        let dims: Vec<usize> = dims.chunks_exact(4).map(|c| self.u32(c) as usize).collect();
        let (_, name) = self.sub("array name")?;
        let name = String::from_utf8_lossy(&name).into_owned();
        if word & 0x800 != 0 {
            return Err(format!("array '{name}' is complex; only real arrays are read"));
        }
        let (ty, raw) = self.sub(&format!("values of '{name}'"))?;
        let data = if class == MX_UINT8 {
            if ty != MI_UINT8 {
                return Err(format!("uint8 array '{name}' stores its values as type {ty}, expected miUINT8"));
            }
            MatData::U8(raw)
        } else {
            MatData::F64(self.to_f64(ty, &raw).ok_or_else(|| format!("values of '{name}' have unknown type {ty}"))?)
        };
        let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if want != Some(data.len()) {
            let want = want.map_or_else(|| "more than memory can hold".to_string(), |w| w.to_string());
            return Err(format!("array '{name}' of shape {dims:?} holds {} values, expected {want}", data.len()));
        }
        Ok(Some(MatArray { name, dims, data }))
    }

    fn to_f64(&self, ty: u32, raw: &[u8]) -> Option<Vec<f64>> {
        let be = self.big_endian;
        macro_rules! conv {
            ($t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                raw.chunks_exact(W)
                    .map(|c| {
                        let b: [u8; W] = c.try_into().unwrap();
                        (if be { <$t>::from_be_bytes(b) } else { <$t>::from_le_bytes(b) }) as f64
                    })
                    .collect()
            }};
        }
        Some(match ty {
            MI_INT8 => conv!(i8),
            MI_UINT8 => conv!(u8),
            MI_INT16 => conv!(i16),
            MI_UINT16 => conv!(u16),
            MI_INT32 => conv!(i32),
            MI_UINT32 => conv!(u32),
            MI_SINGLE => conv!(f32),
            MI_DOUBLE => conv!(f64),
            MI_INT64 => conv!(i64),
            MI_UINT64 => conv!(u64),
            _ => return None,
        })
    }
}

/// Reads the 128-byte header; returns true for a big-endian file.
fn header(r: &mut impl Read) -> Res<bool> {
    let mut h = [0u8; 128];
    r.read_exact(&mut h).map_err(|_| "shorter than the 128-byte header of a MAT-file".to_string())?;
    let big_endian = match &h[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => return Err("no MATLAB 5.0 MAT-file header (not a .mat file)".into()),
    };
    let version = if big_endian { u16::from_be_bytes([h[124], h[125]]) } else { u16::from_le_bytes([h[124], h[125]]) };
    if version != 0x0100 {
        return Err(format!(
            "MAT-file version {version:#06x}; only level 5 (saved by MATLAB -v6/-v7 or scipy) is read, not -v7.3 (HDF5)"
        ));
    }
    Ok(big_endian)
}

fn parse(r: impl Read) -> Res<Vec<MatArray>> {
    let mut r = r;
    let big_endian = header(&mut r)?;
    let mut p = Parser { r, big_endian };
    let mut arrays = Vec::new();
    while let Some((ty, n, small)) = p.tag("data element")? {
        if small.is_some() {
            continue;
        }
        let mut limited = (&mut p.r).take(n as u64);
        let array = match ty {
            MI_COMPRESSED => {
                let mut inner = Parser { r: ZlibDecoder::new(&mut limited), big_endian };
                match inner.tag("compressed element")? {
                    Some((MI_MATRIX, _, None)) => inner.matrix()?,
                    Some(_) => None,
                    None => return Err("empty compressed element".into()),
                }
            }
            MI_MATRIX => Parser { r: &mut limited, big_endian }.matrix()?,
            _ => None,
        };
        std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| format!("{}: {e}", truncated("data element")))?;
        if limited.limit() != 0 {
            return Err(truncated("data element"));
        }
        if ty != MI_COMPRESSED {
            p.exact((8 - n % 8) % 8, "padding")?;
        }
        arrays.extend(array);
    }
    Ok(arrays)
}

/// Reads every numeric array of a level-5 MAT-file.
pub fn read_mat(path: &Path) -> Result<Vec<MatArray>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    parse(BufReader::with_capacity(1 << 20, file)).map_err(|what| DataError::malformed(path, what))
}

/// Checks only that `path` starts with a level-5 MAT-file header (a quick test of a present file).
pub fn check_mat_header(path: &Path) -> Result<(), DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    header(&mut file).map(|_| ()).map_err(|what| DataError::malformed(path, what))
}

fn push_sub(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    if data.len() <= 4 {
        out.extend_from_slice(&(ty | (data.len() as u32) << 16).to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + 4 - data.len(), 0);
        return;
    }
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (8 - data.len() % 8) % 8, 0);
}

fn matrix_element(a: &MatArray) -> Vec<u8> {
    let mut body = Vec::new();
    let class = if matches!(a.data, MatData::U8(_)) { MX_UINT8 } else { MX_DOUBLE };
    push_sub(&mut body, MI_UINT32, &[class.to_le_bytes(), [0; 4]].concat());
    let dims: Vec<u8> = a.dims.iter().flat_map(|&d| (d as u32).to_le_bytes()).collect();
    push_sub(&mut body, MI_INT32, &dims);
    push_sub(&mut body, MI_INT8, a.name.as_bytes());
    match &a.data {
        MatData::U8(v) => push_sub(&mut body, MI_UINT8, v),
        // like MATLAB, store whole numbers in 0..=255 as bytes
        MatData::F64(v) if v.iter().all(|&x| x.fract() == 0.0 && (0.0..=255.0).contains(&x)) => {
            push_sub(&mut body, MI_UINT8, &v.iter().map(|&x| x as u8).collect::<Vec<_>>())
        }
        MatData::F64(v) => push_sub(&mut body, MI_DOUBLE, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()),
    }
    let mut element = Vec::with_capacity(body.len() + 8);
    element.extend_from_slice(&MI_MATRIX.to_le_bytes());
    element.extend_from_slice(&(body.len() as u32).to_le_bytes());
    element.extend_from_slice(&body);
    element
}

/// Writes `arrays` as a little-endian level-5 MAT-file, each array compressed or not (the
/// subset [`read_mat`] reads; used to make synthetic SVHN files).
pub fn write_mat(path: &Path, arrays: &[MatArray], compress: bool) -> Result<(), DataError> {
    let io = |e| DataError::io(path, e);
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut header = format!("MATLAB 5.0 MAT-file, Platform: resmooth, compressed: {compress}").into_bytes();
    header.resize(116, b' ');
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&0x0100u16.to_le_bytes());
    header.extend_from_slice(b"IM");
    out.write_all(&header).map_err(io)?;
    for a in arrays {
        let element = matrix_element(a);
        if compress {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&element).map_err(io)?;
            let packed = z.finish().map_err(io)?;
            out.write_all(&MI_COMPRESSED.to_le_bytes()).map_err(io)?;
            out.write_all(&(packed.len() as u32).to_le_bytes()).map_err(io)?;
            out.write_all(&packed).map_err(io)?;
        } else {
            out.write_all(&element).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrays() -> Vec<MatArray> {
        vec![
            MatArray { name: "X".into(), dims: vec![2, 3, 1, 2], data: MatData::U8((0..12).collect()) },
            MatArray { name: "labels".into(), dims: vec![3, 1], data: MatData::F64(vec![10.0, 1.0, 7.0]) },
            MatArray { name: "w".into(), dims: vec![1, 2], data: MatData::F64(vec![0.5, -2.0]) },
        ]
    }

    #[test]
    fn round_trips_compressed_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            let path = dir.path().join(format!("a{compress}.mat"));
            write_mat(&path, &arrays(), compress).unwrap();
            assert_eq!(read_mat(&path).unwrap(), arrays());
            check_mat_header(&path).unwrap();
        }
    }

    #[test]
    fn reads_a_hand_made_big_endian_file_and_skips_char_arrays() {
        // header, then a char array (skipped), then int16 class [[1, -2]] stored as miINT16
        let mut f = vec![b' '; 116];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&[0x01, 0x00]);
        f.extend_from_slice(b"MI");
        let be = |v: u32| v.to_be_bytes();
        let mut text = Vec::new();
        text.extend([be(MI_UINT32), be(8), be(4), be(0)].concat()); // mxCHAR_CLASS
        text.extend([be(MI_INT32), be(8), be(1), be(1)].concat());
        text.extend([be(MI_INT8 | 1 << 16), [b's', 0, 0, 0]].concat());
        f.extend([be(MI_MATRIX), be(text.len() as u32)].concat());
        f.extend(&text);
        let mut num = Vec::new();
        num.extend([be(MI_UINT32), be(8), be(10), be(0)].concat()); // mxINT16_CLASS
        num.extend([be(MI_INT32), be(8), be(1), be(2)].concat());
        num.extend([be(MI_INT8 | 1 << 16), [b'v', 0, 0, 0]].concat());
        num.extend([be(MI_INT16 | 4 << 16), [0, 1, 0xff, 0xfe]].concat());
        f.extend([be(MI_MATRIX), be(num.len() as u32)].concat());
        f.extend(&num);
        let got = parse(&f[..]).unwrap();
        assert_eq!(got, vec![MatArray { name: "v".into(), dims: vec![1, 2], data: MatData::F64(vec![1.0, -2.0]) }]);
    }

    #[test]
    fn bad_files_give_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.mat");
        for compress in [false, true] {
            write_mat(&path, &arrays(), compress).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
            let err = read_mat(&path).unwrap_err().to_string();
            assert!(err.contains("t.mat") && err.contains("truncated"), "{err}");
        }
        std::fs::write(&path, b"not a mat file").unwrap();
        assert!(read_mat(&path).unwrap_err().to_string().contains("header"));
        let mut v73 = vec![b' '; 124];
        v73.extend_from_slice(&[0x00, 0x02]);
        v73.extend_from_slice(b"IM");
        std::fs::write(&path, &v73).unwrap();
        assert!(read_mat(&path).unwrap_err().to_string().contains("v7.3"));
        let bad = vec![MatArray { name: "X".into(), dims: vec![2, 2], data: MatData::U8(vec![1, 2, 3]) }];
        write_mat(&path, &bad, true).unwrap();
        assert!(read_mat(&path).unwrap_err().to_string().contains("holds 3 values, expected 4"));
    }
}
