//! Hostile input: every reader of a file resmooth did not just write (CIFAR binaries, SVHN .mat
//! files, image files, ImageFolder trees, gmm.json, safetensors weights and checkpoints,
//! downloads) is fed damaged and random bytes. It must answer with an error or a value, never
//! panic, and never allocate by a size field it has not checked (a small file declaring
//! gigabytes must fail at once). Each property runs a bounded number of cases (seconds in all).

use proptest::prelude::*;
use resmooth::data::{self, ImageSet, Size};
use resmooth::engine::checkpoint::{Checkpoint, ResumeMeta, Snapshot};
use resmooth::method::Gmm;
use resmooth::progress::Silent;
use std::io::{Read, Write};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Damage to apply to a valid file: bytes overwritten, then the file cut or extended.
#[derive(Debug, Clone)]
struct Damage {
    writes: Vec<(usize, u8)>,
    cut: Option<usize>,
    tail: Vec<u8>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(writes, cut, tail)| Damage { writes, cut, tail })
}

impl Damage {
    /// `bytes` damaged; writes land in the first `focus` bytes (the headers) half of the time.
    fn apply(&self, bytes: &[u8], focus: usize) -> Vec<u8> {
        let mut b = bytes.to_vec();
        if b.is_empty() {
            return self.tail.clone();
        }
        for (i, &(at, v)) in self.writes.iter().enumerate() {
            let span = if i % 2 == 0 { focus.clamp(1, b.len()) } else { b.len() };
            b[at % span] = v;
        }
        if let Some(cut) = self.cut {
            b.truncate(cut % (b.len() + 1));
        }
        b.extend_from_slice(&self.tail);
        b
    }
}

fn images(n: usize, side: usize) -> ImageSet {
    let mut set = ImageSet::new(side, side);
    for i in 0..n {
        set.push(&vec![(i * 37) as u8; side * side * 3], (i % 10) as i64);
    }
    set
}

fn svhn_file(compress: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mat");
    data::write_svhn_split(&path, &images(3, 32), compress).unwrap();
    std::fs::read(path).unwrap()
}

fn png_file() -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_file() -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A two-class ImageFolder tree whose first training image is `bytes` (named `name`).
fn tree_with(dir: &Path, name: &str, bytes: &[u8]) {
    let good = png_file();
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("z.png"), &good).unwrap();
        }
    }
    std::fs::write(dir.join("train/a").join(name), bytes).unwrap();
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn cifar_binaries(bytes in proptest::collection::vec(any::<u8>(), 0..3 * 3074), label_bytes in 1usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        std::fs::write(&path, &bytes).unwrap();
        let mut set = ImageSet::new(32, 32);
        match data::read_cifar_records(&path, label_bytes, label_bytes - 1, 10, &mut set) {
            Ok(n) => prop_assert_eq!(set.len(), n),
            Err(e) => prop_assert!(e.to_string().contains("data_batch_1.bin")),
        }
    }

    #[test]
    fn svhn_mat_files(d in damage(), compress in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train_32x32.mat");
        std::fs::write(&path, d.apply(&svhn_file(compress), 256)).unwrap();
        if let Ok(set) = data::read_svhn_split(&path) {
            prop_assert_eq!(set.pixels.len(), set.len() * 32 * 32 * 3);
            prop_assert!(set.labels.iter().all(|l| (0..10).contains(l)));
        }
    }

    #[test]
    fn image_files_in_a_tree(d in damage(), jpeg in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes) = if jpeg { ("x.jpg", jpeg_file()) } else { ("x.png", png_file()) };
        tree_with(dir.path(), name, &d.apply(&bytes, 64));
        if let Ok(ds) = data::read_imagefolder(dir.path(), Size::Native, &mut Silent) {
            prop_assert_eq!(ds.train.pixels.len(), ds.train.len() * ds.train.image_bytes());
        }
    }

    /// Trees of any shape: files and folders with any names where classes and images go.
    #[test]
    fn imagefolder_trees(entries in proptest::collection::vec(
        (0usize..2, 0usize..3, "[a-z.]{1,6}", 0usize..4), 0..10)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("train")).unwrap();
        let contents = [png_file(), jpeg_file(), Vec::new(), b"not an image".to_vec()];
        for (split, class, name, kind) in entries {
            let d = root.join(["train", "test"][split]).join(["a", "b", "c"][class]);
            std::fs::create_dir_all(&d).unwrap();
            let _ = std::fs::write(d.join(&name), &contents[kind]);
        }
        let _ = data::read_imagefolder(root, Size::Native, &mut Silent);
        let _ = data::read_imagefolder(root, Size::Square(4), &mut Silent);
        let _ = data::read_labelled_folder(&root.join("train"), &["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn gmm_json(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gmm.json");
        let gmm = Gmm::fit(&[0.1, 0.2, 0.3, 5.0, 5.5, 6.0]).unwrap();
        gmm.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, d.apply(&bytes, bytes.len())).unwrap();
        if let Ok(g) = Gmm::load(&path) {
            prop_assert!(g.variances.iter().all(|v| *v > 0.0) && g.means.iter().all(|m| m.is_finite()));
        }
    }

    #[test]
    fn safetensors_checkpoints(d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let t = |n: i64| Tensor::arange(n, (Kind::Float, Device::Cpu));
        let snapshot = Snapshot::from_host(vec![("w".into(), t(12)), ("b".into(), t(3))], vec![("w".into(), t(12))]);
        let meta = ResumeMeta::fresh(&resmooth::config::TrainConfig::default());
        snapshot.write_checkpoint(&path, &meta).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let damaged = d.apply(&bytes, 200);
        std::fs::write(&path, &damaged).unwrap();
        match Checkpoint::read(&path) {
            // the checksum lets through only a file whose tensors and metadata are intact
            Ok(c) => prop_assert_eq!(c.meta, meta),
            Err(e) => prop_assert!(e.to_string().contains("checkpoint.safetensors")),
        }
        let _ = resmooth::model::read_safetensors(&path);
    }
}

/// Weights files of the real model, cut or damaged anywhere, are refused by name: the
/// checksum in their metadata lets through only a file whose tensors are those written (a
/// change the header's JSON does not see, such as other whitespace, is harmless).
#[test]
fn damaged_weights_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = resmooth::model::Model::new(resmooth::config::ModelName::ResNet18, 10, Device::Cpu);
    model.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let saved = model.state_dict();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    runner
        .run(&damage(), |d| {
            // half of the writes land in the header, the other half anywhere (mostly tensor data)
            let damaged = d.apply(&bytes, header);
            std::fs::write(&path, &damaged).unwrap();
            let mut m = resmooth::model::Model::new(resmooth::config::ModelName::ResNet18, 10, Device::Cpu);
            match m.load(&path) {
                Err(e) => prop_assert!(e.to_string().contains("model.safetensors"), "{e}"),
                Ok(()) => {
                    let same = m.state_dict().iter().all(|(k, v)| v.equal(&saved[k]));
                    prop_assert!(same, "damaged weights loaded with other values");
                }
            }
            Ok(())
        })
        .unwrap();
    // a byte flipped in the tensor data is refused, the message naming the file and the damage
    for at in [header, header + (bytes.len() - header) / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        std::fs::write(&path, &damaged).unwrap();
        let mut m = resmooth::model::Model::new(resmooth::config::ModelName::ResNet18, 10, Device::Cpu);
        let err = m.load(&path).unwrap_err().to_string();
        assert!(err.contains("model.safetensors is damaged") && err.contains("checksum"), "byte {at}: {err}");
    }
}

/// Size fields that promise more than the file holds fail at once, without allocating them.
#[test]
fn huge_declared_sizes_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    // a MAT-file whose first element claims 4 GB
    let mut mat = vec![b' '; 124];
    mat.extend_from_slice(&[0x00, 0x01, b'I', b'M']);
    mat.extend_from_slice(&14u32.to_le_bytes());
    mat.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    mat.extend_from_slice(&[0u8; 64]);
    let path = dir.path().join("huge.mat");
    std::fs::write(&path, &mat).unwrap();
    assert!(data::read_svhn_split(&path).is_err());
    // a MAT-file of dimensions whose product overflows
    let mut set_file = svhn_file(false);
    let dims_at = set_file.windows(8).position(|w| w == [5, 0, 0, 0, 16, 0, 0, 0]).expect("the dimensions of X");
    for k in 0..4 {
        set_file[dims_at + 8 + 4 * k..dims_at + 12 + 4 * k].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    std::fs::write(&path, &set_file).unwrap();
    assert!(data::read_svhn_split(&path).is_err());
    // a PNG declaring 60000 x 60000 pixels
    let mut png = png_file();
    png[16..20].copy_from_slice(&60000u32.to_be_bytes());
    png[20..24].copy_from_slice(&60000u32.to_be_bytes());
    tree_with(dir.path(), "big.png", &png);
    assert!(data::read_imagefolder(dir.path(), Size::Native, &mut Silent).is_err());
    // a safetensors header length of 2^60
    let path = dir.path().join("w.safetensors");
    let mut st = (1u64 << 60).to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    std::fs::write(&path, &st).unwrap();
    assert!(resmooth::model::read_safetensors(&path).is_err());
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
}

/// A one-shot HTTP server answering every request with `head` (status line and headers) and
/// `body`; returns its URL.
fn serve(head: String, body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/file.bin", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { return };
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req);
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    url
}

#[test]
fn downloads_of_the_wrong_length_or_content_are_refused_and_deleted() {
    let body = b"the official file".to_vec();
    let md5 = "2e8a52b0fb9d6cd3d3a8d14a1a8e0a3c"; // not the MD5 of anything served below
    for (name, head, served) in [
        (
            "wrong content",
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()),
            body.clone(),
        ),
        (
            "short body",
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_string(),
            body.clone(),
        ),
        ("no length", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string(), body.clone()),
        (
            "not found",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            Vec::new(),
        ),
        ("garbage", "HTTP/1.1 banana\r\n\r\n".to_string(), vec![0xff; 10]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        let url = serve(head, served);
        let err = data::download(&url, md5, &dest, "put file.bin in DIR", &mut Silent).unwrap_err().to_string();
        assert!(err.contains("file.bin"), "{name}: {err}");
        assert!(!dest.exists(), "{name}: a file that failed its check is under its final name");
    }
}
