//! The ImageNet input pipeline on a folder of JPEG files, as training runs it: decoders alone
//! (the `image` crate's zune-jpeg against libjpeg-turbo, full size and reduced DCT), then the
//! streaming source (read, decode, RandomResizedCrop 224, flip, ColorJitter into uint8 batches
//! of 64 through the loader) with 1 and 2 worker threads, with and without reduced-DCT decoding.
//!
//! Needs an ImageFolder split (never committed; see docs/BENCHMARKS.md for how to make one):
//!     RESMOOTH_BENCH_DATA=/tmp/inet/train cargo bench --bench data
//! `RESMOOTH_BENCH_SECONDS` (default 10) is the time per figure.
use rand::SeedableRng;
use resmooth::augment::imagenet::{ImageNetTrain, TrainDraw};
use resmooth::augment::Augmenter;
use resmooth::data::jpeg::{decode_jpeg_into, DctScale};
use resmooth::data::stream::{FileList, OnBadImage};
use resmooth::pipeline::Views;
use resmooth::streaming::{StreamSource, StreamViews, Streamed};
use resmooth::throughput::loader_rate;
use std::sync::Arc;
use std::time::Instant;

/// Runs `f` over the files again and again for `seconds`; returns files per second.
fn per_second(files: &[Vec<u8>], seconds: f64, mut f: impl FnMut(&[u8])) -> f64 {
    let (start, mut n) = (Instant::now(), 0usize);
    while start.elapsed().as_secs_f64() < seconds {
        f(&files[n % files.len()]);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Images per second (of wall time, of CPU time) of the streaming source with `threads`
/// workers, over epochs of `list`, in batches of 64.
fn stream_rate(list: &FileList, reduced_dct: bool, threads: usize, seconds: f64) -> (f64, f64) {
    let views = StreamViews::ImageNetTrain { transform: ImageNetTrain::REFERENCE, reduced_dct };
    let source = Arc::new(StreamSource::new(list.clone(), views, OnBadImage::Fail).expect("a readable folder"));
    let source = Arc::new(Streamed { source, aug: Arc::new(Augmenter::none()) });
    let r = loader_rate(source, Views::Mixed { prob: 1.0 }, 64, threads, seconds).expect("no bad file");
    (r.images_per_second(), r.images_per_cpu_second())
}

fn main() {
    let Ok(dir) = std::env::var("RESMOOTH_BENCH_DATA") else {
        eprintln!("bench data: set RESMOOTH_BENCH_DATA to an ImageFolder split of JPEG files (see docs/BENCHMARKS.md); skipped");
        return;
    };
    let seconds: f64 = std::env::var("RESMOOTH_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let list = FileList::list(std::path::Path::new(&dir)).expect("an ImageFolder split");
    let files: Vec<Vec<u8>> = (0..list.len().min(500)).map(|i| std::fs::read(list.path(i)).unwrap()).collect();
    println!(
        "{} files in {dir}; decoders on the first {} (in memory), one thread, {seconds} s per figure",
        list.len(),
        files.len()
    );
    let zune = per_second(&files, seconds, |b| {
        std::hint::black_box(image::load_from_memory_with_format(b, image::ImageFormat::Jpeg).unwrap());
    });
    println!("decode image crate (zune-jpeg)     {zune:8.1} img/s");
    let mut out = Vec::new();
    for scale in [DctScale::Full, DctScale::Half, DctScale::Quarter, DctScale::Eighth] {
        let rate = per_second(&files, seconds, |b| {
            decode_jpeg_into(b, scale, &mut out).unwrap();
        });
        println!("decode libjpeg-turbo 1/{}            {rate:8.1} img/s", scale.denominator());
    }
    // the transform's parts on decoded images, with the draws of the training view
    let decoded: Vec<(usize, usize, Vec<u8>)> = files
        .iter()
        .map(|b| {
            let mut rgb = Vec::new();
            let (h, w) = decode_jpeg_into(b, DctScale::Full, &mut rgb).unwrap();
            (h, w, rgb)
        })
        .collect();
    let t = ImageNetTrain::REFERENCE;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let draws: Vec<TrainDraw> = decoded.iter().map(|(h, w, _)| t.draw(*h, *w, &mut rng)).collect();
    let mut view = vec![0u8; 224 * 224 * 3];
    let mut k = 0;
    let rate = per_second(&files, seconds, |_| {
        let (h, w, src) = &decoded[k % decoded.len()];
        t.crop.apply(src, (*h, *w), draws[k % decoded.len()].region, &mut view);
        k += 1;
    });
    println!("RandomResizedCrop 224 (bicubic)    {rate:8.1} img/s");
    let mut scratch = Vec::new();
    let rate = per_second(&files, seconds, |_| {
        draws[k % decoded.len()].jitter.apply(&mut view, &mut scratch);
        k += 1;
    });
    println!("ColorJitter at 224                 {rate:8.1} img/s");
    for reduced_dct in [false, true] {
        for threads in [1, 2] {
            let (rate, per_cpu) = stream_rate(&list, reduced_dct, threads, seconds);
            println!(
                "stream ImageNet train view, reduced DCT {reduced_dct:5}, {threads} thread(s) {rate:8.1} img/s, \
                 {per_cpu:8.1} img per CPU-second"
            );
        }
    }
}
