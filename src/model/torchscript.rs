//! Models from TorchScript files (`--model torchscript:PATH`): any module saved by
//! `torch.jit.save(torch.jit.script(model), PATH)` (or a traced one) that maps a normalised
//! NCHW float batch to logits. Its parameters and buffers (BatchNorm running statistics and
//! counters) are the module's own tensors, registered in the model's VarStore under their
//! state_dict keys, so the optimizer updates the module in place and saving, loading and
//! checkpoints work as for the built-in models.
//!
//! tch's `TrainableCModule` registers parameters only (not buffers, and under `_`-joined names),
//! so the module is driven through a small C++ shim (src/shim/torchscript.cpp, built by build.rs) that
//! also lists its buffers.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// A `torch::jit::Module` owned by the C++ side.
#[repr(C)]
struct RawModule {
    _private: [u8; 0],
}

type NamedFn = extern "C" fn(data: *mut c_void, name: *const c_char, tensor: *mut c_void);
type ListFn = unsafe extern "C" fn(*mut RawModule, *mut c_void, NamedFn, *mut *mut c_char);

extern "C" {
    fn resmooth_ts_load(path: *const c_char, device: c_int, error: *mut *mut c_char) -> *mut RawModule;
    fn resmooth_ts_free(module: *mut RawModule);
    fn resmooth_ts_free_error(error: *mut c_char);
    fn resmooth_ts_named_parameters(module: *mut RawModule, data: *mut c_void, f: NamedFn, error: *mut *mut c_char);
    fn resmooth_ts_named_buffers(module: *mut RawModule, data: *mut c_void, f: NamedFn, error: *mut *mut c_char);
    fn resmooth_ts_train(module: *mut RawModule, on: c_int, error: *mut *mut c_char);
    fn resmooth_ts_forward(module: *mut RawModule, input: *const c_void, error: *mut *mut c_char) -> *mut c_void;
}

/// Runs one shim call with an error slot; the message of a C++ exception becomes `Err`.
fn call<T>(f: impl FnOnce(*mut *mut c_char) -> T) -> Result<T, String> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let out = f(&mut error);
    if error.is_null() {
        return Ok(out);
    }
    // SAFETY: a non-null error is a NUL-terminated string the shim allocated for us to free.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { resmooth_ts_free_error(error) };
    Err(message)
}

/// Collects the named tensors the shim hands over (each a new handle we own).
extern "C" fn collect(data: *mut c_void, name: *const c_char, tensor: *mut c_void) {
    // SAFETY: `data` is the `Vec` passed by `named` below, `name` a NUL-terminated string and
    // `tensor` a new `torch::Tensor*`, which `Tensor::from_ptr` takes ownership of.
    let out = unsafe { &mut *data.cast::<Vec<(String, Tensor)>>() };
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
    out.push((name, unsafe { Tensor::from_ptr(tensor.cast()) }));
}

/// A loaded TorchScript module: its forward pass, with the train/eval mode switched explicitly
/// before each call that needs the other one.
#[derive(Debug)]
pub struct TorchScriptNet {
    module: *mut RawModule,
    path: PathBuf,
    /// The mode the module is in (`None` until the first forward pass sets one).
    training: Cell<Option<bool>>,
}

// SAFETY: the module is owned by this value alone; moving it to another thread is sound, and
// `Cell` keeps it from being shared between threads.
unsafe impl Send for TorchScriptNet {}

impl Drop for TorchScriptNet {
    fn drop(&mut self) {
        // SAFETY: `module` came from `resmooth_ts_load` and is freed once, here.
        unsafe { resmooth_ts_free(self.module) }
    }
}

impl TorchScriptNet {
    /// Loads the module at `path` onto `device` (the CPU or a CUDA device).
    pub fn load(path: &Path, device: Device) -> Result<Self, String> {
        let device = match device {
            Device::Cpu => -1,
            Device::Cuda(i) => i as c_int,
            other => return Err(format!("TorchScript models run on the CPU or a CUDA device, not {other:?}")),
        };
        let text = path.to_str().ok_or("the path is not valid UTF-8")?;
        let c_path = CString::new(text).map_err(|_| "the path contains a NUL byte".to_string())?;
        // SAFETY: `c_path` outlives the call; the shim returns a new module or reports an error.
        let module = call(|e| unsafe { resmooth_ts_load(c_path.as_ptr(), device, e) })?;
        Ok(TorchScriptNet { module, path: path.to_path_buf(), training: Cell::new(None) })
    }

    fn named(&self, list: ListFn) -> Result<Vec<(String, Tensor)>, String> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        let data = (&mut out as *mut Vec<(String, Tensor)>).cast::<c_void>();
        // SAFETY: `out` outlives the call and `collect` is the callback that expects it.
        call(|e| unsafe { list(self.module, data, collect, e) })?;
        Ok(out)
    }

    /// The parameters by state_dict key (the module's own tensors, not copies).
    pub fn parameters(&self) -> Result<Vec<(String, Tensor)>, String> {
        self.named(resmooth_ts_named_parameters)
    }

    /// The buffers (running statistics, counters) by state_dict key, the module's own tensors.
    pub fn buffers(&self) -> Result<Vec<(String, Tensor)>, String> {
        self.named(resmooth_ts_named_buffers)
    }

    /// The module's output for `xs`, in training mode (batch statistics, updating the running
    /// ones) or evaluation mode.
    pub fn try_forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, String> {
        if self.training.get() != Some(train) {
            // SAFETY: `module` is live; switching modes only writes the modules' `training` flags.
            call(|e| unsafe { resmooth_ts_train(self.module, c_int::from(train), e) })?;
            self.training.set(Some(train));
        }
        // SAFETY: `xs` outlives the call; the shim returns a new tensor handle we own.
        let out = call(|e| unsafe { resmooth_ts_forward(self.module, xs.as_ptr().cast(), e) })?;
        Ok(unsafe { Tensor::from_ptr(out.cast()) })
    }

    /// Registers the module's parameters (trainable where they require a gradient) and buffers
    /// in a VarStore under their state_dict keys (`layer1.0.bn1.running_mean`). A tensor the
    /// module holds under two names (tied weights) is registered once, so it is updated once.
    pub fn register(&self, root: &nn::Path) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        let params = self.parameters()?.into_iter().map(|(k, t)| (k, t, true));
        let buffers = self.buffers()?.into_iter().map(|(k, t)| (k, t, false));
        for (key, tensor, is_param) in params.chain(buffers) {
            let ptr = tensor.data_ptr() as usize;
            if ptr != 0 && !seen.insert(ptr) {
                continue;
            }
            let mut parts: Vec<&str> = key.split('.').collect();
            let leaf = parts.pop().unwrap_or_default();
            let path = parts.iter().fold(root.clone(), |p, part| p / *part);
            let trainable = is_param && tensor.requires_grad();
            let _ = path.add(leaf, tensor, trainable);
        }
        Ok(())
    }
}

impl TorchScriptNet {
    /// Checks that the module gives `num_classes` logits per image for 3-channel images of size
    /// `image` ([height, width]) and follows
    /// the train/eval mode: in evaluation an image's logits do not depend on the rest of the batch,
    /// and in training its BatchNorm layers (if any) update their statistics. A module traced
    /// with `torch.jit.trace` keeps the mode it was traced in and fails one of these. The
    /// module's buffers are as loaded afterwards.
    pub fn check(&self, num_classes: i64, image: [usize; 2], device: Device) -> Result<(), String> {
        let buffers = self.buffers()?;
        let saved: Vec<Tensor> = buffers.iter().map(|(_, t)| t.copy()).collect();
        let result = tch::no_grad(|| self.probe(num_classes, image, device, &buffers));
        tch::no_grad(|| {
            for ((_, t), s) in buffers.iter().zip(&saved) {
                let mut t = t.shallow_clone();
                t.copy_(s);
            }
        });
        result
    }

    fn probe(
        &self,
        num_classes: i64,
        [h, w]: [usize; 2],
        device: Device,
        buffers: &[(String, Tensor)],
    ) -> Result<(), String> {
        let (h, w) = (h as i64, w as i64);
        // fixed, varied images (no random draw, so the run's random streams are untouched)
        let images = (Tensor::arange(3 * 3 * h * w, (Kind::Float, device)) * 0.37).sin().reshape([3, 3, h, w]);
        let (ab, ac) = (images.narrow(0, 0, 2), Tensor::cat(&[images.narrow(0, 0, 1), images.narrow(0, 2, 1)], 0));
        let logits = self
            .try_forward(&ab, false)
            .map_err(|e| format!("its forward fails on a batch of two 3x{h}x{w} images, the dataset's size: {e}"))?;
        if logits.size() != [2, num_classes] {
            return Err(format!(
                "its forward gives shape {:?} for 2 images, not [2, {num_classes}]: the dataset has {num_classes} \
                 classes; build the module with that many outputs before saving it",
                logits.size()
            ));
        }
        let other = self.try_forward(&ac, false)?;
        if !logits.get(0).allclose(&other.get(0), 1e-4, 1e-5, false) {
            return Err("in evaluation mode an image's logits depend on the other images of the batch: it uses \
                 batch statistics (a module traced in training mode keeps that mode); save \
                 torch.jit.script(model) instead"
                .into());
        }
        let counters: Vec<&Tensor> =
            buffers.iter().filter(|(k, _)| k.ends_with("num_batches_tracked")).map(|(_, t)| t).collect();
        let before: Vec<i64> = counters.iter().map(|t| t.int64_value(&[])).collect();
        let _ = self.try_forward(&ab, true)?;
        if !counters.is_empty() && counters.iter().zip(&before).all(|(t, b)| t.int64_value(&[]) == *b) {
            return Err("in training mode its BatchNorm layers do not update their statistics (a module traced in \
                 evaluation mode keeps that mode); save torch.jit.script(model) instead"
                .into());
        }
        Ok(())
    }
}

impl ModuleT for TorchScriptNet {
    /// The module's logits; a failure inside the module (possible only for inputs unlike those
    /// [`crate::model::Model::build`] checked it with) stops the program with its message.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.try_forward(xs, train).unwrap_or_else(|e| panic!("{}: forward failed: {e}", self.path.display()))
    }
}
