//! Fitting the GMM to 100,000 log losses (the budget: under 20 ms on one core).
use criterion::{criterion_group, criterion_main, Criterion};
use resmooth::method::Gmm;

/// 100,000 log losses shaped like ReSmooth's: confident originals and harder augmented views.
fn log_losses(n: usize) -> Vec<f64> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let z = (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
            if i % 5 < 3 {
                -5.0 + 1.5 * z
            } else {
                0.3 + 0.7 * z
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let values = log_losses(100_000);
    c.bench_function("gmm_fit_100k", |b| b.iter(|| Gmm::fit(std::hint::black_box(&values)).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
