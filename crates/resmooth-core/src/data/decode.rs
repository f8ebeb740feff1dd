//! Image files into uint8 RGB: decoded (in parallel, with progress), converted as Pillow's
//! `convert("RGB")` does for the loader of torchvision's ImageFolder (grey replicated, alpha
//! dropped, palettes expanded), refused with the file's name when the conversion would be a
//! guess (CMYK JPEGs, 16-bit PNGs), and optionally resized to one square size.

use super::jpeg::{decode_jpeg_into, decode_jpeg_part_into, jpeg_header, DctScale};
use super::resize::{resize_center_crop, Region};
use super::{DataError, ImageSet};
use crate::progress::{Progress, Unit};
use image::{ColorType, ImageFormat};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Which decoders make the pixels of image files (part of the cached statistics' fingerprint).
pub(crate) const DECODERS: &str = "JPEG: libjpeg-turbo, accurate IDCT, smooth upsampling; PNG: image crate";

/// How the images of a dataset are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// As they are on disk: all must share one size.
    Native,
    /// torchvision's `Resize(S)` + `CenterCrop(S)`: the shorter side to `S` (Pillow's antialiased
    /// bilinear resampling), then the centre `S` x `S` square.
    Square(usize),
}

impl Size {
    /// `--image-size S` when given, else the images' own size.
    pub fn from_flag(image_size: Option<usize>) -> Size {
        image_size.map_or(Size::Native, Size::Square)
    }

    /// The side of a square size.
    pub fn side(self) -> Option<usize> {
        match self {
            Size::Square(s) => Some(s),
            Size::Native => None,
        }
    }
}

/// The hint of every size mismatch.
pub(crate) const SIZE_HINT: &str =
    "pass --image-size S to resize every image once at load time (shorter side to S, then the centre S x S square)";

/// Whether a file name has a JPEG or PNG extension.
pub(crate) fn is_image(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// Number of colour components of a baseline or progressive JPEG's frame (its SOF segment), if
/// the header can be read.
fn jpeg_components(bytes: &[u8]) -> Option<u8> {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if matches!(marker, 0x01 | 0xD0..=0xD9) {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return bytes.get(i + 9).copied();
        }
        if marker == 0xDA {
            return None; // start of scan before any frame header
        }
        i += 2 + len;
    }
    None
}

/// The format of the image file `path` by the signature of its `bytes`; CMYK JPEGs are refused.
fn image_format(path: &Path, bytes: &[u8]) -> Result<ImageFormat, DataError> {
    let format = image::guess_format(bytes)
        .map_err(|_| DataError::malformed(path, "not a readable image: no JPEG or PNG signature"))?;
    if format == ImageFormat::Jpeg && jpeg_components(bytes) == Some(4) {
        return Err(DataError::malformed(
            path,
            "is a CMYK JPEG, whose colours depend on its ICC profile; convert it to RGB first \
             (e.g. `convert IN.jpg -colorspace sRGB OUT.jpg`)",
        ));
    }
    Ok(format)
}

/// Whether the bytes of an image file are a JPEG (the files reduced-DCT decoding applies to).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    image::guess_format(bytes).is_ok_and(|f| f == ImageFormat::Jpeg)
}

/// The (height, width) of the image file `path` from the header of its `bytes`, without decoding.
pub fn image_size(path: &Path, bytes: &[u8]) -> Result<(usize, usize), DataError> {
    let format = image_format(path, bytes)?;
    if format == ImageFormat::Jpeg {
        let head = jpeg_header(bytes).map_err(|e| DataError::malformed(path, e.to_string()))?;
        return Ok((head.height, head.width));
    }
    let (w, h) = image::ImageReader::with_format(std::io::Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| DataError::malformed(path, format!("not a readable image: {e}")))?;
    Ok((h as usize, w as usize))
}

/// Decodes one image file to RGB8, returning (height, width, HWC bytes): JPEG files with
/// libjpeg-turbo as Pillow decodes them, PNG files with the `image` crate. Grey and grey + alpha
/// images are replicated to three channels, RGBA loses its alpha and palettes are expanded, as
/// Pillow's `convert("RGB")`; CMYK JPEGs and 16-bit images are refused with the file's name.
pub fn decode_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(path, &bytes, DctScale::Full)
}

/// The part of the image in `bytes` (read from `path`) that holds `want`, a box of the image
/// decoded at `scale`: a JPEG file's part with some context around `want`
/// ([`crate::data::jpeg::decode_jpeg_part_into`]: the rows below it not decoded), any other file
/// whole. Returns the part's box in the image at that scale and its RGB pixels, which in `want`
/// are [`decode_bytes`]'s.
pub fn decode_part(path: &Path, bytes: &[u8], scale: DctScale, want: Region) -> Result<(Region, Vec<u8>), DataError> {
    if image_format(path, bytes)? == ImageFormat::Jpeg {
        let mut rgb = Vec::new();
        let part = decode_jpeg_part_into(bytes, scale, want, &mut rgb)
            .map_err(|e| DataError::malformed(path, e.to_string()))?;
        return Ok((part, rgb));
    }
    let (h, w, rgb) = decode_bytes(path, bytes, scale)?;
    Ok((Region { top: 0, left: 0, height: h, width: w }, rgb))
}

/// [`decode_rgb`] of the `bytes` read from `path`, JPEG files decoded at `scale` (libjpeg-turbo's
/// reduced DCT; other formats are decoded at full size whatever `scale` says).
pub fn decode_bytes(path: &Path, bytes: &[u8], scale: DctScale) -> Result<(usize, usize, Vec<u8>), DataError> {
    let format = image_format(path, bytes)?;
    if format == ImageFormat::Jpeg {
        let mut rgb = Vec::new();
        let (h, w) = decode_jpeg_into(bytes, scale, &mut rgb).map_err(|e| DataError::malformed(path, e.to_string()))?;
        return Ok((h, w, rgb));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| DataError::malformed(path, format!("not a readable image: {e}")))?;
    match img.color() {
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => {}
        ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16 => {
            return Err(DataError::malformed(
                path,
                "has 16 bits per channel, which training reads as 8; save it with 8 bits per channel \
                 (e.g. `convert IN.png -depth 8 OUT.png`)",
            ))
        }
        other => return Err(DataError::malformed(path, format!("has an unsupported pixel format ({other:?})"))),
    }
    let rgb = img.to_rgb8();
    Ok((rgb.height() as usize, rgb.width() as usize, rgb.into_raw()))
}

/// Decodes one file into `out` (the slot of one image of the set): resized to `Square`, or
/// checked to be `native` (height, width) when the set keeps the images' own size.
pub(crate) fn decode_into(
    path: &Path,
    size: Size,
    native: (usize, usize),
    first: &Path,
    out: &mut [u8],
) -> Result<(), DataError> {
    let (h, w, rgb) = decode_rgb(path)?;
    match size {
        Size::Square(s) => out.copy_from_slice(&resize_center_crop(&rgb, h, w, s)),
        Size::Native if (h, w) == native => out.copy_from_slice(&rgb),
        Size::Native => {
            return Err(DataError::malformed(
                path,
                format!(
                    "is {w}x{h} but {} is {}x{}; the images differ in size: {SIZE_HINT}",
                    first.display(),
                    native.1,
                    native.0
                ),
            ))
        }
    }
    Ok(())
}

/// Decodes labelled image files into one set, in their order, in parallel (the rayon pool of
/// the caller), reporting the files done to `progress` as `what`. Of several bad files the
/// first in order is named.
pub(crate) fn decode_files(
    files: &[(PathBuf, i64)],
    size: Size,
    what: &str,
    progress: &mut dyn Progress,
) -> Result<ImageSet, DataError> {
    let Some((first, _)) = files.first() else {
        return Err(DataError::Invalid(format!("{what}: no image to read")));
    };
    let (h, w) = match size {
        Size::Square(s) => (s, s),
        Size::Native => {
            let (h, w, _) = decode_rgb(first)?;
            (h, w)
        }
    };
    let mut set = ImageSet::new(h, w);
    let per = set.image_bytes();
    set.pixels = vec![0u8; files.len() * per];
    set.labels = files.iter().map(|(_, l)| *l).collect();
    // chunks of files between progress updates: about a hundred updates, never tiny chunks
    let chunk = files.len().div_ceil(100).max(256);
    progress.start(what, Some(files.len() as u64), 0, Unit::Steps);
    let mut done = 0;
    for (files, pixels) in files.chunks(chunk).zip(set.pixels.chunks_mut(chunk * per)) {
        let results: Vec<Result<(), DataError>> = pixels
            .par_chunks_mut(per)
            .zip(files.par_iter())
            .map(|(out, (path, _))| decode_into(path, size, (h, w), first, out))
            .collect();
        if let Some(err) = results.into_iter().find_map(Result::err) {
            progress.finish();
            return Err(err);
        }
        done += files.len();
        progress.advance(done as u64, "");
    }
    progress.finish();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use image::{DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, LumaA, Rgb, RgbaImage};

    fn labelled(paths: &[PathBuf]) -> Vec<(PathBuf, i64)> {
        paths.iter().cloned().zip(0..).collect()
    }

    #[test]
    fn grey_alpha_and_palette_images_convert_as_pillow() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("grey.png");
        GrayImage::from_pixel(3, 2, image::Luma([90])).save(&grey).unwrap();
        let la = dir.path().join("la.png");
        GrayAlphaImage::from_pixel(3, 2, LumaA([40, 0])).save(&la).unwrap();
        let rgba = dir.path().join("rgba.png");
        RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 0])).save(&rgba).unwrap();
        let jpeg = dir.path().join("grey.jpg");
        GrayImage::from_pixel(8, 8, image::Luma([128])).save(&jpeg).unwrap();
        // Pillow: L -> RGB replicates, LA and RGBA -> RGB drop the alpha without blending
        assert_eq!(decode_rgb(&grey).unwrap(), (2, 3, vec![90; 18]));
        assert_eq!(decode_rgb(&la).unwrap(), (2, 3, vec![40; 18]));
        assert_eq!(decode_rgb(&rgba).unwrap().2[..3], [10, 20, 30]);
        let (h, w, px) = decode_rgb(&jpeg).unwrap();
        assert_eq!((h, w), (8, 8));
        assert!(px.iter().all(|&v| v.abs_diff(128) <= 1), "{px:?}");
    }

    #[test]
    fn sixteen_bit_cmyk_and_corrupt_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("deep.png");
        let img: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_pixel(2, 2, Rgb([1000, 2000, 3000]));
        DynamicImage::ImageRgb16(img).save(&deep).unwrap();
        let err = decode_rgb(&deep).unwrap_err().to_string();
        assert!(err.contains("deep.png") && err.contains("16 bits"), "{err}");
        // a JPEG header whose frame has 4 components: SOI, SOF0 (len 17, 8 bits, 2x2, Nf = 4)
        let mut cmyk = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x14, 8, 0, 2, 0, 2, 4];
        cmyk.extend([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0, 0xFF, 0xD9]);
        let path = dir.path().join("print.jpg");
        std::fs::write(&path, &cmyk).unwrap();
        let err = decode_rgb(&path).unwrap_err().to_string();
        assert!(err.contains("print.jpg") && err.contains("CMYK"), "{err}");
        let broken = dir.path().join("broken.png");
        std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let err = decode_rgb(&broken).unwrap_err().to_string();
        assert!(err.contains("broken.png") && err.contains("not a readable image"), "{err}");
        std::fs::write(&broken, b"hello").unwrap();
        assert!(decode_rgb(&broken).unwrap_err().to_string().contains("no JPEG or PNG signature"));
    }

    #[test]
    fn files_decode_in_order_resized_or_checked_for_one_size() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5).map(|i| dir.path().join(format!("{i}.png"))).collect();
        for (i, p) in paths.iter().enumerate() {
            let side = if i == 3 { 12 } else { 6 };
            image::RgbImage::from_pixel(side, side, Rgb([i as u8 * 10, 0, 0])).save(p).unwrap();
        }
        let set = decode_files(&labelled(&paths), Size::Square(4), "train", &mut Silent).unwrap();
        assert_eq!((set.len(), set.height, set.width), (5, 4, 4));
        assert_eq!(set.labels, vec![0, 1, 2, 3, 4]);
        for i in 0..5 {
            assert!(set.image(i).chunks(3).all(|p| p == [i as u8 * 10, 0, 0]), "{i}");
        }
        let err = decode_files(&labelled(&paths), Size::Native, "train", &mut Silent).unwrap_err().to_string();
        assert!(err.contains("3.png") && err.contains("12x12") && err.contains("--image-size"), "{err}");
    }
}
