//! SlotCon as a [`Method`]: teacher EMA before the forward pass, both branches on both views,
//! grouping loss with the centre, slot contrast.

use super::config::SlotConConfig;
use super::forward::{slotcon_loss, teacher_momentum, SlotConLossParams};
use super::invaug::{GroupLossParams, ViewPair};
use super::model::SlotConModel;
use crate::method::{HeadOutputs, Method, MethodError, StepContext, StepOutput};
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::collective::World;
use protoclust_nn::ema::ema_update;
use protoclust_nn::named::HostTensor;
use protoclust_nn::ops::host::to_indices;
use std::collections::BTreeMap;
use std::sync::Arc;

/// SlotCon with its centre.
pub struct SlotCon {
    config: SlotConConfig,
    epochs: u64,
    center: Option<Tensor<2>>,
    world: World,
}

impl SlotCon {
    /// SlotCon for a run of `epochs` epochs (the teacher momentum's cosine spans the run).
    pub fn new(config: SlotConConfig, epochs: u64) -> Self {
        Self {
            config,
            epochs,
            center: None,
            world: World::Single,
        }
    }

    /// The same method as one rank of `world`: the centre and the slot contrast span the
    /// global batch, as the official `concat_all_gather` and all-reduced centre.
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    fn params(&self) -> SlotConLossParams {
        let c = &self.config;
        SlotConLossParams {
            group: GroupLossParams {
                student_temp: c.student_temp,
                teacher_temp: c.teacher_temp,
                center_momentum: c.center_momentum,
                group_weight: c.group_loss_weight,
                centering: c.teacher_centering,
            },
            grouping_temp: c.teacher_temp,
            tau: c.tau,
        }
    }
}

/// Cosine of every pixel of the teacher's dense projection `dense` with each of its
/// prototypes, N × K × h × w.
fn teacher_dots(model: &SlotConModel, dense: Tensor<4>) -> Tensor<4> {
    super::grouping::semantic_grouping(dense, model.teacher.prototypes.val(), 1.0).dots
}

/// The views' common region per sample, in each view's normalised (flip-mirrored) frame.
pub fn view_pair(batch: &Batch) -> Result<ViewPair, MethodError> {
    let mut pair = ViewPair::default();
    for b in 0..batch.len() {
        let (g0, g1) = (&batch.geometry[0][b], &batch.geometry[1][b]);
        let common = g0.crop.intersect(&g1.crop).ok_or_else(|| {
            MethodError::Data(format!(
                "sample {}: the two views do not overlap ({:?} and {:?})",
                batch.indices[b], g0.crop, g1.crop
            ))
        })?;
        for (v, g) in [g0, g1].into_iter().enumerate() {
            pair.coords[v].push(g.normalized(&common));
            pair.flags[v].push(g.flipped);
        }
    }
    Ok(pair)
}

impl Method for SlotCon {
    type Model = SlotConModel;

    fn name(&self) -> &'static str {
        "slotcon"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<SlotConModel, MethodError> {
        SlotConModel::new(&self.config, seed, device).map_err(|e| MethodError::Config {
            field: "slotcon.backbone".into(),
            reason: e.to_string(),
        })
    }

    /// The teacher's backbone: SlotCon evaluates and transfers the EMA encoder.
    fn backbone(model: &SlotConModel) -> &ResNet {
        &model.teacher.backbone
    }

    /// The teacher's pooled dense projection, and per prototype its strongest pixel cosine in
    /// the image (so a prototype's top images are where it fires most: SlotCon's
    /// prototype-nearest-neighbour view at image level).
    fn head_outputs(model: &SlotConModel, trunk: &ResNetOutput) -> HeadOutputs {
        let dense = model.teacher.projector.forward(trunk.map.clone());
        let [b, d, _, _] = dense.dims();
        let pooled = dense.clone().mean_dim(3).mean_dim(2).reshape([b, d]);
        let dots = teacher_dots(model, dense);
        let [_, k, h, w] = dots.dims();
        let scores = dots
            .clone()
            .reshape([b, k, h * w])
            .max_dim(2)
            .reshape([b, k]);
        HeadOutputs {
            embedding: Some(protoclust_nn::ops::l2_normalize(pooled, 1)),
            scores: Some(scores),
        }
    }

    fn prototypes(model: &SlotConModel) -> Option<Tensor<2>> {
        Some(model.teacher.prototypes.val())
    }

    /// The teacher's pixel-to-prototype cosines.
    fn dense_scores(model: &SlotConModel, trunk: &ResNetOutput) -> Option<Tensor<4>> {
        let dense = model.teacher.projector.forward(trunk.map.clone());
        Some(teacher_dots(model, dense))
    }

    /// The running centre of the teacher's scores (the distillation target subtracts it).
    fn dense_center(&self) -> Option<Tensor<1>> {
        let k = self.config.prototypes;
        self.center.as_ref().map(|c| c.clone().reshape([k]))
    }

    fn num_clusters(&self) -> Option<usize> {
        Some(self.config.prototypes)
    }

    fn before_forward(&mut self, mut model: SlotConModel, ctx: &StepContext) -> SlotConModel {
        // The official order: the teacher's momentum step comes before its forward pass.
        let total = self.epochs * ctx.iters_per_epoch as u64;
        let m = teacher_momentum(self.config.teacher_momentum, ctx.iteration, total);
        model.teacher = ema_update(model.teacher, &model.student, m);
        model
    }

    fn forward(
        &mut self,
        model: &SlotConModel,
        views: &[Tensor<4>],
        batch: &Batch,
        ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let pair = view_pair(batch)?;
        let x = [
            model.student.project(views[0].clone()),
            model.student.project(views[1].clone()),
        ];
        let y = [
            model.teacher.project(views[0].clone().detach()).detach(),
            model.teacher.project(views[1].clone().detach()).detach(),
        ];
        // The official centre starts at zero.
        let center = self
            .center
            .clone()
            .unwrap_or_else(|| Tensor::zeros([1, self.config.prototypes], &ctx.device));
        let out = slotcon_loss(
            x,
            y,
            model.student.prototypes.val(),
            model.teacher.prototypes.val(),
            center,
            &pair,
            &model.predictor,
            &self.params(),
            &self.world,
        );
        self.center = Some(out.center_after.detach());
        // The four loss terms in one read.
        let terms = protoclust_nn::ops::host::scalars(
            [out.group_terms.clone(), out.ctr_terms.clone()].concat(),
        );
        let metrics = vec![
            ("loss_group".into(), (terms[0] + terms[1]) as f64),
            ("loss_ctr".into(), (terms[2] + terms[3]) as f64),
        ];
        // Prototype usage: the teacher's per-pixel argmax on view 1.
        let assignments = to_indices(out.teacher[0].dots.clone().argmax(1));
        Ok(StepOutput {
            loss: out.loss,
            metrics,
            assignments,
            watch: vec![(
                "score_q1".into(),
                super::distill::pixel_rows(out.student[0].dots.clone()).detach(),
            )],
        })
    }

    fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        if let Some(c) = &self.center {
            s.insert("slotcon.center".into(), HostTensor::from_tensor(c));
        }
        s
    }

    fn load_state(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
        device: &Device,
    ) -> Result<(), MethodError> {
        if let Some(c) = state.get("slotcon.center") {
            if c.shape != [1, self.config.prototypes] {
                return Err(MethodError::State(format!(
                    "slotcon.center has shape {:?}, the configuration needs [1, {}]",
                    c.shape, self.config.prototypes
                )));
            }
            self.center = Some(c.to_tensor::<2>(device));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slotcon::invaug;
    use protoclust_data::loader::Batch;
    use protoclust_data::transform::{CropBox, Geometry};

    fn geometry(x: f32, y: f32, w: f32, h: f32, flipped: bool) -> Geometry {
        Geometry {
            crop: CropBox { x, y, w, h },
            source_width: 100,
            source_height: 100,
            flipped,
        }
    }

    fn batch(g0: Vec<Geometry>, g1: Vec<Geometry>) -> Batch {
        let n = g0.len();
        Batch {
            views: vec![],
            geometry: vec![g0, g1],
            indices: (0..n).collect(),
            labels: vec![None; n],
            skipped: vec![],
        }
    }

    #[test]
    fn coords_are_the_intersection_in_each_view_and_mirror_when_flipped() {
        let b = batch(
            vec![geometry(0.0, 0.0, 50.0, 50.0, false)],
            vec![geometry(25.0, 25.0, 50.0, 50.0, true)],
        );
        let p = view_pair(&b).unwrap();
        assert_eq!(p.coords[0][0], [0.5, 0.5, 1.0, 1.0]);
        // In view 2 the common box is its top-left quarter, mirrored by the flip.
        assert_eq!(p.coords[1][0], [0.5, 0.0, 1.0, 0.5]);
        assert_eq!(p.flags[1], vec![true]);
    }

    #[test]
    fn views_without_overlap_are_a_clear_error_naming_the_sample() {
        let b = batch(
            vec![geometry(0.0, 0.0, 10.0, 10.0, false)],
            vec![geometry(50.0, 50.0, 10.0, 10.0, false)],
        );
        let e = view_pair(&b).unwrap_err().to_string();
        assert!(
            e.contains("sample 0") && e.contains("do not overlap"),
            "{e}"
        );
    }

    #[test]
    fn an_intersection_smaller_than_one_feature_cell_still_aligns_to_finite_maps() {
        let dev = Device::flex();
        let x: Tensor<4> = Tensor::random(
            [1, 3, 4, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        );
        // 1 % of the side: far less than one of the 4 x 4 cells.
        let a = invaug(x, &[[0.50, 0.50, 0.51, 0.51]], &[true]);
        let v = protoclust_nn::ops::host::to_f32(a);
        assert_eq!(v.len(), 48);
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn crops_below_the_map_stride_and_too_many_prototypes_are_config_errors() {
        let mut c = SlotConConfig::default();
        c.views.size = 32; // a 1 x 1 map with the ImageNet stem (stride 32)
        let e = c.validate(8).unwrap_err().to_string();
        assert!(e.contains("slotcon.views.size"), "{e}");
        let mut c = SlotConConfig::default();
        c.views.size = 64; // a 2 x 2 map: 8 images x 4 = 32 pixels per view
        c.prototypes = 33;
        let e = c.validate(8).unwrap_err().to_string();
        assert!(e.contains("slotcon.prototypes") && e.contains("32"), "{e}");
        c.prototypes = 32;
        assert!(c.validate(8).is_ok());
    }
}
