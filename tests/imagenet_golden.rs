//! Golden tests of the ImageNet transforms against torchvision on PIL images (Pillow's bicubic
//! resampling and ImageEnhance, libjpeg-turbo's decoding), read from the committed fixtures of
//! scripts/make_imagenet_fixtures.py: small outputs pixel for pixel, 224-px ones by MD5 digest.

use md5::{Digest, Md5};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use resmooth::augment::imagenet::{eval_view, Enhancement, Jitter, Lighting, RandomResizedCrop};
use resmooth::data::decode_rgb;
use resmooth::data::resize::{resize, resize_center_crop_into, Filter, Region};
use resmooth::data::Normalisation;
use resmooth::pipeline::{to_device_lit, Placement};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("tests/fixtures/imagenet/manifest.json");
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

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn usize_at(v: &Value, i: usize) -> usize {
    v[i].as_u64().unwrap() as usize
}

/// Compares with the expected pixels; the message names the first differing pixel.
fn same(got: &[u8], want: &[u8], w: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let n = got.iter().zip(want).filter(|(a, b)| a != b).count();
        panic!(
            "{what}: {n} values differ, first at (y {}, x {}, c {}): got {} want {}",
            i / 3 / w,
            i / 3 % w,
            i % 3,
            got[i],
            want[i]
        );
    }
}

#[test]
fn bicubic_resize_matches_pillow() {
    let m = manifest();
    let inputs = inputs(&m);
    let cases = m["resize"].as_array().unwrap();
    for c in cases {
        let key = c["image"].as_str().unwrap();
        let (h, w, src) = &inputs[key];
        let (oh, ow) = (usize_at(&c["size"], 0), usize_at(&c["size"], 1));
        let (_, _, want) = read_png(c["file"].as_str().unwrap());
        same(&resize(src, (*h, *w), (oh, ow), Filter::Bicubic), &want, ow, &format!("{key} {h}x{w} -> {oh}x{ow}"));
    }
    assert_eq!(cases.len(), 9);
}

#[test]
fn resized_crops_match_torchvision_for_given_boxes() {
    let m = manifest();
    let inputs = inputs(&m);
    let cases = m["resized_crop"].as_array().unwrap();
    for c in cases {
        let key = c["image"].as_str().unwrap();
        let (h, w, src) = &inputs[key];
        let b = &c["box"];
        let region =
            Region { top: usize_at(b, 0), left: usize_at(b, 1), height: usize_at(b, 2), width: usize_at(b, 3) };
        let (_, _, want) = read_png(c["file24"].as_str().unwrap());
        let mut out = vec![0u8; 24 * 24 * 3];
        RandomResizedCrop { size: 24, ..RandomResizedCrop::IMAGENET }.apply(src, (*h, *w), region, &mut out);
        same(&out, &want, 24, &format!("{key} {region:?} at 24"));
        let mut out = vec![0u8; 224 * 224 * 3];
        RandomResizedCrop::IMAGENET.apply(src, (*h, *w), region, &mut out);
        assert_eq!(md5_hex(&out), c["md5_224"].as_str().unwrap(), "{key} {region:?} at 224");
    }
    assert_eq!(cases.len(), 15);
}

#[test]
fn color_jitter_matches_torchvision_for_given_orders_and_factors() {
    let m = manifest();
    let inputs = inputs(&m);
    let cases = m["jitter"].as_array().unwrap();
    for c in cases {
        let key = c["image"].as_str().unwrap();
        let (_, w, src) = &inputs[key];
        let order: Vec<usize> = c["order"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let factors: Vec<f32> =
            c["factors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect();
        let jitter = Jitter {
            order: [0, 1, 2].map(|k| Enhancement::ALL[order[k]]),
            factors: [factors[0], factors[1], factors[2]],
        };
        let mut img = src.clone();
        jitter.apply(&mut img, &mut Vec::new());
        let what = format!("{key} order {order:?} factors {factors:?}");
        if let Some(file) = c["file"].as_str() {
            same(&img, &read_png(file).2, *w, &what);
        }
        assert_eq!(md5_hex(&img), c["md5"].as_str().unwrap(), "{what}");
    }
    assert_eq!(cases.len(), 36);
}

#[test]
fn the_test_view_matches_torchvision() {
    let m = manifest();
    let inputs = inputs(&m);
    let cases = m["eval"].as_array().unwrap();
    for c in cases {
        let key = c["image"].as_str().unwrap();
        let (h, w, src) = &inputs[key];
        let mut out = vec![0u8; 224 * 224 * 3];
        eval_view(src, (*h, *w), &mut out);
        assert_eq!(md5_hex(&out), c["md5_256_224"].as_str().unwrap(), "Resize(256) + CenterCrop(224) of {key}");
        let (size, crop) = (c["resize"].as_u64().unwrap() as usize, c["crop"].as_u64().unwrap() as usize);
        let mut small = vec![0u8; crop * crop * 3];
        resize_center_crop_into(src, (*h, *w), size, crop, Filter::Bicubic, &mut small);
        same(
            &small,
            &read_png(c["file"].as_str().unwrap()).2,
            crop,
            &format!("Resize({size}) + CenterCrop({crop}) of {key}"),
        );
    }
    assert_eq!(cases.len(), 5);
}

#[test]
fn lighting_and_normalisation_give_the_reference_floats() {
    let m = manifest();
    let inputs = inputs(&m);
    let cpu = Placement { device: tch::Device::Cpu, channels_last: false, norm: Normalisation::IMAGENET };
    for c in m["lighting"].as_array().unwrap() {
        let key = c["image"].as_str().unwrap();
        let (_, w, src) = &inputs[key];
        let (ch, cw) = (usize_at(&c["crop"], 0), usize_at(&c["crop"], 1));
        let crop: Vec<u8> = (0..ch).flat_map(|y| src[y * w * 3..(y * w + cw) * 3].to_vec()).collect();
        let alphas: Vec<f32> =
            c["alphas"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect();
        let offset = Lighting::IMAGENET.offset([alphas[0], alphas[1], alphas[2]]);
        let want_offset: Vec<u32> =
            c["offset_bits"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(offset.map(f32::to_bits).to_vec(), want_offset, "{key} offset");
        let x = to_device_lit(&crop, (1, ch, cw), &[], &[offset], cpu);
        let got: Vec<u32> = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap().iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = c["nchw_bits"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(got, want, "{key}: ToTensor -> Lighting -> Normalize");
    }
}

#[test]
fn crop_boxes_follow_torchvisions_distribution() {
    let m = manifest();
    let rrc = RandomResizedCrop::IMAGENET;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for c in m["crop_params"].as_array().unwrap() {
        let (h, w) = (usize_at(&c["size"], 0), usize_at(&c["size"], 1));
        let n = c["draws"].as_u64().unwrap() as usize;
        let draws: Vec<Region> = (0..n).map(|_| rrc.draw(h, w, &mut rng)).collect();
        let stat = |f: &dyn Fn(&Region) -> f64| {
            let v: Vec<f64> = draws.iter().map(f).collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            (mean, (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt())
        };
        let (area, area_sd) = stat(&|r| (r.height * r.width) as f64 / (h * w) as f64);
        let (ratio, ratio_sd) = stat(&|r| (r.width as f64 / r.height as f64).ln());
        let (top, _) = stat(&|r| r.top as f64);
        let (centred, _) = stat(&|r| ((r.top, r.left) == ((h - r.height) / 2, (w - r.width) / 2)) as u8 as f64);
        let near = |got: f64, key: &str, tol: f64| {
            let want = c[key].as_f64().unwrap();
            assert!((got - want).abs() <= tol, "{h}x{w} {key}: ours {got}, torchvision {want}");
        };
        near(area, "area_mean", 0.01);
        near(area_sd, "area_std", 0.01);
        near(ratio, "log_ratio_mean", 0.01);
        near(ratio_sd, "log_ratio_std", 0.01);
        near(top, "top_mean", 0.02 * h as f64);
        near(centred, "centred", 0.02);
    }
}

#[test]
fn jpeg_files_decode_to_pillows_pixels() {
    let m = manifest();
    let cases = m["jpeg"].as_array().unwrap();
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let (_, _, rgb) = decode_rgb(&dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(md5_hex(&rgb), c["md5_rgb"].as_str().unwrap(), "{file} ({})", c["options"]);
    }
    assert_eq!(cases.len(), 6);
}
