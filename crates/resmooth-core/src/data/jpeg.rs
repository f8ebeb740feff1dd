//! JPEG decoding with libjpeg-turbo (the `turbojpeg` crate's bundled build, through its raw
//! TurboJPEG 3 bindings): the decoder Pillow ships, with Pillow's settings (accurate integer
//! IDCT, smooth chroma upsampling), so its RGB pixels are Pillow's `convert("RGB")` of the file;
//! and, opt-in, libjpeg-turbo's reduced-DCT decoding at 1/2, 1/4 or 1/8 of the size, whose
//! pixels are its own (not Pillow's resize of the full image).
//!
//! Warnings are treated as Pillow treats them: a file that ends early ("Premature end of JPEG
//! file") is refused as truncated, as Pillow refuses it; other libjpeg warnings (extraneous bytes
//! before a marker, for instance) are ignored, as Pillow ignores them.

use super::resize::Region;
use std::cell::RefCell;
use turbojpeg::raw;

/// libjpeg-turbo's reduced-DCT decoding scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DctScale {
    /// Full size (Pillow's pixels).
    Full,
    /// Half of each side.
    Half,
    /// A quarter of each side.
    Quarter,
    /// An eighth of each side.
    Eighth,
}

impl DctScale {
    /// The denominator of the scale: 1, 2, 4 or 8.
    pub fn denominator(self) -> usize {
        match self {
            DctScale::Full => 1,
            DctScale::Half => 2,
            DctScale::Quarter => 4,
            DctScale::Eighth => 8,
        }
    }

    /// A side of `n` pixels at this scale, rounded up as libjpeg-turbo's `TJSCALED`.
    pub fn scaled(self, n: usize) -> usize {
        n.div_ceil(self.denominator())
    }

    /// The smallest decoding whose view of a `crop_h` x `crop_w` box still has at least `out`
    /// pixels on both sides: decoding smaller would enlarge what the resize then shrinks.
    pub fn for_crop(crop_h: usize, crop_w: usize, out: usize) -> DctScale {
        [DctScale::Eighth, DctScale::Quarter, DctScale::Half]
            .into_iter()
            .find(|s| crop_h / s.denominator() >= out && crop_w / s.denominator() >= out)
            .unwrap_or(DctScale::Full)
    }
}

/// The frame of a JPEG file as its header gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegHeader {
    pub height: usize,
    pub width: usize,
    /// CMYK or YCCK: colours that depend on an ICC profile.
    pub cmyk: bool,
}

/// Why a JPEG file cannot be decoded; the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("is truncated: the JPEG data ends before the image does")]
    Truncated,
    #[error("is not a readable JPEG image: {0}")]
    Unreadable(String),
}

/// One TurboJPEG decompressor, made once per thread.
struct Handle(raw::tjhandle);

impl Handle {
    fn new() -> Result<Handle, JpegError> {
        // SAFETY: tj3Init has no preconditions; a null result is checked.
        let ptr = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as libc::c_int) };
        if ptr.is_null() {
            return Err(JpegError::Unreadable("cannot start libjpeg-turbo's decompressor".into()));
        }
        Ok(Handle(ptr))
    }

    /// The last error's message and whether it was only a warning.
    fn last_error(&self) -> (String, bool) {
        // SAFETY: the handle is live; the message is a NUL-terminated string it owns.
        let msg = unsafe { std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(self.0)) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        let warning = unsafe { raw::tj3GetErrorCode(self.0) } == raw::TJERR_TJERR_WARNING as libc::c_int;
        (msg, warning)
    }

    /// Maps a TurboJPEG status to Pillow's verdict (see the module's documentation).
    fn check(&self, status: libc::c_int) -> Result<(), JpegError> {
        if status == 0 {
            return Ok(());
        }
        let (msg, warning) = self.last_error();
        if msg.contains("Premature end of JPEG file") {
            Err(JpegError::Truncated)
        } else if warning {
            Ok(())
        } else {
            Err(JpegError::Unreadable(msg))
        }
    }

    fn header(&self, bytes: &[u8]) -> Result<JpegHeader, JpegError> {
        self.header_and_scan(bytes).map(|(head, _)| head)
    }

    /// The header, and where the first scan starts (when the file starts with its start marker).
    fn header_and_scan(&self, bytes: &[u8]) -> Result<(JpegHeader, Option<usize>), JpegError> {
        // a header cut short leaves the handle's frame size at the previous file's: refuse it first
        let scan = match bytes.starts_with(&[0xFF, 0xD8]) {
            true => Some(first_scan(bytes)?),
            false => None,
        };
        // SAFETY: the buffer is valid for its length.
        let status = unsafe { raw::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as raw::size_t) };
        self.check(status)?;
        // SAFETY: the handle is live.
        let get = |p: raw::TJPARAM| unsafe { raw::tj3Get(self.0, p as libc::c_int) };
        let (w, h) = (get(raw::TJPARAM_TJPARAM_JPEGWIDTH), get(raw::TJPARAM_TJPARAM_JPEGHEIGHT));
        if w <= 0 || h <= 0 {
            return Err(JpegError::Unreadable("its header ends before the image size (a truncated file?)".into()));
        }
        let cs = get(raw::TJPARAM_TJPARAM_COLORSPACE);
        let cmyk = cs == raw::TJCS_TJCS_CMYK as libc::c_int || cs == raw::TJCS_TJCS_YCCK as libc::c_int;
        Ok((JpegHeader { height: h as usize, width: w as usize, cmyk }, scan))
    }

    fn decode(&self, bytes: &[u8], scale: DctScale, out: &mut Vec<u8>) -> Result<(usize, usize), JpegError> {
        let head = self.header(bytes)?;
        let (h, w) = (scale.scaled(head.height), scale.scaled(head.width));
        self.decompress(bytes, scale, Region { top: 0, left: 0, height: h, width: w }, (h, w), out)?;
        Ok((h, w))
    }

    /// Decodes the part of the image at `scale` that holds `want` (a box of the scaled image),
    /// with a margin of context around it, its edges on the scaled iMCU grid; returns the
    /// part's box ([`decode_jpeg_part_into`]).
    fn decode_part(&self, bytes: &[u8], scale: DctScale, want: Region, out: &mut Vec<u8>) -> Result<Region, JpegError> {
        let (head, scan) = self.header_and_scan(bytes)?;
        // the rows below the part are never read, so a file cut short there must be caught here,
        // as the whole file's decoding catches it
        if !scan.is_some_and(|scan| ends_after(bytes, scan)) {
            return Err(JpegError::Truncated);
        }
        let (h, w) = (scale.scaled(head.height), scale.scaled(head.width));
        // SAFETY: the handle is live and holds the header just read.
        let subsamp = unsafe { raw::tj3Get(self.0, raw::TJPARAM_TJPARAM_SUBSAMP as libc::c_int) };
        let whole = Region { top: 0, left: 0, height: h, width: w };
        let part = match usize::try_from(subsamp).ok().and_then(|s| MCU_WIDTH.get(s)) {
            Some(&mcu) => part_holding(want, (h, w), scale.scaled(mcu)),
            None => whole, // a subsampling TurboJPEG does not name: decode it all
        };
        self.decompress(bytes, scale, part, (h, w), out)?;
        Ok(part)
    }

    /// Decompresses the box `part` of the image at `scale` (`h` x `w` there) into `out`, RGB.
    fn decompress(
        &self,
        bytes: &[u8],
        scale: DctScale,
        part: Region,
        (h, w): (usize, usize),
        out: &mut Vec<u8>,
    ) -> Result<(), JpegError> {
        let sf = raw::tjscalingfactor { num: 1, denom: scale.denominator() as libc::c_int };
        // SAFETY: the handle is live; 1/1, 1/2, 1/4 and 1/8 are supported scaling factors.
        self.check(unsafe { raw::tj3SetScalingFactor(self.0, sf) })?;
        let cropped = part != Region { top: 0, left: 0, height: h, width: w };
        let region = match cropped {
            true => raw::tjregion {
                x: part.left as libc::c_int,
                y: part.top as libc::c_int,
                w: part.width as libc::c_int,
                h: part.height as libc::c_int,
            },
            false => raw::tjregion { x: 0, y: 0, w: 0, h: 0 }, // TJUNCROPPED
        };
        // SAFETY: the header was read; the region's left edge is on the scaled iMCU grid.
        self.check(unsafe { raw::tj3SetCroppingRegion(self.0, region) })?;
        out.clear();
        out.resize(part.height * part.width * 3, 0);
        // SAFETY: `out` holds the part's rows of its width in RGB pixels (pitch width * 3), what
        // TurboJPEG writes for this scaling factor and cropping region.
        let status = unsafe {
            raw::tj3Decompress8(
                self.0,
                bytes.as_ptr(),
                bytes.len() as raw::size_t,
                out.as_mut_ptr(),
                (part.width * 3) as libc::c_int,
                raw::TJPF_TJPF_RGB as libc::c_int,
            )
        };
        let checked = self.check(status);
        if cropped {
            // the next file read with this handle starts uncropped
            // SAFETY: the handle is live; TJUNCROPPED needs no header.
            unsafe { raw::tj3SetCroppingRegion(self.0, raw::tjregion { x: 0, y: 0, w: 0, h: 0 }) };
        }
        checked
    }
}

/// The iMCU width of each TurboJPEG subsampling (`TJSAMP_444` to `TJSAMP_441`), turbojpeg.h's
/// `tjMCUWidth` (a table in the header, not in the library).
const MCU_WIDTH: [usize; 7] = [8, 16, 16, 8, 8, 32, 8];

/// Rows and columns of context decoded around a wanted box, so that chroma upsampling at its
/// edges sees the neighbours the whole image's decoding sees.
const CONTEXT: usize = 16;

/// The box of an `h` x `w` image to decode for `want`: `want` with [`CONTEXT`] pixels around it
/// (inside the image), its edges moved out onto the grid of `mcu`-wide columns (libjpeg-turbo
/// decodes whole iMCU columns, and writes them all).
fn part_holding(want: Region, (h, w): (usize, usize), mcu: usize) -> Region {
    let top = want.top.saturating_sub(CONTEXT);
    let bottom = (want.top + want.height + CONTEXT).min(h);
    let mcu = mcu.max(1);
    let left = want.left.saturating_sub(CONTEXT) / mcu * mcu;
    let right = (want.left + want.width + CONTEXT).next_multiple_of(mcu).min(w);
    Region { top, left, height: bottom - top, width: right - left }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

/// Where the JPEG's first scan (SOS) starts, once the segments after its start marker have run
/// whole up to it: an error when the end marker or a stray byte comes first (unreadable), or
/// when `bytes` end before (a file cut short).
fn first_scan(bytes: &[u8]) -> Result<usize, JpegError> {
    let no_image = || JpegError::Unreadable("its header has no image data".into());
    let mut i = 2; // after SOI
    while i + 2 <= bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (0xFF, 0xFF) => i += 1, // fill byte
            (0xFF, 0xDA) => return Ok(i),
            (0xFF, 0xD9) => return Err(no_image()),
            (0xFF, 0x01 | 0xD0..=0xD7) => i += 2, // markers without a length
            (0xFF, _) if i + 4 <= bytes.len() => {
                i += 2 + u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            }
            (0xFF, _) => return Err(JpegError::Truncated),
            _ => return Err(no_image()),
        }
    }
    Err(JpegError::Truncated)
}

/// Whether an end marker (EOI) follows the first scan, which starts at `scan`: entropy-coded data
/// cannot hold one (a 0xFF there is followed by 0x00 or a restart marker), so a file cut short
/// anywhere after its header has none.
fn ends_after(bytes: &[u8], scan: usize) -> bool {
    bytes[scan..].windows(2).rev().any(|w| w == [0xFF, 0xD9])
}

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's decompressor, made on first use.
fn with_handle<T>(f: impl FnOnce(&Handle) -> Result<T, JpegError>) -> Result<T, JpegError> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Handle::new()?);
        }
        f(slot.as_ref().expect("made above"))
    })
}

/// The frame size and colour space of a JPEG file, read from its header only.
pub fn jpeg_header(bytes: &[u8]) -> Result<JpegHeader, JpegError> {
    with_handle(|h| h.header(bytes))
}

/// Decodes a JPEG file to RGB at `scale` into `out` (resized to fit); returns (height, width).
/// Grey files are replicated to three channels as Pillow's `convert("RGB")`; CMYK files are
/// decoded without colour management, so callers refuse them first (see [`jpeg_header`]).
pub fn decode_jpeg_into(bytes: &[u8], scale: DctScale, out: &mut Vec<u8>) -> Result<(usize, usize), JpegError> {
    with_handle(|h| h.decode(bytes, scale, out))
}

/// Decodes the part of a JPEG file at `scale` that holds `want` (a box of the image at that
/// scale) into `out`, and returns that part's box: `want` with some context around it, inside the
/// image. Its pixels in `want` are those of [`decode_jpeg_into`]'s image (at the part's own left
/// and right edges, where chroma upsampling sees no neighbour, they may differ); the rows below
/// it are not decoded at all, and only its columns are transformed and converted.
pub fn decode_jpeg_part_into(
    bytes: &[u8],
    scale: DctScale,
    want: Region,
    out: &mut Vec<u8>,
) -> Result<Region, JpegError> {
    with_handle(|h| h.decode_part(bytes, scale, want, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, ((x + y) * 3) as u8]));
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
        bytes
    }

    #[test]
    fn decodes_at_every_scale_with_turbojpeg_sizes() {
        let bytes = jpeg(37, 21);
        assert_eq!(jpeg_header(&bytes).unwrap(), JpegHeader { height: 21, width: 37, cmyk: false });
        let mut out = Vec::new();
        for (scale, size) in [
            (DctScale::Full, (21, 37)),
            (DctScale::Half, (11, 19)),
            (DctScale::Quarter, (6, 10)),
            (DctScale::Eighth, (3, 5)),
        ] {
            assert_eq!(decode_jpeg_into(&bytes, scale, &mut out).unwrap(), size, "{scale:?}");
            assert_eq!(out.len(), size.0 * size.1 * 3);
        }
        // the decoded colours are the encoded ones, give or take the compression
        decode_jpeg_into(&bytes, DctScale::Full, &mut out).unwrap();
        assert!(out[(10 * 37 + 20) * 3].abs_diff(180) <= 8, "{}", out[(10 * 37 + 20) * 3]);
    }

    #[test]
    fn a_part_has_the_pixels_of_the_whole_decoding() {
        use rand::{Rng, SeedableRng};
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/imagenet");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // 4:2:0, 4:4:4, progressive 4:2:0, 4:2:2, 4:2:0 at 256 px, grey
        for name in ["jpeg_a", "jpeg_b", "jpeg_c", "jpeg_d", "jpeg_e", "jpeg_grey"] {
            let bytes = std::fs::read(fixtures.join(format!("{name}.jpg"))).unwrap();
            for scale in [DctScale::Full, DctScale::Half, DctScale::Quarter, DctScale::Eighth] {
                let (mut whole, mut part) = (Vec::new(), Vec::new());
                let (h, w) = decode_jpeg_into(&bytes, scale, &mut whole).unwrap();
                for k in 0..60 {
                    let (height, width) = (rng.random_range(1..=h), rng.random_range(1..=w));
                    let want = Region {
                        top: rng.random_range(0..=h - height),
                        left: rng.random_range(0..=w - width),
                        height,
                        width,
                    };
                    let got = decode_jpeg_part_into(&bytes, scale, want, &mut part).unwrap();
                    assert!(
                        got.top <= want.top
                            && got.left <= want.left
                            && got.top + got.height >= want.top + want.height
                            && got.left + got.width >= want.left + want.width
                            && got.top + got.height <= h
                            && got.left + got.width <= w,
                        "{name} {scale:?} {want:?} {got:?}"
                    );
                    assert_eq!(part.len(), got.height * got.width * 3);
                    for y in want.top..want.top + want.height {
                        let at = ((y - got.top) * got.width + want.left - got.left) * 3;
                        let row = &part[at..at + want.width * 3];
                        let start = (y * w + want.left) * 3;
                        assert!(
                            row == &whole[start..start + want.width * 3],
                            "{name} {scale:?} box {k} {want:?}: row {y}"
                        );
                    }
                }
                // the handle decodes whole images again afterwards
                let mut again = Vec::new();
                decode_jpeg_into(&bytes, scale, &mut again).unwrap();
                assert!(again == whole);
            }
        }
    }

    #[test]
    fn truncated_and_foreign_data_are_errors_not_panics() {
        let bytes = jpeg(64, 64);
        let mut out = Vec::new();
        assert_eq!(decode_jpeg_into(&bytes[..bytes.len() / 2], DctScale::Full, &mut out), Err(JpegError::Truncated));
        let garbage = decode_jpeg_into(b"\xFF\xD8\xFF\xC0\x00\x02\xFF\xD9", DctScale::Full, &mut out);
        assert!(matches!(garbage, Err(JpegError::Unreadable(_))), "{garbage:?}");
        assert!(matches!(jpeg_header(b""), Err(JpegError::Unreadable(_))));
        // the decoder still works after errors
        assert_eq!(decode_jpeg_into(&bytes, DctScale::Half, &mut out).unwrap(), (32, 32));
        // a part above the place where the file is cut is refused all the same
        let top = Region { top: 0, left: 0, height: 8, width: 8 };
        for cut in [bytes.len() * 3 / 4, bytes.len() - 2] {
            let part = decode_jpeg_part_into(&bytes[..cut], DctScale::Full, top, &mut out);
            assert_eq!(part, Err(JpegError::Truncated), "cut at {cut} of {}", bytes.len());
            // as the whole file's decoding refuses it
            let whole = decode_jpeg_into(&bytes[..cut], DctScale::Full, &mut out);
            assert_eq!(whole, Err(JpegError::Truncated), "cut at {cut} of {}", bytes.len());
        }
        assert!(decode_jpeg_part_into(&bytes, DctScale::Full, top, &mut out).is_ok());
        // a file cut inside its header, read after a good one by the same handle: the good
        // file's frame size must not be taken for its own
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        for cut in [sos - 40, sos - 1, sos + 1] {
            assert_eq!(jpeg_header(&bytes).unwrap().width, 64);
            assert_eq!(jpeg_header(&bytes[..cut]), Err(JpegError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn the_scale_keeps_the_crop_at_least_the_output_size() {
        assert_eq!(DctScale::for_crop(350, 400, 224), DctScale::Full);
        assert_eq!(DctScale::for_crop(448, 500, 224), DctScale::Half);
        assert_eq!(DctScale::for_crop(447, 900, 224), DctScale::Full);
        assert_eq!(DctScale::for_crop(1800, 1792, 224), DctScale::Eighth);
        assert_eq!(DctScale::for_crop(1000, 1000, 224), DctScale::Quarter);
    }
}
