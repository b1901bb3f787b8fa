//! The protoclust command line: loads and validates configs, wires the library crates together.
//! No algorithm lives here.

pub mod allocator;
pub mod assign;
pub mod commands;
pub mod config;
pub mod data_spec;
pub mod device;
pub mod export;
pub mod import;
pub mod model_file;
pub mod preflight;
pub mod runner;
pub mod spill;
pub mod suite;
pub mod world;

/// An error as the command line prints it: the chain of contexts, outermost first, on one line.
pub fn error_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
