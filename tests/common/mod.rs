//! Helpers shared by the end-to-end CLI tests: a synthetic colour ImageFolder and the binary.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The classes of [`write_colour_folder`], sorted as ImageFolder sorts them.
pub const CLASSES: [&str; 3] = ["blue", "green", "red"];

/// How [`write_colour_folder`] draws pixels: the class channel is `base + noise / div`, the
/// others `noise / div`, with noise from an LCG started at `seed`.
pub struct Colours {
    pub seed: u32,
    pub base: u8,
    pub div: u8,
}

/// Writes DIR/{train,test}/<class>/*.png: 8x8 noisy images whose class channel is the brightest.
pub fn write_colour_folder(dir: &Path, train_per_class: usize, test_per_class: usize, c: Colours) {
    let mut state = c.seed;
    let mut noise = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    };
    for (split, count) in [("train", train_per_class), ("test", test_per_class)] {
        for (label, class) in CLASSES.iter().enumerate() {
            let class_dir = dir.join(split).join(class);
            std::fs::create_dir_all(&class_dir).unwrap();
            // channel order is RGB; blue = 2, green = 1, red = 0
            let channel = [2, 1, 0][label];
            for i in 0..count {
                let img = image::RgbImage::from_fn(8, 8, |_, _| {
                    let mut px = [noise() / c.div, noise() / c.div, noise() / c.div];
                    px[channel] = c.base + noise() / c.div;
                    image::Rgb(px)
                });
                img.save(class_dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
}

/// `COMMAND --dataset imagefolder --dataroot DATA --logdir LOGS`: how the CLI tests start a
/// command on a synthetic ImageFolder; they add their own flags after it.
pub fn on_folder<'a>(command: &'a str, data: &'a Path, logs: &'a Path) -> Vec<&'a str> {
    vec![
        command,
        "--dataset",
        "imagefolder",
        "--dataroot",
        data.to_str().expect("a UTF-8 path"),
        "--logdir",
        logs.to_str().expect("a UTF-8 path"),
    ]
}

/// The binary, with one compute thread: the tests run several trainings side by side, and
/// oversubscribed OpenMP threads slow libtorch down many times over.
pub fn resmooth_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resmooth"));
    cmd.env("OMP_NUM_THREADS", "1");
    cmd
}

/// Runs the binary to completion.
pub fn resmooth(args: &[&str]) -> Output {
    resmooth_cmd().args(args).output().expect("runs resmooth")
}

/// Everything the run printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Says that `test` skipped its checks and why, on stderr past the test harness's capture (which
/// hides what a passing test prints): under a plain `cargo test` the skip shows beside its "ok".
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "\nSKIPPED {test}: {why}");
}

/// A folder `name` in the target's scratch space, emptied first, for runs that a test process
/// shares through a static: a TempDir there would never be dropped and would stay behind in /tmp
/// after every run; this one is emptied by the next run instead.
pub fn scratch(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    root
}
