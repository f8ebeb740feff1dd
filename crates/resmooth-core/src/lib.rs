//! resmooth-core: the parts of ReSmooth (Wang et al., IEEE TNNLS 2022) that need no libtorch,
//! shared by the `resmooth` trainer and the Python package.
//!
//! From the ground up (each layer imports only those below it):
//! - `config` (the typed configuration), `io` (atomic files), `pickle` (Python's pickle format,
//!   read without running anything), `progress` (how work reports),
//!   `run_folder` (the files of a run folder, the baseline a run loads, a tag's siblings);
//! - `data` (datasets as uint8 images) → `augment` (the views, pixel-exact with Pillow) →
//!   `pipeline` (uint8 batches assembled ahead of the training step) → `streaming` (batches
//!   decoded from image files every epoch) → `throughput` (the loader's rate, peak memory);
//! - `gmm` (the method's 2-component Gaussian mixture on log-losses).
pub mod augment;
pub mod config;
pub mod data;
pub mod gmm;
pub mod io;
pub mod pickle;
pub mod pipeline;
pub mod progress;
pub mod run_folder;
pub mod splits;
pub mod streaming;
pub mod throughput;
