//! One training pair on one core: original view (crop, flip, normalise) and RandAugment(2, 28)
//! view (ops, crop, flip, normalise). The target: at least 20,000 pairs/s, i.e. under 50 us.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resmooth::augment::tools::{make_pair, synthetic_set};
use resmooth::augment::Augmenter;

fn bench(c: &mut Criterion) {
    let set = synthetic_set(1024, 0);
    let per = set.image_bytes();
    let (mut bytes, mut ori, mut aug) = (vec![0u8; per], vec![0f32; per], vec![0f32; per]);
    let mut group = c.benchmark_group("augment_pair");
    group.throughput(Throughput::Elements(1));
    for (name, aug_name, cutout) in
        [("ra_2_28", "ra", 0), ("ra_2_28_cutout16", "ra", 16), ("aa", "aa", 0), ("default", "default", 0)]
    {
        let augmenter = Augmenter::from_flags(aug_name, 2, 28, cutout, "cifar10").unwrap();
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % set.len();
                make_pair(&set, &augmenter, 0, i, &mut bytes, &mut ori, &mut aug);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
