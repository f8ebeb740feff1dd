//! One training pair on one core, as the pipeline makes it: the original view (crop, flip) and
//! the augmented view (ops, crop, flip) as uint8 into a batch buffer. The target: at least
//! 20,000 pairs/s, i.e. under 50 us.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resmooth::augment::Augmenter;
use resmooth::config::{AugName, DatasetName};
use resmooth::data::synthetic_set;
use resmooth::pipeline::make_view;

fn bench(c: &mut Criterion) {
    let set = synthetic_set(1024, 0);
    let per = set.image_bytes();
    let (mut ori, mut aug) = (vec![0u8; per], vec![0u8; per]);
    let mut group = c.benchmark_group("augment_pair");
    group.throughput(Throughput::Elements(1));
    for (name, aug_name, cutout) in [
        ("ra_2_28", AugName::RandAugment, 0),
        ("ra_2_28_cutout16", AugName::RandAugment, 16),
        ("aa", AugName::AutoAugment, 0),
        ("default", AugName::Default, 0),
    ] {
        let augmenter = Augmenter::new(aug_name, 2, 28, cutout, DatasetName::Cifar10);
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % set.len();
                make_view(&set, &augmenter, 0, 1, i, true, &mut ori);
                make_view(&set, &augmenter, 0, 1, i, false, &mut aug)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
