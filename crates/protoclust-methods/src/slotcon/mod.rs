//! SlotCon (Wen et al., NeurIPS 2022): pixels grouped onto learnable prototypes, a DINO-style
//! grouping loss between views aligned by RoIAlign, and slot-level contrast.
//!
//! This module holds the loss pieces, each checked against the official code's fixtures; the
//! training method (student/teacher backbones, dense projector, views) builds on them.

pub mod contrast;
pub mod distill;
pub mod forward;
pub mod grouping;
pub mod invaug;
pub mod predictor;

pub use contrast::{slot_contrast, SlotContrast};
pub use distill::{pixel_rows, self_distill, update_center};
pub use forward::{slotcon_loss, teacher_momentum, SlotConLossParams, SlotConOutput};
pub use grouping::{semantic_grouping, Grouping};
pub use invaug::{group_loss, invaug, GroupLoss, GroupLossParams, ViewPair};
pub use predictor::{DinoHead, DinoHeadConfig};
