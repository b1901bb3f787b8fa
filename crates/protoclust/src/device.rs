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

/// Refuses, in one line and before anything is written, a half precision `device` cannot
/// compute in (WGSL on wgpu has no bfloat16), and bf16 on a CPU whose kernels cannot run it
/// (no AVX512-BF16): never burn's generic path, several times slower than float32.
pub fn precision_supported(device: &Device, precision: Precision) -> Result<()> {
    if precision == Precision::Bf16
        && protoclust_nn::kernels::run_on(device)
        && !protoclust_nn::kernels::bf16_gemm::supported()
    {
        bail!(
            "train.precision = \"bf16\" on the CPU needs AVX512-BF16 (`avx512_bf16` in \
             /proc/cpuinfo: Intel Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later); \
             {}: use \"f32\"",
            if cpu_has_bf16() {
                "PROTOCLUST_VECTORS turned the AVX-512 kernels off"
            } else {
                "this CPU has none"
            }
        );
    }
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

/// The warning for a half-precision run on `device` where it is slower than float32: f16 on
/// the flex (CPU) device, and bf16 there with the project's kernels turned off.
pub fn precision_warning(device: &Device, precision: Precision) -> Option<String> {
    if !protoclust_nn::kernels::is_flex(device) {
        return None;
    }
    match precision {
        Precision::F32 => None,
        Precision::Bf16 if protoclust_nn::kernels::run_on(device) => None,
        Precision::Bf16 => Some(
            "warning: train.precision = \"bf16\" with PROTOCLUST_KERNELS=burn runs burn's generic \
             bfloat16 ops, several times slower than \"f32\""
                .to_string(),
        ),
        Precision::F16 => Some(format!(
            "warning: train.precision = \"f16\" on the flex (CPU) device is slower than \"f32\" \
             (about 10x in `bench`: no CPU kernel computes in float16); it is meant for GPUs{}",
            if cpu_has_bf16() {
                "; this CPU has AVX512-BF16: \"bf16\" runs the project's bf16 kernels"
            } else {
                ""
            }
        )),
    }
}

/// Whether this CPU has AVX512-BF16.
fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A short name of the device, for logs.
pub fn describe(device: &Device) -> String {
    format!("{device:?}")
}
