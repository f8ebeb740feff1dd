//! resmooth: the ReSmooth training method (Wang et al., IEEE TNNLS 2022) on libtorch.
//!
//! The pipeline, one module each: data → augment → pipeline (batches) → model → loss →
//! schedule/optim → train → report.
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod gmm;
pub mod loss;
pub mod method;
pub mod model;
pub mod optim;
pub mod pipeline;
pub mod report;
pub mod schedule;
mod step;
pub mod train;
pub mod workflow;
