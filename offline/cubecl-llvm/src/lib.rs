//! Offline stand-in for `cubecl-llvm` 0.11.3: the names `cubecl-cuda` refers to, without the
//! LLVM backend. `cubecl-cuda` with its `cpp` feature compiles every kernel through CUDA C++
//! and NVRTC, so nothing here runs unless the LLVM backend is asked for, and then it fails
//! with an error saying so.

use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::{CompilationError, Compiler};
use cubecl_runtime::kernel::BufferIOAttr;

/// The message of every LLVM entry point.
const NO_LLVM: &str = "cubecl's LLVM backend is not in this build (protoclust's offline cuda \
build has cubecl-cuda compile through CUDA C++ and NVRTC); unset CUBECL_CUDA_BACKEND or build \
with the real cubecl-llvm";

/// Where the LLVM backend would compile to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    /// The host CPU.
    #[default]
    Cpu,
    /// NVIDIA PTX.
    Nvptx,
}

/// The LLVM backend's compiler: refuses every kernel.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    /// The target it was configured for.
    pub target: LlvmTarget,
}

/// The LLVM backend's options (the fields `cubecl-cuda` fills).
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMD architecture (unused).
    pub arch: Option<()>,
    /// The NVIDIA architecture.
    pub sm_arch: Option<SmArch>,
    /// The PTX version to emit.
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    /// Scalars in the kernel parameter block.
    pub grid_constants: bool,
}

/// A compiled PTX module (never produced here).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX.
    pub ptx: Vec<core::ffi::c_char>,
    /// Entry point.
    pub entrypoint: String,
    /// IR text.
    pub ir: String,
    /// Dynamic shared memory in bytes.
    pub shared_memory_size: usize,
    /// Buffer access modes.
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM backend produces (never produced here).
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    /// A PTX module.
    NvptxCode(NvptxModule),
    /// Placeholder for the targets this stand-in leaves out.
    Unavailable,
}

impl core::fmt::Display for PlironArtifact {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlironArtifact::NvptxCode(m) => f.write_str(&m.ir),
            PlironArtifact::Unavailable => f.write_str(NO_LLVM),
        }
    }
}

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;
    type CompilationOptions = PlironOptions;

    fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic {
            reason: NO_LLVM.to_string(),
            backtrace: BackTrace::capture(),
        })
    }

    fn extension(&self) -> &'static str {
        "ll"
    }

    fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}

/// NVIDIA-specific pieces.
pub mod nvptx {
    /// The PTX ISA version for a driver.
    pub mod ptx_version {
        use core::fmt;

        /// A PTX ISA version as the NVPTX target feature spells it (8.7 is `87`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        /// First CUDA driver to load each PTX version, newest first (clang's mapping).
        const DRIVER_PTX: &[(i32, u32)] = &[
            (13030, 93),
            (13020, 92),
            (13010, 91),
            (13000, 90),
            (12090, 88),
            (12080, 87),
            (12050, 85),
            (12040, 84),
            (12030, 83),
            (12020, 82),
            (12010, 81),
            (12000, 80),
            (11080, 78),
            (11070, 77),
            (11060, 76),
            (11050, 75),
            (11040, 74),
            (11030, 73),
            (11020, 72),
            (11010, 71),
            (11000, 70),
            (10020, 65),
            (10010, 64),
            (10000, 63),
        ];

        impl PtxVersion {
            /// The newest version a driver of CUDA `driver` (12.8 is `12080`) loads; `None`
            /// below CUDA 10.0.
            pub fn for_driver(driver: i32) -> Option<Self> {
                DRIVER_PTX
                    .iter()
                    .find(|(first, _)| driver >= *first)
                    .map(|(_, ptx)| Self(*ptx))
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }
    }
}

/// Pieces shared by the LLVM targets.
pub mod shared {
    /// Device features narrowed to what the LLVM backend lowers.
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU target a device's features would be narrowed for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            /// NVIDIA PTX.
            Nvptx,
        }

        /// Leaves the properties as they are: without the LLVM backend, the CUDA C++ backend
        /// (which advertised them) compiles every kernel.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}
