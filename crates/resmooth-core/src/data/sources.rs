//! The official distributions: where each file is published, its MD5, and the extracted layout.

/// One file of an official distribution, with the MD5 its publisher gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remote {
    /// File name, as published and as stored in `--dataroot`.
    pub file: &'static str,
    /// Official download address.
    pub url: &'static str,
    /// Published MD5 of the file, lowercase hex.
    pub md5: &'static str,
}

impl Remote {
    /// The address to download from: the official one, or `MIRROR/<file>` when a mirror is given.
    pub fn url_with(&self, mirror: Option<&str>) -> String {
        match mirror.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), self.file),
            None => self.url.to_string(),
        }
    }
}

/// A folder an archive extracts to, with the files that must be in it and their record size
/// (each file must hold a whole, non-zero number of records; 0 = any content) and the
/// sub-folders it must hold. The label-name .txt files of the CIFAR archives are extracted too
/// but not required: the names are built in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Folder {
    pub dir: &'static str,
    pub files: &'static [(&'static str, usize)],
    pub dirs: &'static [&'static str],
}

/// CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html).
pub const CIFAR10_ARCHIVE: Remote = Remote {
    file: "cifar-10-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
};

/// CIFAR-100, binary version.
pub const CIFAR100_ARCHIVE: Remote = Remote {
    file: "cifar-100-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
};

/// SVHN cropped digits, training split (http://ufldl.stanford.edu/housenumbers/).
pub const SVHN_TRAIN: Remote = Remote {
    file: "train_32x32.mat",
    url: "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
    md5: "e26dedcc434d2e4c54c9b2d4a06d8373",
};

/// SVHN cropped digits, test split.
pub const SVHN_TEST: Remote = Remote {
    file: "test_32x32.mat",
    url: "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
    md5: "eb5a983be6a315427106f1b164d9cef3",
};

/// SVHN cropped digits, the optional "extra" split.
pub const SVHN_EXTRA: Remote = Remote {
    file: "extra_32x32.mat",
    url: "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",
    md5: "a93ce644f1a588dc4d68dda5feec44a7",
};

/// Tiny-ImageNet-200 (the CS231n course's distribution, http://cs231n.stanford.edu/). The MD5 is
/// not published on that page; it is the one the dataset libraries check, e.g. ContinualAI's
/// avalanche (`avalanche/benchmarks/datasets/tiny_imagenet/tiny_imagenet.py`) and
/// lvyilin/pytorch-fgvc-dataset (`tiny_imagenet.py`), both `90528d7ca1a48142e341f4ef8d21d0de`.
pub const TINY_ARCHIVE: Remote = Remote {
    file: "tiny-imagenet-200.zip",
    url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    md5: "90528d7ca1a48142e341f4ef8d21d0de",
};

/// A folder of torchvision's CIFAR distribution (the "python version", pickled dicts of numpy
/// arrays), as `torchvision.datasets.CIFAR10/100(download=True)` leaves it, with the MD5 of each
/// file as torchvision checks them (`torchvision/datasets/cifar.py`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickledFolder {
    pub dir: &'static str,
    /// The training files, in order, with their MD5s.
    pub train: &'static [(&'static str, &'static str)],
    pub test: (&'static str, &'static str),
    /// The label names' file (not needed to read the images).
    pub meta: (&'static str, &'static str),
}

/// torchvision's CIFAR-10 folder (`cifar-10-python.tar.gz`, MD5 c58f30108f718f92721af3b95e74349a).
pub const CIFAR10_PYTHON: PickledFolder = PickledFolder {
    dir: "cifar-10-batches-py",
    train: &[
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ],
    test: ("test_batch", "40351d587109b95175f43aff81a1287e"),
    meta: ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
};

/// torchvision's CIFAR-100 folder (`cifar-100-python.tar.gz`, MD5 eb9058c3a382ffc7106e4002c42a8d85).
pub const CIFAR100_PYTHON: PickledFolder = PickledFolder {
    dir: "cifar-100-python",
    train: &[("train", "16019d7e3df5f24257cddd939b257f8d")],
    test: ("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
    meta: ("meta", "7973b15100ade9c7d40fb424638fde48"),
};

/// Bytes of one CIFAR-10 record: label, 3,072 pixels.
pub const CIFAR10_RECORD: usize = 1 + 3072;
/// Bytes of one CIFAR-100 record: coarse label, fine label, 3,072 pixels.
pub const CIFAR100_RECORD: usize = 2 + 3072;

/// What `cifar-10-binary.tar.gz` extracts to.
pub const CIFAR10_FOLDER: Folder = Folder {
    dir: "cifar-10-batches-bin",
    files: &[
        ("data_batch_1.bin", CIFAR10_RECORD),
        ("data_batch_2.bin", CIFAR10_RECORD),
        ("data_batch_3.bin", CIFAR10_RECORD),
        ("data_batch_4.bin", CIFAR10_RECORD),
        ("data_batch_5.bin", CIFAR10_RECORD),
        ("test_batch.bin", CIFAR10_RECORD),
    ],
    dirs: &[],
};

/// What `cifar-100-binary.tar.gz` extracts to.
pub const CIFAR100_FOLDER: Folder = Folder {
    dir: "cifar-100-binary",
    files: &[("train.bin", CIFAR100_RECORD), ("test.bin", CIFAR100_RECORD)],
    dirs: &[],
};

/// What `tiny-imagenet-200.zip` extracts to (its test/ split has no labels and is not used).
pub const TINY_FOLDER: Folder = Folder { dir: "tiny-imagenet-200", files: &[], dirs: &["train", "val"] };

/// Official image counts per split, to tell a full copy from a partial or synthetic one.
pub fn official_count(dataset: &str, split: &str) -> Option<usize> {
    match (dataset, split) {
        ("cifar10" | "cifar100", "train") => Some(50_000),
        ("cifar10" | "cifar100", "test") => Some(10_000),
        ("svhn", "train") => Some(73_257),
        ("svhn", "test") => Some(26_032),
        ("svhn", "extra") => Some(531_131),
        ("tiny", "train") => Some(100_000),
        ("tiny", "test") => Some(10_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The addresses and MD5s published by the dataset authors (CIFAR page) and used by
    /// torchvision's SVHN dataset; a typo here would refuse every genuine download.
    #[test]
    fn official_urls_and_checksums_are_the_published_ones() {
        let expect = [
            (
                CIFAR10_ARCHIVE,
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
            ),
            (
                CIFAR100_ARCHIVE,
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            ),
            (SVHN_TRAIN, "http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
            (SVHN_TEST, "http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
            (SVHN_EXTRA, "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
            (TINY_ARCHIVE, "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"),
        ];
        for (remote, url, md5) in expect {
            assert_eq!((remote.url, remote.md5), (url, md5));
            assert!(url.ends_with(&format!("/{}", remote.file)));
            assert!(md5.len() == 32 && md5.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }

    #[test]
    fn a_mirror_replaces_the_host_and_path() {
        assert_eq!(SVHN_TEST.url_with(None), SVHN_TEST.url);
        assert_eq!(SVHN_TEST.url_with(Some("")), SVHN_TEST.url);
        assert_eq!(
            CIFAR10_ARCHIVE.url_with(Some("http://127.0.0.1:8080/ds/")),
            "http://127.0.0.1:8080/ds/cifar-10-binary.tar.gz"
        );
        assert_eq!(SVHN_TRAIN.url_with(Some("file-host.lan")), "file-host.lan/train_32x32.mat");
    }
}
