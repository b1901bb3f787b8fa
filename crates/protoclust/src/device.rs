//! Picks the compute device from the enabled backend features (`PROTOCLUST_DEVICE` overrides).

use anyhow::{bail, Result};
use burn::tensor::Device;
#[cfg(feature = "wgpu")]
use burn::tensor::DeviceKind;
use protoclust_nn::precision::Precision;

/// The device to run on: `cuda` when built with it, else `wgpu`, else `tch` (libtorch CPU),
/// else `flex`. `PROTOCLUST_DEVICE=flex|cuda|wgpu|vulkan|metal|tch|tch-cuda` chooses explicitly
/// (`wgpu`: the graphics API and adapter wgpu prefers, `CUBECL_WGPU_DEFAULT_DEVICE` overrides;
/// `vulkan` and `metal` pin that API).
#[allow(deprecated, unreachable_code)]
pub fn select() -> Result<Device> {
    let want = std::env::var("PROTOCLUST_DEVICE").unwrap_or_default();
    match want.as_str() {
        "" => {}
        "flex" => return Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => return cuda(),
        #[cfg(feature = "wgpu")]
        "wgpu" => return gpu("wgpu", || Device::wgpu(DeviceKind::DefaultDevice)),
        #[cfg(feature = "vulkan")]
        "vulkan" => return gpu("vulkan", || Device::vulkan(DeviceKind::DefaultDevice)),
        #[cfg(feature = "metal")]
        "metal" => return gpu("metal", || Device::metal(DeviceKind::DefaultDevice)),
        #[cfg(feature = "tch")]
        "tch" => return Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        "tch-cuda" => return Ok(Device::libtorch_cuda(0)),
        other => bail!(
            "PROTOCLUST_DEVICE={other}: not available in this build (built with: {})",
            built_with()
        ),
    }
    #[cfg(feature = "cuda")]
    return cuda();
    #[cfg(feature = "wgpu")]
    return gpu("wgpu", || Device::wgpu(DeviceKind::DefaultDevice));
    #[cfg(feature = "tch")]
    return Ok(Device::libtorch());
    Ok(Device::flex())
}

/// The first CUDA device, checked by one tiny allocation: a machine without a driver or GPU
/// gets one error line instead of a panic at the first op.
#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !driver_present() {
        bail!(
            "PROTOCLUST_DEVICE=cuda: this machine has no NVIDIA driver (libcuda.so.1 not found); run with PROTOCLUST_DEVICE=flex for the CPU"
        );
    }
    probe("cuda", || Device::cuda(0), "no usable CUDA device")
}

/// A wgpu device (`name`: its `PROTOCLUST_DEVICE` value), checked by one tiny allocation: a
/// machine without a Vulkan/Metal/DX12 loader or adapter gets one error line, not a panic.
#[cfg(feature = "wgpu")]
fn gpu(name: &str, make: impl FnOnce() -> Device + std::panic::UnwindSafe) -> Result<Device> {
    probe(name, make, "no usable graphics adapter")
}

/// `make()`'s device once one tiny tensor has round-tripped through it; its panic, if any, as
/// one error line (`what` and the panic's first line).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn probe(
    name: &str,
    make: impl FnOnce() -> Device + std::panic::UnwindSafe,
    what: &str,
) -> Result<Device> {
    // The runtime may fail on a thread of its own (wgpu's adapter request), so the first
    // panic message of any thread is kept: the probe's own may only say its channel closed.
    let first = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let hook = std::panic::take_hook();
    let seen = first.clone();
    std::panic::set_hook(Box::new(move |info| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("unknown cause");
            *seen = Some(message.lines().next().unwrap_or_default().to_string());
        }
    }));
    let probe = std::panic::catch_unwind(|| {
        let device = make();
        burn::tensor::Tensor::<1>::zeros([1], &device).into_data();
        device
    });
    std::panic::set_hook(hook);
    if let Ok(device) = probe {
        return Ok(device);
    }
    let why = first
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| "unknown cause".into());
    bail!("PROTOCLUST_DEVICE={name}: {what} ({why}); run with PROTOCLUST_DEVICE=flex for the CPU")
}

/// Whether the CUDA driver library can be loaded (what cudarc will look for).
#[cfg(all(feature = "cuda", target_os = "linux", target_env = "gnu"))]
fn driver_present() -> bool {
    // SAFETY: dlopen with a NUL-terminated name; the handle is closed at once.
    unsafe {
        let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            return false;
        }
        libc::dlclose(handle);
        true
    }
}

/// Backend features compiled in, for messages and result records.
pub fn built_with() -> String {
    let mut v = vec!["flex"];
    if cfg!(feature = "tch") {
        v.push("tch");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        v.push("vulkan");
    }
    if cfg!(feature = "metal") {
        v.push("metal");
    }
    v.join(", ")
}

/// Refuses a half precision `device` cannot compute in (WGSL on wgpu has no bfloat16), in
/// one line, before anything is written.
pub fn precision_supported(device: &Device, precision: Precision) -> Result<()> {
    match precision.half() {
        Some(half) if !device.supports_dtype(half) => bail!(
            "train.precision = \"{precision}\": {} cannot compute in {precision}; use \"f32\"{}",
            describe(device),
            if device.supports_dtype(burn::tensor::FloatDType::F16) {
                " or \"f16\""
            } else {
                ""
            }
        ),
        _ => Ok(()),
    }
}

/// The warning for a half-precision run on `device`, where it is slower than float32.
pub fn precision_warning(device: &Device, precision: Precision) -> Option<String> {
    (precision != Precision::F32 && protoclust_nn::kernels::is_flex(device)).then(|| {
        format!(
            "warning: train.precision = \"{precision}\" on the flex (CPU) device is slower than \"f32\" \
             (flex computes bfloat16 through float32 conversions and float16 without the project's \
             kernels: about 4x and 10x slower in `bench`; {}); it is meant for GPUs",
            cpu_half_support()
        )
    })
}

/// What this CPU offers for half-precision products, in words.
fn cpu_half_support() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        return "this CPU has AVX512-BF16, which the project's kernels do not use yet";
    }
    "this CPU has no AVX512-BF16 either"
}

/// A short name of the device, for logs.
pub fn describe(device: &Device) -> String {
    format!("{device:?}")
}
