//! Online kNN monitor: evaluates the backbone on a held-out labelled split during training.

use burn::tensor::Device;
use protoclust_data::source::Source;
use protoclust_data::views::CenterView;
use protoclust_eval::{extract, knn_classify, KnnResult};
use protoclust_nn::backbone::ResNet;
use std::sync::Arc;

/// Labelled train/test splits and the kNN settings.
#[derive(Clone)]
pub struct KnnMonitor {
    /// Memory bank side (labelled).
    pub train: Arc<dyn Source>,
    /// Query side (labelled, held out).
    pub test: Arc<dyn Source>,
    /// Evaluation view.
    pub view: CenterView,
    /// Evaluate every this many epochs (0: never during training).
    pub every_epochs: u64,
    /// (k, T) pairs.
    pub settings: Vec<(usize, f64)>,
    /// Batch size of feature extraction.
    pub batch_size: usize,
}

impl KnnMonitor {
    /// kNN accuracies of `backbone` for every (k, T).
    pub fn evaluate(&self, backbone: &ResNet, device: &Device) -> Result<Vec<KnnResult>, String> {
        let classes = self
            .train
            .num_classes()
            .ok_or("the kNN monitor's train split has no labels")?;
        let features = |source: &Arc<dyn Source>| {
            extract(
                backbone,
                source.clone(),
                &self.view,
                self.batch_size,
                device,
            )
            .map_err(|e| e.to_string())
        };
        let (tr, te) = (features(&self.train)?, features(&self.test)?);
        knn_classify(&tr, &te, &self.settings, classes, device).map_err(|e| e.to_string())
    }
}
