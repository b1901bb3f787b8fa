//! One module per subcommand.

pub mod assign;
pub mod bench;
#[cfg(feature = "flex")]
pub mod bench_infer;
pub mod bench_ops;
pub mod demo;
pub mod eval;
pub mod export;
pub mod extract;
pub mod import;
pub mod report;
pub mod segment;
pub mod train;
