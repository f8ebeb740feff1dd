//! Datasets end to end: synthetic files in the official formats served by a local HTTP server on
//! 127.0.0.1 (never any other host), downloaded, verified, extracted and loaded; and the
//! `resmooth data` commands on them.

use resmooth::config::DatasetName;
use resmooth::data::sources::{Remote, CIFAR100_FOLDER};
use resmooth::data::{self, Cifar100Labels, FetchOptions, ImageSet};
use resmooth::progress::Silent;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

// ---------- a tiny HTTP/1.1 file server with Range support and simulated dropped connections

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// The next this-many responses send only `cut_at` body bytes, then close.
    cuts_left: usize,
    cut_at: usize,
    ignore_range: bool,
    /// (path, Range header) of every request.
    log: Vec<(String, Option<String>)>,
}

struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(files: &[(&str, Vec<u8>)]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            files: files.iter().map(|(n, d)| (format!("/{n}"), d.clone())).collect(),
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = shared.clone();
                std::thread::spawn(move || serve(stream, &st));
            }
        });
        Server { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let (data, cut, ignore_range) = {
        let mut st = state.lock().unwrap();
        st.log.push((path.clone(), range.clone()));
        let cut = (st.cuts_left > 0).then(|| {
            st.cuts_left -= 1;
            st.cut_at
        });
        (st.files.get(&path).cloned(), cut, st.ignore_range)
    };
    let Some(data) = data else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let start = range
        .filter(|_| !ignore_range)
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    let (status, body, extra) = match start {
        Some(n) if n >= data.len() => ("416 Range Not Satisfiable", &data[..0], String::new()),
        Some(n) => (
            "206 Partial Content",
            &data[n..],
            format!("Content-Range: bytes {n}-{}/{}\r\n", data.len() - 1, data.len()),
        ),
        None => ("200 OK", &data[..], String::new()),
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len());
    let send = cut.map_or(body.len(), |c| c.min(body.len()));
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body[..send]));
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

// ---------- synthetic data in the official formats

/// Pixel byte `off` (CHW offset within the record) of synthetic image `k`: varied, hard to compress.
fn px(k: usize, off: usize) -> u8 {
    ((k * 131 + off * 7 + off * off / 253) % 256) as u8
}

fn cifar_record(labels: &[u8], k: usize) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|off| px(k, off)));
    r
}

fn fine(k: usize) -> u8 {
    (k * 37 % 100) as u8
}

fn coarse(k: usize) -> u8 {
    (k % 20) as u8
}

/// CIFAR-100 binary files: `train` records then `test` records (image ids continue across splits).
fn cifar100_files(train: usize, test: usize) -> Vec<(String, Vec<u8>)> {
    let split = |ks: std::ops::Range<usize>| ks.flat_map(|k| cifar_record(&[coarse(k), fine(k)], k)).collect();
    vec![
        ("cifar-100-binary/train.bin".into(), split(0..train)),
        ("cifar-100-binary/test.bin".into(), split(train..train + test)),
        ("cifar-100-binary/fine_label_names.txt".into(), b"apple\n".to_vec()),
        ("cifar-100-binary/coarse_label_names.txt".into(), b"aquatic_mammals\n".to_vec()),
    ]
}

fn cifar10_files(per_batch: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|b| {
            let name = if b < 5 { format!("data_batch_{}.bin", b + 1) } else { "test_batch.bin".into() };
            let data =
                (0..per_batch).flat_map(|i| cifar_record(&[((b * per_batch + i) % 10) as u8], b * per_batch + i));
            (format!("cifar-10-batches-bin/{name}"), data.collect())
        })
        .collect();
    files.push(("cifar-10-batches-bin/batches.meta.txt".into(), b"airplane\n".to_vec()));
    files
}

fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, &data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn write_files(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// An SVHN-like split: image k has label k % 10 and pixel (row, col, channel) = px(k, channel*1024 + row*32 + col).
fn svhn_set(ks: std::ops::Range<usize>) -> ImageSet {
    let mut set = ImageSet::new(32, 32);
    for k in ks {
        let hwc: Vec<u8> = (0..3072).map(|i| px(k, (i % 3) * 1024 + i / 3)).collect();
        set.push(&hwc, (k % 10) as i64);
    }
    set
}

fn md5_hex(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, data).unwrap();
    data::md5_file(&p).unwrap()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn local_remote(server: &Server, file: &'static str, data: &[u8]) -> Remote {
    Remote { file, url: leak(format!("{}/{file}", server.url())), md5: leak(md5_hex(data)) }
}

fn closed_port_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

fn resmooth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resmooth")).args(args).env_remove("RESMOOTH_MIRROR").output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

// ---------- tests

#[test]
fn cifar100_is_downloaded_verified_extracted_and_loaded_with_fine_and_coarse_labels() {
    let archive = tar_gz(&cifar100_files(30, 10));
    let server = Server::start(&[("cifar-100-binary.tar.gz", archive.clone())]);
    let remote = local_remote(&server, "cifar-100-binary.tar.gz", &archive);
    let root = tempfile::tempdir().unwrap();
    let opts = FetchOptions::default();
    let line = data::fetch_archive("cifar100", &remote, &CIFAR100_FOLDER, root.path(), &opts, &mut Silent).unwrap();
    assert!(line.starts_with("downloaded"), "{line}");
    assert_eq!(entries(root.path()), vec!["cifar-100-binary", "cifar-100-binary.tar.gz"]);
    assert_eq!(
        entries(&root.path().join("cifar-100-binary")),
        vec!["coarse_label_names.txt", "fine_label_names.txt", "test.bin", "train.bin"]
    );
    // a second call finds the folder and does not download again
    assert!(data::fetch_archive("cifar100", &remote, &CIFAR100_FOLDER, root.path(), &opts, &mut Silent)
        .unwrap()
        .starts_with("present"));
    assert_eq!(server.log().len(), 1);

    let ds = data::read_cifar100(root.path(), Cifar100Labels::Fine).unwrap();
    assert_eq!((ds.train.len(), ds.test.len(), ds.num_classes()), (30, 10, 100));
    assert_eq!(ds.train.labels[3], fine(3) as i64);
    assert_eq!(ds.test.labels[2], fine(32) as i64);
    // HWC pixel (row 5, col 17, green) of train image 3 = CHW offset 1024 + 5*32 + 17
    assert_eq!(ds.train.image(3)[(5 * 32 + 17) * 3 + 1], px(3, 1024 + 5 * 32 + 17));
    assert_eq!(ds.test.image(9)[(31 * 32 + 31) * 3 + 2], px(39, 2048 + 1023));
    let coarse_ds = data::read_cifar100(root.path(), Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse_ds.num_classes(), 20);
    assert_eq!(coarse_ds.train.labels, (0..30).map(|k| coarse(k) as i64).collect::<Vec<_>>());
    assert_eq!(coarse_ds.train.pixels, ds.train.pixels);
}

#[test]
fn an_interrupted_download_resumes_and_a_server_without_ranges_restarts() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let server = Server::start(&[("big.bin", payload.clone())]);
    let md5 = md5_hex(&payload);
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("big.bin");
    let url = format!("{}/big.bin", server.url());

    // the first response is cut after 70,000 bytes; the retry asks for the rest
    server.state.lock().unwrap().cuts_left = 1;
    server.state.lock().unwrap().cut_at = 70_000;
    data::download(&url, &md5, &dest, "hint", &mut Silent).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].1, None);
    assert_eq!(log[1].1.as_deref(), Some("bytes=70000-"));
    assert_eq!(entries(root.path()), vec!["big.bin"]);

    // a connection that keeps dropping: the error says so and keeps the part file ...
    std::fs::remove_file(&dest).unwrap();
    server.state.lock().unwrap().cuts_left = 100;
    server.state.lock().unwrap().cut_at = 30_000;
    let err = data::download(&url, &md5, &dest, "put big.bin by hand", &mut Silent).unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("kept") && err.contains("put big.bin by hand"), "{err}");
    assert_eq!(std::fs::metadata(root.path().join("big.bin.part")).unwrap().len(), 90_000);
    assert!(!dest.exists());
    // ... which the next run resumes; a server ignoring Range makes it start over cleanly
    {
        let mut st = server.state.lock().unwrap();
        st.cuts_left = 0;
        st.ignore_range = true;
        st.log.clear();
    }
    data::download(&url, &md5, &dest, "hint", &mut Silent).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    assert_eq!(server.log()[0].1.as_deref(), Some("bytes=90000-"));
    assert_eq!(entries(root.path()), vec!["big.bin"]);

    // a stale part file that does not match: one clean restart, then success
    std::fs::remove_file(&dest).unwrap();
    std::fs::write(root.path().join("big.bin.part"), vec![0u8; 1000]).unwrap();
    server.state.lock().unwrap().ignore_range = false;
    data::download(&url, &md5, &dest, "hint", &mut Silent).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
}

#[test]
fn a_tampered_archive_from_a_mirror_is_refused_and_nothing_is_left() {
    // a well-formed archive, but not the official one: its MD5 differs
    let archive = tar_gz(&cifar10_files(3));
    let server = Server::start(&[("cifar-10-binary.tar.gz", archive)]);
    let root = tempfile::tempdir().unwrap();
    let dr = root.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_resmooth"))
        .args(["data", "fetch", "cifar10", "--dataroot", dr.to_str().unwrap()])
        .env("RESMOOTH_MIRROR", server.url())
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("cifar-10-binary.tar.gz") && err.contains("not the official"), "{err}");
    assert!(err.contains("c32a1d4ab5d03f1284b67883e8d87530"), "{err}");
    assert!(entries(&dr).is_empty(), "{:?}", entries(&dr));
    assert_eq!(server.log()[0].0, "/cifar-10-binary.tar.gz");

    // the same archive placed by hand is refused too, and left for the user to delete
    std::fs::write(dr.join("cifar-10-binary.tar.gz"), tar_gz(&cifar10_files(3))).unwrap();
    let (_, err) = text(&resmooth(&["data", "fetch", "cifar10", "--dataroot", dr.to_str().unwrap()]));
    assert!(err.contains("not the official cifar-10-binary.tar.gz") && err.contains("delete it"), "{err}");
    assert_eq!(entries(&dr), vec!["cifar-10-binary.tar.gz"]);
}

#[test]
fn svhn_is_downloaded_and_loaded_with_label_ten_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (train_path, test_path) = (dir.path().join("train.mat"), dir.path().join("test.mat"));
    data::write_svhn_split(&train_path, &svhn_set(0..24), true).unwrap();
    data::write_svhn_split(&test_path, &svhn_set(24..36), true).unwrap();
    let (train, test) = (std::fs::read(&train_path).unwrap(), std::fs::read(&test_path).unwrap());
    let server = Server::start(&[("train_32x32.mat", train.clone()), ("test_32x32.mat", test.clone())]);
    let root = tempfile::tempdir().unwrap();
    for (file, bytes) in [("train_32x32.mat", &train), ("test_32x32.mat", &test)] {
        let remote = local_remote(&server, file, bytes);
        let line = data::fetch_file(&remote, root.path(), &FetchOptions::default(), &mut Silent).unwrap();
        assert!(line.starts_with("downloaded"), "{line}");
    }
    let ds = data::load(DatasetName::Svhn, root.path(), data::Size::Native, &mut Silent).unwrap();
    assert_eq!((ds.train.len(), ds.test.len(), ds.num_classes()), (24, 12, 10));
    // digit 0 is stored as 10 in the file and comes back as 0
    assert_eq!((ds.train.labels[10], ds.train.labels[13]), (0, 3));
    let y = resmooth::data::mat::read_mat(&root.path().join("train_32x32.mat")).unwrap();
    let raw_y = y.iter().find(|a| a.name == "y").unwrap();
    assert_eq!(
        raw_y.data,
        resmooth::data::mat::MatData::F64(
            (0..24).map(|k| [10.0, 1., 2., 3., 4., 5., 6., 7., 8., 9.][k % 10]).collect()
        )
    );
    // pixel (row 7, col 30, red) of test image 5 (k = 29)
    assert_eq!(ds.test.image(5)[(7 * 32 + 30) * 3], px(29, 7 * 32 + 30));
    assert_eq!(ds.test.labels[5], 9);
}

#[test]
fn data_info_counts_synthetic_cifar100_and_svhn() {
    let root = tempfile::tempdir().unwrap();
    write_files(root.path(), &cifar100_files(30, 10));
    data::write_svhn_split(&root.path().join("train_32x32.mat"), &svhn_set(0..24), true).unwrap();
    data::write_svhn_split(&root.path().join("test_32x32.mat"), &svhn_set(24..36), false).unwrap();
    let dr = root.path().to_str().unwrap();

    let out = resmooth(&["data", "info", "cifar100", "--dataroot", dr]);
    let (info, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(info.contains("train          30 images (the official split has 50000)"), "{info}");
    assert!(info.contains("test           10 images"), "{info}");
    assert!(
        info.contains("32x32 RGB") && info.contains("mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)"),
        "{info}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = info
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name}: {info}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let count = |ks: std::ops::Range<usize>, f: fn(usize) -> u8, l: u8| ks.filter(|&k| f(k) == l).count().to_string();
    // fine label 37 ("lamp"... whichever name) and coarse label 4 ("fruit_and_vegetables")
    let lamp = row(data::CIFAR100_FINE_CLASSES[37]);
    assert_eq!(lamp[2..], [count(0..30, fine, 37), count(30..40, fine, 37)], "{info}");
    let fruit = row("fruit_and_vegetables");
    assert_eq!(fruit[2..], [count(0..30, coarse, 4), count(30..40, coarse, 4)], "{info}");

    let (info, err) = text(&resmooth(&["data", "info", "svhn", "--dataroot", dr]));
    assert!(info.contains("train          24 images (the official split has 73257)"), "{info}{err}");
    assert!(info.contains("test           12 images"), "{info}");
    let zero = info.lines().find(|l| l.split_whitespace().take(2).eq(["0", "0"])).unwrap();
    assert_eq!(zero.split_whitespace().skip(2).collect::<Vec<_>>(), ["3", "1"], "{info}");

    // a folder: every dataset found in it is described
    let (info, _) = text(&resmooth(&["data", "info", dr]));
    assert!(info.contains("cifar100 in") && info.contains("svhn in") && !info.contains("cifar10 in"), "{info}");

    // check and fetch accept the prepared copy, label-name files or not, without any network
    std::fs::remove_file(root.path().join("cifar-100-binary/fine_label_names.txt")).unwrap();
    let (out, err) = text(&resmooth(&["data", "check", "cifar100", "--dataroot", dr]));
    assert!(out.contains("train.bin 30, test.bin 10"), "{out}{err}");
    let (out, err) = text(&resmooth(&["data", "check", "svhn", "--dataroot", dr]));
    assert!(out.contains("24 images (not the official file"), "{out}{err}");
    let o = resmooth(&["data", "fetch", "svhn", "--dataroot", dr, "--mirror", &closed_port_url()]);
    assert!(o.status.success() && text(&o).0.contains("present"), "{:?}", text(&o));
}

#[test]
fn without_network_fetch_and_train_fail_fast_saying_where_to_put_the_files() {
    let root = tempfile::tempdir().unwrap();
    let dr = root.path().join("data");
    let mirror = closed_port_url();
    let t = std::time::Instant::now();
    let out = resmooth(&["data", "fetch", "cifar10", "--dataroot", dr.to_str().unwrap(), "--mirror", &mirror]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot download") && err.contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"),
        "{err}"
    );
    assert!(
        err.contains(&dr.join("cifar-10-binary.tar.gz").display().to_string()) && err.contains("cifar-10-batches-bin"),
        "{err}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(entries(&dr).is_empty());

    // training triggers the same download and reports the same way
    let out = Command::new(env!("CARGO_BIN_EXE_resmooth"))
        .args(["train", "--dataset", "svhn", "--epochs", "1", "--dataroot", dr.to_str().unwrap()])
        .args(["--logdir", root.path().join("logs").to_str().unwrap(), "--tag", "t"])
        .env("RESMOOTH_MIRROR", &mirror)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("train_32x32.mat") && err.contains("--mirror"), "{err}");

    let (_, err) = text(&resmooth(&["data", "check", "svhn", "--dataroot", dr.to_str().unwrap()]));
    assert!(err.contains("train_32x32.mat") && err.contains("data fetch svhn"), "{err}");
}

#[test]
fn bad_input_is_named() {
    let root = tempfile::tempdir().unwrap();
    let dr = root.path();
    // a truncated CIFAR-10 batch in a prepared folder
    let mut files = cifar10_files(2);
    files[2].1.truncate(5000);
    write_files(dr, &files);
    let (_, err) = text(&resmooth(&["data", "check", "cifar10", "--dataroot", dr.to_str().unwrap()]));
    assert!(err.contains("data_batch_3.bin") && err.contains("3073-byte records"), "{err}");
    // an SVHN file of the wrong shape
    let arrays = [
        data::mat::MatArray { name: "X".into(), dims: vec![28, 28, 3, 1], data: data::mat::MatData::U8(vec![0; 2352]) },
        data::mat::MatArray { name: "y".into(), dims: vec![1, 1], data: data::mat::MatData::F64(vec![1.0]) },
    ];
    data::mat::write_mat(&dr.join("train_32x32.mat"), &arrays, true).unwrap();
    data::write_svhn_split(&dr.join("test_32x32.mat"), &svhn_set(0..2), true).unwrap();
    let (_, err) = text(&resmooth(&["data", "info", "svhn", "--dataroot", dr.to_str().unwrap()]));
    assert!(err.contains("train_32x32.mat") && err.contains("32x32x3xN") && err.contains("[28, 28, 3, 1]"), "{err}");
    // an ImageFolder with a non-image file, then with an empty class
    let tree = dr.join("tree");
    for split in ["train", "test"] {
        for class in ["cat", "dog"] {
            let d = tree.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            image::RgbImage::new(4, 4).save(d.join("0.png")).unwrap();
        }
    }
    std::fs::write(tree.join("train/dog/notes.txt"), "x").unwrap();
    let (_, err) = text(&resmooth(&["data", "info", tree.to_str().unwrap()]));
    assert!(err.contains("notes.txt") && err.contains("not a .jpg"), "{err}");
    std::fs::remove_file(tree.join("train/dog/notes.txt")).unwrap();
    std::fs::remove_file(tree.join("test/cat/0.png")).unwrap();
    let (_, err) = text(&resmooth(&["data", "info", tree.to_str().unwrap()]));
    assert!(err.contains("test/cat") && err.contains("no image"), "{err}");
    std::fs::write(tree.join("test/cat/1.png"), b"").unwrap();
    let (_, err) = text(&resmooth(&["data", "info", "imagefolder", "--dataroot", tree.to_str().unwrap()]));
    assert!(err.contains("1.png") && err.contains("not a readable image"), "{err}");
}

/// DATAROOT/tiny-imagenet-200 as the official zip lays it out: three wnids, 64x64 JPEGs (one
/// grey), boxes files, val/images labelled by val_annotations.txt.
fn write_tiny(root: &Path) -> std::path::PathBuf {
    let dir = root.join("tiny-imagenet-200");
    let wnids = ["n03", "n01", "n02"];
    for (k, wnid) in wnids.iter().enumerate() {
        let images = dir.join("train").join(wnid).join("images");
        std::fs::create_dir_all(&images).unwrap();
        for i in 0..4 {
            let img = image::RgbImage::from_pixel(64, 64, image::Rgb([k as u8 * 80, i as u8 * 20, 100]));
            if i == 0 {
                image::DynamicImage::ImageRgb8(img).to_luma8().save(images.join(format!("{wnid}_{i}.JPEG"))).unwrap();
            } else {
                img.save(images.join(format!("{wnid}_{i}.JPEG"))).unwrap();
            }
        }
        std::fs::write(dir.join("train").join(wnid).join(format!("{wnid}_boxes.txt")), "b\t0\t0\t9\t9\n").unwrap();
    }
    let val = dir.join("val/images");
    std::fs::create_dir_all(&val).unwrap();
    let mut notes = String::new();
    for i in 0..5 {
        image::RgbImage::from_pixel(64, 64, image::Rgb([9, 9, 9])).save(val.join(format!("val_{i}.JPEG"))).unwrap();
        notes += &format!("val_{i}.JPEG\t{}\t0\t0\t63\t63\n", wnids[i % 3]);
    }
    std::fs::write(dir.join("val/val_annotations.txt"), notes).unwrap();
    std::fs::write(dir.join("wnids.txt"), wnids.join("\n")).unwrap();
    dir
}

#[test]
fn tiny_imagenet_layouts_are_read_as_the_reference_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_tiny(tmp.path());
    let root = tmp.path().to_str().unwrap();
    let out = resmooth(&["data", "info", "tiny", "--dataroot", root]);
    let (info, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(info.contains("tiny in") && info.contains("64x64 RGB"), "{info}");
    assert!(info.contains("mean (0.4802, 0.4481, 0.3975), std (0.2302, 0.2265, 0.2262)"), "{info}");
    assert!(
        info.contains("classes        3") && info.contains("train          12 images (the official split has 100000)"),
        "{info}"
    );
    // sorted wnids; val labelled by the annotations: val_0 n03, val_1 n01, val_2 n02, ...
    assert!(info.contains("0 n01") && info.contains("2 n03"), "{info}");
    let ds = data::load(DatasetName::Tiny, tmp.path(), data::Size::Native, &mut Silent).unwrap();
    assert_eq!(ds.test.labels, vec![2, 0, 1, 2, 0]);
    assert_eq!(ds.train.labels, vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    let (out, _) = text(&resmooth(&["data", "check", "tiny", "--dataroot", root]));
    assert!(out.contains("train/ and val/ present"), "{out}");

    // the reorganised layout val/<wnid>/ that the reference's ImageFolder reads, resized
    std::fs::remove_dir_all(dir.join("val")).unwrap();
    for wnid in ["n01", "n03"] {
        let d = dir.join("val").join(wnid);
        std::fs::create_dir_all(&d).unwrap();
        image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])).save(d.join("x.JPEG")).unwrap();
    }
    let ds = data::load(DatasetName::Tiny, tmp.path(), data::Size::Square(32), &mut Silent).unwrap();
    assert_eq!((ds.test.labels.clone(), ds.test.height, ds.train.width), (vec![0, 2], 32, 32));
    let out = resmooth(&["data", "info", dir.to_str().unwrap(), "--image-size", "32"]);
    let (info, err) = text(&out);
    assert!(
        out.status.success() && info.contains("32x32 RGB") && info.contains("test           2 images"),
        "{info}{err}"
    );
}
