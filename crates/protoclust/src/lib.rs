//! The protoclust command line: loads and validates configs, wires the library crates together.
//! No algorithm lives here.

pub mod allocator;
pub mod commands;
pub mod config;
pub mod data_spec;
pub mod device;
pub mod model_file;
pub mod preflight;
pub mod runner;
pub mod suite;
pub mod world;
