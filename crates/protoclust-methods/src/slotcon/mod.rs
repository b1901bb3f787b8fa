//! SlotCon (Wen et al., NeurIPS 2022): pixels grouped onto learnable prototypes, a DINO-style
//! grouping loss between views aligned by RoIAlign, and slot-level contrast.
//!
//! The loss pieces are each checked against the official code's fixtures; `method` puts them on
//! the engine with a student/teacher pair of backbones and dense projectors.

pub mod config;
pub mod contrast;
pub mod distill;
pub mod forward;
pub mod grouping;
pub mod invaug;
pub mod method;
pub mod model;
pub mod official;
pub mod predictor;

pub use config::{DenseProjectorConfig, SlotConConfig};
pub use contrast::{slot_contrast, SlotContrast};
pub use distill::{
    distill_to, pixel_rows, self_distill, teacher_target, update_center, TeacherCentering,
};
pub use forward::{slotcon_loss, teacher_momentum, SlotConLossParams, SlotConOutput};
pub use grouping::{semantic_grouping, Grouping};
pub use invaug::{group_loss, invaug, GroupLoss, GroupLossParams, ViewPair};
pub use method::SlotCon;
pub use model::{DenseProjector, SlotConBranch, SlotConModel};
pub use predictor::{DinoHead, DinoHeadConfig};
