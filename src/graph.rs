//! CUDA graphs: the libtorch work of a closure captured once on a GPU and replayed with one
//! launch, as torch.cuda.graph does, through the C++ shim (src/shim/graph.cpp). Tensors the
//! captured work reads are read from the same memory at every replay (copy new inputs into
//! them); tensors it makes are the graph's outputs, overwritten by every replay.

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

extern "C" {
    fn resmooth_graphs_built() -> i32;
    fn resmooth_graph_begin(device: i32, out: *mut *mut c_void) -> *mut c_char;
    fn resmooth_graph_end(graph: *mut c_void) -> *mut c_char;
    fn resmooth_graph_replay(graph: *mut c_void) -> *mut c_char;
    fn resmooth_graph_free(graph: *mut c_void);
    fn resmooth_free_error(error: *mut c_char);
}

/// A CUDA graph could not be captured or replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("CUDA graph {stage}: {message}")]
pub struct GraphError {
    /// `capture` or `replay`.
    pub stage: &'static str,
    pub message: String,
}

/// The shim's error message, if it returned one.
fn checked(error: *mut c_char, stage: &'static str) -> Result<(), GraphError> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, released once here.
    let message = unsafe {
        let m = CStr::from_ptr(error).to_string_lossy().into_owned();
        resmooth_free_error(error);
        m
    };
    Err(GraphError { stage, message })
}

/// Whether this build can capture CUDA graphs (it was compiled with the CUDA headers).
pub fn built() -> bool {
    // SAFETY: a plain C function of the shim with no arguments.
    unsafe { resmooth_graphs_built() != 0 }
}

/// A captured CUDA graph.
pub struct CudaGraph {
    raw: NonNull<c_void>,
}

impl CudaGraph {
    /// Captures the libtorch work `work` issues on CUDA device `device` (nothing runs yet) and
    /// returns the graph with what `work` returned. A panic of `work` (a libtorch op refused
    /// during capture, such as a host synchronisation) ends the capture and is an error.
    pub fn capture<T>(device: usize, work: impl FnOnce() -> T) -> Result<(CudaGraph, T), GraphError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the shim sets it only on success.
        checked(unsafe { resmooth_graph_begin(device as i32, &mut raw) }, "capture")?;
        let raw = NonNull::new(raw).expect("the shim returns a graph on success");
        let graph = CudaGraph { raw };
        let out = catch_unwind(AssertUnwindSafe(work));
        // SAFETY: `graph` holds a live graph whose capture began above; ended once here.
        let ended = checked(unsafe { resmooth_graph_end(graph.raw.as_ptr()) }, "capture");
        let out = out.map_err(|panic| GraphError { stage: "capture", message: panic_text(&panic) })?;
        ended?;
        Ok((graph, out))
    }

    /// Runs the captured work once, queued on the current stream.
    pub fn replay(&self) -> Result<(), GraphError> {
        // SAFETY: `self.raw` is a live, captured graph.
        checked(unsafe { resmooth_graph_replay(self.raw.as_ptr()) }, "replay")
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from resmooth_graph_begin and is freed once, here.
        unsafe { resmooth_graph_free(self.raw.as_ptr()) }
    }
}

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the captured work panicked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_capture_is_an_error_that_says_why_not_a_panic() {
        if tch::Cuda::is_available() {
            return; // the GPU proof (scripts/gpu_proof.py) exercises capture there
        }
        let mut ran = false;
        let err = CudaGraph::capture(0, || ran = true).err().expect("no GPU: no graph");
        assert_eq!(err.stage, "capture");
        assert!(!ran, "nothing is captured when the capture cannot begin");
        if built() {
            assert!(!err.message.is_empty(), "{err}");
        } else {
            assert!(err.message.contains("scripts/setup.sh"), "{err}");
        }
    }
}
