//! The vector width the kernels run at on this CPU, detected once: every kernel dispatches on
//! it, and the route thresholds of [`super::conv2d::Route`] were measured per width.
//! `PROTOCLUST_VECTORS=avx2` (or `portable`) runs narrower kernels than the CPU has, for
//! side-by-side benchmarks.

use std::sync::OnceLock;

/// The vector instructions the kernels dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorWidth {
    /// Neither of the below (other architectures): the portable kernels.
    Portable,
    /// AVX2 with FMA: 8 f32 lanes, 16 registers.
    Avx2,
    /// AVX-512F with FMA: 16 f32 lanes, 32 registers.
    Avx512,
}

impl VectorWidth {
    /// The width `PROTOCLUST_VECTORS` asks for (`native`, the default: the widest the CPU has).
    pub fn from_env() -> Result<Option<Self>, String> {
        super::env_choice(
            "PROTOCLUST_VECTORS",
            &[
                ("native", None),
                ("avx512", Some(Self::Avx512)),
                ("avx2", Some(Self::Avx2)),
                ("portable", Some(Self::Portable)),
            ],
        )
    }

    /// The process-wide width: the CPU's, or the narrower one `PROTOCLUST_VECTORS` asks for
    /// (read once; never wider than the CPU's, and an invalid value is reported by the CLI).
    pub fn current() -> Self {
        static WIDTH: OnceLock<VectorWidth> = OnceLock::new();
        *WIDTH.get_or_init(|| {
            let cpu = Self::detect();
            match Self::from_env() {
                Ok(Some(asked)) => asked.min(cpu),
                _ => cpu,
            }
        })
    }

    /// The widest this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                return Self::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

impl std::fmt::Display for VectorWidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        })
    }
}
