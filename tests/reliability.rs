//! No run is lost or silently wrong: runs killed (SIGKILL) or stopped (SIGTERM, SIGINT) at
//! chosen points of an epoch, of the evaluation, of the detection pass and inside a checkpoint
//! write resume to the same metrics and weights, bit for bit, as an uninterrupted run; a second
//! run on a tag is refused; a full disk stops a run before it trains or keeps its checkpoint;
//! wrong files and flags are refused before training.
//!
//! The processes are paused at a point by the test hook `RESMOOTH_TEST_PAUSE` (see README.md,
//! "Test hooks") and killed or signalled there; `RESMOOTH_TEST_ENOSPC` fails a chosen write.

mod common;

use common::{resmooth_cmd, text, write_colour_folder, Colours};
use resmooth::engine::checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The fields of a metrics line that measure time, which no two runs share.
const TIMING: [&str; 5] = ["seconds", "images_per_sec", "train_seconds", "data_wait_seconds", "eval_seconds"];

/// The shared data set and the uninterrupted reference runs, made once per test process.
struct Shared {
    data: PathBuf,
    root: PathBuf,
    /// The plain run (originals only: also the baseline of the --gmm runs).
    reference: PathBuf,
    /// The --gmm run with random weighting.
    gmm_reference: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = common::scratch("reliability");
        let data = root.join("colours");
        write_colour_folder(&data, 32, 16, Colours { seed: 777, base: 150, div: 3 });
        let s = Shared { reference: root.join("logs/ref"), gmm_reference: root.join("logs/gmm"), data, root };
        let logs = s.root.join("logs");
        let out = run(&plain(&s, &logs, "ref"));
        assert!(out.status.success(), "{}", text(&out));
        let out = run(&gmm(&s, &logs, "gmm"));
        assert!(out.status.success(), "{}", text(&out));
        s
    })
}

/// A fresh log folder for one test.
fn logdir(name: &str) -> PathBuf {
    let dir = shared().root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base(s: &Shared, logs: &Path, tag: &str, epochs: &str) -> Vec<String> {
    let mut args = common::on_folder("train", &s.data, logs);
    args.extend([
        "--tag",
        tag,
        "--batch-size",
        "16",
        "--epochs",
        epochs,
        "--lr",
        "0.05",
        "--warm-epoch",
        "1",
        "--seed",
        "7",
        "--workers",
        "1",
    ]);
    args.iter().map(|a| a.to_string()).collect()
}

/// Three epochs of originals only (6 steps and 3 evaluation batches an epoch).
fn plain(s: &Shared, logs: &Path, tag: &str) -> Vec<String> {
    let mut a = base(s, logs, tag, "3");
    a.extend(["--prob", "1.0"].map(String::from));
    a
}

/// Two epochs of the method: the detection pass, RandAugment views, SampleSmooth with p_ID
/// permuted by libtorch's generator (`--weighting random`).
fn gmm(s: &Shared, logs: &Path, tag: &str) -> Vec<String> {
    let mut a = base(s, logs, tag, "2");
    let pretrained = s.reference.join("best.safetensors");
    a.extend(
        [
            "--prob",
            "0.5",
            "--aug",
            "ra",
            "--N",
            "1",
            "--M",
            "9",
            "--gmm",
            "--loss",
            "SampleSmooth",
            "--smooth-aug",
            "0.3",
            "--weighting",
            "random",
            "--pretrained",
            pretrained.to_str().unwrap(),
        ]
        .map(String::from),
    );
    a
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// `args` with `flag` set to `value` (replaced where it is given, else added).
fn set(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

fn run(args: &[String]) -> Output {
    resmooth_cmd().args(args).output().expect("runs resmooth")
}

/// How a paused run is ended.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill,
    Signal(i32),
}

/// Starts `args` paused at `point` (`RESMOOTH_TEST_PAUSE`, for `secs`), waits until it is there.
fn start_paused(args: &[String], point: &str, secs: &str, env: &[(&str, &str)]) -> (Child, PathBuf) {
    let marker = shared().root.join(format!("marker-{}-{}", std::process::id(), unique()));
    let _ = std::fs::remove_file(&marker);
    let mut child = resmooth_cmd()
        .args(args)
        .envs(env.iter().copied())
        .env("RESMOOTH_TEST_PAUSE", point)
        .env("RESMOOTH_TEST_PAUSE_MARKER", &marker)
        .env("RESMOOTH_TEST_PAUSE_SECS", secs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("the run ended ({status}) before reaching {point}: {}", text(&out));
        }
        assert!(Instant::now() < deadline, "never reached {point}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, marker)
}

fn unique() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: a plain kill(2) of our own child's pid
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Runs `args` until `point`, ends it there as `how` says, and returns what it printed.
fn interrupt(args: &[String], point: &str, how: Stop) -> Output {
    let secs = match how {
        Stop::Kill => "3600",
        Stop::Signal(_) => "1",
    };
    let (mut child, _) = start_paused(args, point, secs, &[]);
    match how {
        Stop::Kill => child.kill().unwrap(),
        Stop::Signal(sig) => signal(&child, sig),
    }
    child.wait_with_output().unwrap()
}

/// A metrics line without its timing fields, as written (the values are never re-printed).
fn untimed(line: &str) -> String {
    line.split(',')
        .filter(|field| !TIMING.iter().any(|t| field.starts_with(&format!("\"{t}\":"))))
        .collect::<Vec<_>>()
        .join(",")
}

/// The run in `dir` has, byte for byte, the metrics (timing aside) and weights of `reference`.
fn assert_same_run(reference: &Path, dir: &Path) {
    let read = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let (want, got) = (read(reference), read(dir));
    assert_eq!(want.lines().count(), got.lines().count(), "{}:\n{got}", dir.display());
    for (w, g) in want.lines().zip(got.lines()) {
        assert_eq!(untimed(w), untimed(g), "{}", dir.display());
    }
    for file in ["model.safetensors", "best.safetensors"] {
        let (w, g) = (std::fs::read(reference.join(file)).unwrap(), std::fs::read(dir.join(file)).unwrap());
        assert!(w == g, "{} differs from the uninterrupted run's", dir.join(file).display());
    }
}

/// Interrupts a run at `point`, checks what the interruption left, resumes it by rerunning the
/// same command and checks it ends as the uninterrupted `reference` did.
fn interrupt_and_resume(reference: &Path, args: &[String], dir: &Path, point: &str, how: Stop) {
    let out = interrupt(args, point, how);
    let log = text(&out);
    if let Stop::Signal(sig) = how {
        assert_eq!(out.status.code(), Some(130), "signal {sig} at {point}: {log}");
        assert!(log.contains("rerun the same command"), "{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
    // the lines of finished epochs are never changed by the resume (issue 15)
    let before = std::fs::read(dir.join("metrics.jsonl")).unwrap_or_default();
    let out = run(args);
    let log2 = text(&out);
    assert!(out.status.success(), "resuming after {point} ({how:?}): {log}\n---\n{log2}");
    let after = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    assert!(after.starts_with(&before), "{point}: finished epochs' lines changed");
    assert_same_run(reference, dir);
}

#[test]
fn killed_anywhere_in_an_epoch_a_run_resumes_to_the_same_numbers() {
    let s = shared();
    for (point, name) in [("step#8", "kill-step"), ("eval#4", "kill-eval")] {
        let logs = logdir(name);
        interrupt_and_resume(&s.reference, &plain(s, &logs, "ref"), &logs.join("ref"), point, Stop::Kill);
    }
}

#[test]
fn killed_inside_a_checkpoint_write_the_previous_checkpoint_is_kept() {
    let s = shared();
    let logs = logdir("kill-write");
    let dir = logs.join("ref");
    let args = plain(s, &logs, "ref");
    let out = interrupt(&args, "write:checkpoint.safetensors#2", Stop::Kill);
    assert!(!out.status.success());
    assert!(dir.join("checkpoint.safetensors.partial").is_file(), "the kill came mid-write");
    let meta = checkpoint::read_meta(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.epoch, 1, "the complete checkpoint of epoch 1 is kept");
    assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().count(), 1);
    let out = run(&args);
    assert!(out.status.success() && text(&out).contains("resuming"), "{}", text(&out));
    assert!(!dir.join("checkpoint.safetensors.partial").exists());
    assert_same_run(&s.reference, &dir);
}

#[test]
fn a_signal_saves_the_step_in_progress_and_the_run_resumes_there() {
    let s = shared();
    for (point, sig, name) in [("step#8", libc::SIGTERM, "term-step"), ("eval#4", libc::SIGINT, "int-eval")] {
        let logs = logdir(name);
        let dir = logs.join("ref");
        let args = plain(s, &logs, "ref");
        let out = interrupt(&args, point, Stop::Signal(sig));
        let log = text(&out);
        assert_eq!(out.status.code(), Some(130), "{log}");
        let partial = checkpoint::read_meta(&dir.join("checkpoint.safetensors")).unwrap().partial;
        let partial = partial.unwrap_or_else(|| panic!("{point}: no partial epoch saved: {log}"));
        // step#8 is the 2nd of epoch 2's 6 batches; eval#4 comes after all of them
        let batches = if point.starts_with("step") { 2 } else { 6 };
        assert_eq!((partial.epoch, partial.batches), (2, batches), "{log}");
        assert!(log.contains(&format!("in epoch 2 after {batches} batches")) && log.contains("rerun"), "{log}");
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(&format!("in epoch 2 after {batches} batches")), "{}", text(&out));
        assert_same_run(&s.reference, &dir);
    }
}

#[test]
fn a_second_signal_ends_the_process_at_once() {
    let s = shared();
    let logs = logdir("twice");
    let (mut child, _) = start_paused(&plain(s, &logs, "ref"), "step#2", "3600", &[]);
    let started = Instant::now();
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "exit status 128 + SIGINT");
    assert!(started.elapsed() < Duration::from_secs(30), "it did not wait for the paused step");
}

#[test]
fn the_method_resumes_bit_for_bit_after_the_detection_pass_or_a_step_is_cut() {
    let s = shared();
    let logs = logdir("gmm-kill");
    interrupt_and_resume(&s.gmm_reference, &gmm(s, &logs, "gmm"), &logs.join("gmm"), "detect#2", Stop::Kill);
    let gmm_json = |d: &Path| std::fs::read(d.join("gmm.json")).unwrap();
    assert_eq!(gmm_json(&s.gmm_reference), gmm_json(&logs.join("gmm")));
    // a stop in the middle of an epoch of p_ID permutations and augmented views
    let logs = logdir("gmm-term");
    let args = gmm(s, &logs, "gmm");
    interrupt_and_resume(&s.gmm_reference, &args, &logs.join("gmm"), "step#9", Stop::Signal(libc::SIGTERM));
    // a stop during the detection pass keeps nothing of it and says so
    let logs = logdir("gmm-term-detect");
    let out = interrupt(&gmm(s, &logs, "gmm"), "detect#1", Stop::Signal(libc::SIGTERM));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("detection pass"), "{}", text(&out));
}

#[test]
fn stopped_after_epoch_one_the_resumed_metrics_are_byte_identical() {
    let s = shared();
    let logs = logdir("stop-after");
    let args = plain(s, &logs, "ref");
    let out = run(&with(args.clone(), &["--stop-after", "1"]));
    assert!(out.status.success(), "{}", text(&out));
    let first = std::fs::read_to_string(logs.join("ref/metrics.jsonl")).unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let all = std::fs::read_to_string(logs.join("ref/metrics.jsonl")).unwrap();
    assert!(all.starts_with(&first), "epoch 1's line was rewritten:\n{first}\n{all}");
    assert_same_run(&s.reference, &logs.join("ref"));
}

#[test]
fn the_numbers_do_not_depend_on_the_worker_count_or_deterministic_mode() {
    let s = shared();
    let logs = logdir("workers");
    let args = set(plain(s, &logs, "ref"), "--workers", "3");
    let out = run(&with(args, &["--deterministic"]));
    assert!(out.status.success(), "{}", text(&out));
    assert_same_run(&s.reference, &logs.join("ref"));
}

#[test]
fn a_second_run_on_the_same_tag_is_refused_naming_the_first() {
    let s = shared();
    let logs = logdir("lock");
    let args = plain(s, &logs, "ref");
    let (mut first, _) = start_paused(&args, "step#1", "3600", &[]);
    let out = run(&args);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("in use by another resmooth process") && log.contains(&format!("pid {}", first.id())),
        "{log}"
    );
    assert!(!log.contains("epoch 1/"), "the second run trained: {log}");
    // the lock dies with its process: no stale lock to clean up
    first.kill().unwrap();
    first.wait().unwrap();
    let out = run(&with(args, &["--stop-after", "1"]));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_injected_full_disk_stops_the_run_with_its_checkpoint_intact() {
    let s = shared();
    // before training: the log folder cannot take a file
    let logs = logdir("enospc-probe");
    let out = resmooth_cmd().args(plain(s, &logs, "ref")).env("RESMOOTH_TEST_ENOSPC", ".write-probe").output().unwrap();
    let log = text(&out);
    assert!(!out.status.success() && log.contains("--logdir") && log.contains("No space left"), "{log}");
    assert!(!logs.join("ref/metrics.jsonl").exists());

    // mid-run, the checkpoint of epoch 2: epoch 1's stays
    let logs = logdir("enospc-ckpt");
    let dir = logs.join("ref");
    let args = plain(s, &logs, "ref");
    let out = resmooth_cmd().args(&args).env("RESMOOTH_TEST_ENOSPC", "checkpoint.safetensors#2").output().unwrap();
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("writing the files of epoch 2 failed") && log.contains("No space left"), "{log}");
    assert_eq!(checkpoint::read_meta(&dir.join("checkpoint.safetensors")).unwrap().epoch, 1);
    assert!(!dir.join("checkpoint.safetensors.partial").exists());
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_run(&s.reference, &dir);

    // mid-run, the metrics line of epoch 2 (after its checkpoint): no half line is left, and
    // the resumed run restores the line from the checkpoint
    let logs = logdir("enospc-metrics");
    let dir = logs.join("ref");
    let args = plain(s, &logs, "ref");
    let out = resmooth_cmd().args(&args).env("RESMOOTH_TEST_ENOSPC", "metrics.jsonl#2").output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.ends_with('\n') && metrics.lines().count() == 1, "{metrics:?}");
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_run(&s.reference, &dir);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` at `dir`, or says why it cannot.
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed (needs root): {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_small_or_filled_file_system_is_refused_up_front_or_keeps_the_checkpoint() {
    let s = shared();
    let small = match Mount::tmpfs(&s.root.join("tmpfs-small"), "4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}; the injected-ENOSPC test covers a full disk");
            return;
        }
    };
    let out = run(&plain(s, &small.0, "ref"));
    let log = text(&out);
    assert!(!out.status.success() && log.contains("MB free") && log.contains("--logdir"), "{log}");
    assert!(!small.0.join("ref/metrics.jsonl").exists());
    drop(small);

    // room for the run's files, then the disk fills up during epoch 2
    let mount = Mount::tmpfs(&s.root.join("tmpfs-full"), "320m").unwrap();
    let dir = mount.0.join("ref");
    let args = plain(s, &mount.0, "ref");
    let (child, _) = start_paused(&args, "step#8", "8", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default().lines().count() < 1 {
        assert!(Instant::now() < deadline, "epoch 1 was not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let filler = mount.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![1u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
    }
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert!(!out.status.success() && log.contains("No space left") && log.contains("rerun"), "{log}");
    assert_eq!(checkpoint::read_meta(&dir.join("checkpoint.safetensors")).unwrap().epoch, 1, "{log}");
    std::fs::remove_file(&filler).unwrap();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_run(&s.reference, &dir);
}

#[test]
fn a_damaged_checkpoint_is_named_with_the_way_out_and_kept() {
    let s = shared();
    for (name, damage) in [("cut", 0usize), ("flipped", 1)] {
        let logs = logdir(&format!("damaged-{name}"));
        let dir = logs.join("ref");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["checkpoint.safetensors", "metrics.jsonl", "model.safetensors"] {
            std::fs::copy(s.reference.join(f), dir.join(f)).unwrap();
        }
        let mut bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
        if damage == 0 {
            bytes.truncate(bytes.len() * 2 / 3);
        } else {
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
        }
        std::fs::write(dir.join("checkpoint.safetensors"), &bytes).unwrap();
        let out = run(&plain(s, &logs, "ref"));
        let log = text(&out);
        assert!(!out.status.success(), "{log}");
        assert!(log.contains("checkpoint.safetensors cannot be resumed") && log.contains("--restart"), "{log}");
        assert_eq!(std::fs::read(dir.join("checkpoint.safetensors")).unwrap(), bytes, "the damaged file is kept");
    }
}

#[test]
fn wrong_files_and_flags_are_refused_before_training() {
    let s = shared();
    let logs = logdir("upfront");
    let file = logs.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let best = s.reference.join("best.safetensors");
    let fake = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = logs.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&best, dir.join("best.safetensors")).unwrap();
        let mut summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(s.reference.join("summary.json")).unwrap()).unwrap();
        edit(&mut summary["config"]);
        std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        dir.join("best.safetensors")
    };
    let other_dataset = fake("c10", &|c| c["dataset"] = "cifar10".into());
    let not_baseline = fake("rs", &|c| c["prob"] = 0.5.into());
    let method = ["--prob", "0.5", "--gmm", "--loss", "SampleSmooth"];
    let gmm_flags = |p: &Path, model: &str| {
        with(with(base(s, &logs, "x/run", "3"), &method), &["--model", model, "--pretrained", p.to_str().unwrap()])
    };
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            with(plain(s, &file.join("logs"), "x"), &[]),
            vec!["--logdir".into(), file.join("logs").display().to_string(), "cannot be written".into()],
        ),
        (
            with(plain(s, &logs, "x"), &["--save", logs.join("w/best.safetensors").to_str().unwrap()]),
            vec!["best.safetensors".into(), "name the file otherwise".into()],
        ),
        (
            with(plain(s, &logs, "x"), &["--save", s.reference.join("model.safetensors").to_str().unwrap()]),
            vec!["holds the files of run 'ref'".into()],
        ),
        (gmm_flags(&best, "wresnet28_10"), vec![best.display().to_string(), "resnet18".into()]),
        (gmm_flags(&other_dataset, "resnet18"), vec!["--dataset cifar10".into(), "--pretrained".into()]),
        (gmm_flags(&not_baseline, "resnet18"), vec!["is not a baseline".into(), "--prob 0.5".into()]),
        (
            with(base(s, &logs, "y/run", "3"), &method),
            vec!["y/baseline/best.safetensors".into(), "does not exist".into(), "resmooth train".into()],
        ),
        (set(plain(s, &logs, "x"), "--dataroot", "/nonexistent/data"), vec!["/nonexistent/data/train".into()]),
    ];
    for (args, needles) in cases {
        let out = run(&args);
        let log = text(&out);
        assert!(!out.status.success(), "{args:?}: {log}");
        for n in needles {
            assert!(log.contains(&n), "{args:?}: '{n}' missing from: {log}");
        }
        assert!(!log.contains("panicked") && !log.contains("epoch 1/"), "{log}");
    }
    assert!(!logs.join("x/run/metrics.jsonl").exists() && !logs.join("x/metrics.jsonl").exists());
}
