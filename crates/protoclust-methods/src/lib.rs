//! Self-supervised clustering methods behind one [`Method`] trait.
//!
//! A method file reads like the paper's algorithm box: the views it asks for, its forward pass
//! and loss, and its state updates around the optimiser step. Shared pieces (Sinkhorn, heads,
//! backbones) live in `protoclust-nn`.

pub mod deepcluster;
pub mod deepclusterv2;
pub mod jigclu;
pub mod method;
pub mod odc;
pub mod official;
pub mod pseudo;
pub mod slotcon;
pub mod swav;

pub use method::{
    BatchPass, BatchVisitor, EpochContext, FeaturePass, HeadOutputs, Method, MethodError,
    StepContext, StepOutput,
};
