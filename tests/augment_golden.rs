//! Golden tests: every augmentation op, the load-time resize and the RGB conversion of image
//! files against the pixels Pillow, scikit-image and torchvision produce, read from the committed
//! fixtures of scripts/make_augment_fixtures.py.

use resmooth::augment::autoaugment;
use resmooth::augment::filters;
use resmooth::augment::geometry;
use resmooth::augment::randaugment::{ra_value, RA_OPS};
use resmooth::augment::severe::{severe_value, Drawn, SevereOp, SEVERE_OPS};
use resmooth::augment::Op;
use resmooth::augment::SevereAugment;
use resmooth::data::decode_rgb;
use resmooth::data::resize::resize_center_crop;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/augment")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("tests/fixtures/augment/manifest.json");
    serde_json::from_str(&text).unwrap()
}

/// (height, width, HWC bytes) of a fixture PNG.
fn read_png(name: &str) -> (usize, usize, Vec<u8>) {
    let img = image::open(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}")).to_rgb8();
    (img.height() as usize, img.width() as usize, img.into_raw())
}

fn inputs(m: &Value) -> HashMap<String, (usize, usize, Vec<u8>)> {
    m["images"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), read_png(v.as_str().unwrap()))).collect()
}

fn parse(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Compares one output with row block `k` of an expected strip; the message names the first
/// differing pixel.
fn check(got: &[u8], strip: &[u8], k: usize, w: usize, what: &str) -> bool {
    let want = &strip[k * got.len()..(k + 1) * got.len()];
    if got == want {
        return true;
    }
    let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
    let n = got.iter().zip(want).filter(|(a, b)| a != b).count();
    eprintln!(
        "{what}: {n} values differ, first at (y {}, x {}, c {}): got {} want {}",
        i / 3 / w,
        i / 3 % w,
        i % 3,
        got[i],
        want[i]
    );
    false
}

#[test]
fn randaugment_ops_match_pillow() {
    let m = manifest();
    let inputs = inputs(&m);
    let (mut cases, mut failed) = (0, 0);
    for entry in m["ra"].as_array().unwrap() {
        let name = entry["op"].as_str().unwrap();
        let op = Op::from_name(name).unwrap();
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (k, case) in entry["cases"].as_array().unwrap().iter().enumerate() {
            let value = parse(&case["value"]);
            if let Some(mag) = case["m"].as_u64() {
                // the value is what the reference computes for this magnitude
                let idx = RA_OPS.iter().position(|e| e.0 == op).unwrap();
                let v = ra_value(idx, mag as usize);
                assert_eq!(if case["negated"].as_bool() == Some(true) { -v } else { v }, value, "{name} M={mag}");
            }
            let mut out = vec![0u8; h * w * 3];
            op.apply(src, *h, *w, value, &mut out);
            cases += 1;
            if !check(&out, &strip, k, *w, &format!("{name}({value}) on {}", entry["image"])) {
                failed += 1;
            }
        }
    }
    assert!(cases > 300, "{cases}");
    assert_eq!(failed, 0, "{failed} of {cases} cases differ from Pillow");
}

#[test]
fn autoaugment_ops_match_torchvision() {
    let m = manifest();
    let inputs = inputs(&m);
    let (mut cases, mut failed) = (0, 0);
    for entry in m["aa"].as_array().unwrap() {
        let name = entry["op"].as_str().unwrap();
        let op = Op::from_name(name).unwrap();
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (k, case) in entry["cases"].as_array().unwrap().iter().enumerate() {
            let want = parse(&case["magnitude"]);
            let (mag, signed) = autoaugment::magnitude(op, case["bin"].as_u64().unwrap() as usize, *h, *w);
            let mag = if signed && want.is_sign_negative() && want != 0.0 { -mag } else { mag };
            assert_eq!(mag, want, "{name} bin {}", case["bin"]);
            let mut out = vec![0u8; h * w * 3];
            autoaugment::apply_op(op, mag, src, *h, *w, &mut out);
            cases += 1;
            if !check(&out, &strip, k, *w, &format!("AA {name}({mag}) on {}", entry["image"])) {
                failed += 1;
            }
        }
    }
    assert!(cases > 200, "{cases}");
    assert_eq!(failed, 0, "{failed} of {cases} cases differ from torchvision");
}

#[test]
fn quarter_turns_match_torchvision_rotate() {
    let m = manifest();
    let inputs = inputs(&m);
    for entry in m["tv_rotate"].as_array().unwrap() {
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (k, angle) in entry["angles"].as_array().unwrap().iter().enumerate() {
            let mut out = vec![0u8; h * w * 3];
            geometry::rotate(src, *h, *w, angle.as_f64().unwrap(), &mut out);
            assert!(check(&out, &strip, k, *w, &format!("rotate {angle} on {}", entry["image"])));
        }
    }
}

#[test]
fn severe_geometric_ops_match_pillow_at_every_magnitude() {
    let m = manifest();
    let inputs = inputs(&m);
    let (mut cases, mut failed) = (0, 0);
    for entry in m["severe"].as_array().unwrap() {
        let name = entry["op"].as_str().unwrap();
        let op = Op::from_name(name).unwrap();
        let k = SEVERE_OPS.iter().position(|e| e.0 == SevereOp::Geometric(op)).unwrap();
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (i, case) in entry["cases"].as_array().unwrap().iter().enumerate() {
            let value = parse(&case["value"]);
            let v = severe_value(k, case["m"].as_u64().unwrap() as usize);
            assert_eq!(if case["negated"].as_bool() == Some(true) { -v } else { v }, value, "{name}");
            let mut img = src.clone();
            let mut scratch = vec![0u8; src.len()];
            SevereAugment::apply(&[Drawn::Geometric(op, value)], &mut img, *h, *w, &mut scratch);
            cases += 1;
            failed +=
                usize::from(!check(&img, &strip, i, *w, &format!("severe {name}({value}) on {}", entry["image"])));
        }
    }
    assert!(cases > 200, "{cases}");
    assert_eq!(failed, 0, "{failed} of {cases} cases differ from Pillow");
}

#[test]
fn severe_cutout_matches_pillows_rectangle() {
    let m = manifest();
    let inputs = inputs(&m);
    let mut cases = 0;
    for entry in m["severe_cutout"].as_array().unwrap() {
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (i, case) in entry["cases"].as_array().unwrap().iter().enumerate() {
            let (v, x, y) = (parse(&case["value"]), parse(&case["x"]), parse(&case["y"]));
            if let Some(mag) = case["m"].as_u64() {
                assert_eq!(severe_value(4, mag as usize), v);
            }
            let mut img = src.clone();
            let mut scratch = vec![0u8; src.len()];
            SevereAugment::apply(&[Drawn::Cutout { v, x, y }], &mut img, *h, *w, &mut scratch);
            assert!(check(&img, &strip, i, *w, &format!("Cutout({v}) at ({x}, {y}) on {}", entry["image"])));
            cases += 1;
        }
    }
    assert!(cases > 100, "{cases}");
}

#[test]
fn gaussian_blur_matches_pillow() {
    let m = manifest();
    let inputs = inputs(&m);
    let mut cases = 0;
    for entry in m["blur"].as_array().unwrap() {
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, strip) = read_png(entry["file"].as_str().unwrap());
        for (i, sigma) in entry["sigmas"].as_array().unwrap().iter().enumerate() {
            let sigma = parse(sigma);
            let mut out = vec![0u8; src.len()];
            filters::gaussian_blur(src, *h, *w, sigma, &mut out);
            assert!(check(&out, &strip, i, *w, &format!("GaussianBlur({sigma}) on {}", entry["image"])));
            cases += 1;
        }
    }
    assert_eq!(cases, 36);
}

#[test]
fn sobel_matches_scikit_image_and_vflip_torchvision() {
    let m = manifest();
    let inputs = inputs(&m);
    for entry in m["sobel"].as_array().unwrap() {
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, want) = read_png(entry["file"].as_str().unwrap());
        let mut out = vec![0u8; src.len()];
        filters::sobel(src, *h, *w, &mut out);
        assert!(check(&out, &want, 0, *w, &format!("sobel on {}", entry["image"])));
    }
    for entry in m["vflip"].as_array().unwrap() {
        let (h, w, src) = &inputs[entry["image"].as_str().unwrap()];
        let (_, _, want) = read_png(entry["file"].as_str().unwrap());
        let mut img = src.clone();
        filters::flip_vertical(&mut img, *h, *w);
        assert!(check(&img, &want, 0, *w, &format!("vflip on {}", entry["image"])));
    }
}

#[test]
fn resize_and_centre_crop_match_torchvision() {
    let m = manifest();
    let mut cases = 0;
    for entry in m["resize"].as_array().unwrap() {
        let (h, w, src) = read_png(entry["input"].as_str().unwrap());
        let size = entry["size"].as_u64().unwrap() as usize;
        let (_, _, want) = read_png(entry["file"].as_str().unwrap());
        let out = resize_center_crop(&src, h, w, size);
        assert!(check(&out, &want, 0, size, &format!("Resize({size}) + CenterCrop of {h}x{w}")));
        cases += 1;
    }
    assert_eq!(cases, 18);
}

#[test]
fn files_convert_to_rgb_as_pillow() {
    let m = manifest();
    for entry in m["convert"].as_array().unwrap() {
        let input = entry["input"].as_str().unwrap();
        let (h, w, got) = decode_rgb(&dir().join(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
        let (wh, ww, want) = read_png(entry["expected"].as_str().unwrap());
        assert_eq!((h, w), (wh, ww), "{input}");
        // JPEG files too: they are decoded by libjpeg-turbo with Pillow's settings
        assert!(check(&got, &want, 0, w, &format!("{input} ({})", entry["mode"])));
    }
}
