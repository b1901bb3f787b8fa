//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod export;
pub mod extract;
pub mod report;
pub mod segment;
pub mod train;
