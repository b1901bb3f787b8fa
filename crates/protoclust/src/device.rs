//! Picks the compute device from the enabled backend features (`PROTOCLUST_DEVICE` overrides).

use anyhow::{bail, Result};
use burn::tensor::Device;

/// The device to run on: `cuda` when built with it, else `tch` (libtorch CPU), else `flex`.
/// `PROTOCLUST_DEVICE=flex|cuda|tch|tch-cuda` chooses explicitly.
#[allow(deprecated, unreachable_code)]
pub fn select() -> Result<Device> {
    let want = std::env::var("PROTOCLUST_DEVICE").unwrap_or_default();
    match want.as_str() {
        "" => {}
        "flex" => return Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => return Ok(Device::cuda(0)),
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
    return Ok(Device::cuda(0));
    #[cfg(feature = "tch")]
    return Ok(Device::libtorch());
    Ok(Device::flex())
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
    v.join(", ")
}

/// A short name of the device, for logs.
pub fn describe(device: &Device) -> String {
    format!("{device:?}")
}
