//! DeepCluster-v2 as a [`Method`]: the memory bank filled before the first epoch, k-means of it
//! at every epoch start (centroids become the prototypes, clusters the next epoch's targets),
//! the cross-entropy step, the bank refreshed with every step's embeddings.

use super::bank::MemoryBank;
use super::config::DeepClusterV2Config;
use super::init::MemoryInit;
use super::kmeans::{cluster_bank, dataset_targets, IGNORE};
use super::loss::deepclusterv2_loss;
use super::model::DeepClusterV2Model;
use crate::method::{EpochContext, HeadOutputs, Method, MethodError, StepContext, StepOutput};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use protoclust_data::loader::Batch;
use protoclust_data::mix_seed;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::init::{materialize, Init};
use protoclust_nn::named::HostTensor;
use protoclust_nn::ops::host;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// DeepCluster-v2 with its memory bank and this epoch's targets.
pub struct DeepClusterV2 {
    config: DeepClusterV2Config,
    batch_size: usize,
    bank: Option<MemoryBank>,
    /// Per head, every data-set image's cluster ([`IGNORE`] where it is in no bank).
    targets: Option<Vec<Vec<i64>>>,
    /// Bank row of the next step's first image.
    next_row: usize,
    /// This step's data-set indices and bank rows (per slot), written after the update.
    pending: Option<(Vec<usize>, Vec<Vec<f32>>)>,
    /// Per head, the data-set images whose bank rows start the first clustering's k-means.
    first_centroids: Option<Vec<Vec<usize>>>,
    world: World,
}

impl DeepClusterV2 {
    /// DeepCluster-v2 for global batches of `batch_size` samples.
    pub fn new(config: DeepClusterV2Config, batch_size: usize) -> Self {
        Self {
            config,
            batch_size,
            bank: None,
            targets: None,
            next_row: 0,
            pending: None,
            first_centroids: None,
            world: World::Single,
        }
    }

    /// The same method whose first clustering starts head h's k-means from the bank rows of
    /// the data-set images `per_head[h]` (one per cluster) instead of its seeded draw: another
    /// run's clustering reproduced (the official `torch.randperm` rows). Later epochs draw.
    pub fn with_first_centroids(mut self, per_head: Vec<Vec<usize>>) -> Self {
        self.first_centroids = Some(per_head);
        self
    }

    /// The same method as one rank of `world`: each rank keeps a bank of its own images,
    /// k-means sums and counts are summed over the ranks, the initial centroids are rank 0's.
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DeepClusterV2Config {
        &self.config
    }

    /// The memory bank, once filled.
    pub fn bank(&self) -> Option<&MemoryBank> {
        self.bank.as_ref()
    }

    /// Images of one global batch that this rank loads.
    fn local_batch(&self) -> usize {
        (self.batch_size / self.world.world_size().max(1)).max(1)
    }

    /// Rows of this rank's bank: its images of one epoch (full batches only).
    pub fn bank_rows(&self, dataset_len: usize) -> usize {
        dataset_len / self.batch_size.max(1) * self.local_batch()
    }

    /// Where row `j` of rank `r`'s bank sits in one process's bank: rank r holds its slice of
    /// every global batch, so checkpoints (and the first bank) read the same for any number
    /// of ranks.
    fn global_row(&self, r: usize, j: usize) -> usize {
        let b = self.local_batch();
        j / b * self.batch_size.max(1) + r * b + j % b
    }

    /// `init_memory`: one pass over the first epoch's training batches (this rank's share, in
    /// its order, augmented crops of their own draw) with the model in training mode
    /// (BatchNorm on the global batch's statistics, its running statistics moving), each crop of
    /// `crops_for_assign` through the network on its own.
    fn init_bank(
        &self,
        model: &DeepClusterV2Model,
        ctx: &EpochContext<'_>,
    ) -> Result<MemoryBank, MethodError> {
        let size = self.bank_rows(ctx.data.len());
        let dim = self.config.projector.out_dim;
        let mut init = MemoryInit::new(&self.config.crops_for_assign, size, dim);
        // Parameters untracked: no autodiff graph is kept across the pass. The running
        // statistics are shared with `model`, so they move there; the parameters are
        // initialised first, or the copy's `no_grad` would freeze the model's own.
        materialize(model);
        let net = model.clone().no_grad();
        ctx.batches.run(&mut |batch, views| {
            init.add_batch(&batch.indices, |c| {
                let pooled = net.backbone.forward(views[c].clone()).pooled;
                host::to_f32(net.embed_pooled(pooled).detach())
            });
            Ok(())
        })?;
        Ok(init.finish())
    }

    /// `cluster_memory`: every head's k-means of its bank slot (from the images `given` per
    /// head, else a seeded draw); returns the new prototypes and every image's target per head.
    fn cluster(
        &self,
        bank: &MemoryBank,
        dataset_len: usize,
        ctx: &EpochContext<'_>,
        given: Option<&[Vec<usize>]>,
    ) -> Result<(Vec<Tensor<2>>, Vec<Vec<i64>>), MethodError> {
        if let Some(g) = given {
            if g.len() != self.config.prototypes.len() {
                return Err(MethodError::Config {
                    field: "deepclusterv2 initial centroids".into(),
                    reason: format!(
                        "{} lists of images given for {} heads",
                        g.len(),
                        self.config.prototypes.len()
                    ),
                });
            }
        }
        let plain = ctx.device.clone().without_autodiff();
        let slots = bank.embeddings.len();
        let uploaded: Vec<Tensor<2>> = (0..slots).map(|j| bank.slot_tensor(j, &plain)).collect();
        let mut prototypes = Vec::new();
        let mut targets = Vec::new();
        for (h, &k) in self.config.prototypes.iter().enumerate() {
            let j = h % slots;
            let draw = match given {
                Some(g) => Draw::Given(&g[h]),
                None => Draw::Seeded(mix_seed(&[ctx.seed, ctx.epoch, h as u64, 0xdc2])),
            };
            let init = self.initial_centroids(bank, j, k, draw)?;
            let init = Tensor::from_data(TensorData::new(init, [k, bank.dim]), &plain);
            let c = cluster_bank(
                &uploaded[j],
                &bank.embeddings[j],
                init,
                self.config.kmeans_iterations,
                &self.world,
                false,
            );
            targets.push(dataset_targets(
                dataset_len,
                &bank.index,
                &c.assignments,
                &self.world,
            ));
            prototypes.push(c.centroids);
        }
        Ok((prototypes, targets))
    }

    /// K distinct bank images (drawn among every rank's bank by data-set index, so the draw is
    /// the same for any number of ranks, or given), their slot-`j` rows as K × D: each rank
    /// gives the rows it holds, summed over the ranks.
    fn initial_centroids(
        &self,
        bank: &MemoryBank,
        j: usize,
        k: usize,
        draw: Draw<'_>,
    ) -> Result<Vec<f32>, MethodError> {
        let mine: Vec<f32> = bank.index.iter().map(|&i| i as f32).collect();
        let mut all: Vec<i64> = self
            .world
            .all_gather_host(&mine)
            .iter()
            .map(|&v| v as i64)
            .collect();
        all.sort_unstable();
        all.dedup();
        if k > all.len() {
            return Err(MethodError::Config {
                field: "deepclusterv2.prototypes".into(),
                reason: format!(
                    "{k} clusters but the memory bank holds {} images: use at most {}",
                    all.len(),
                    all.len()
                ),
            });
        }
        let chosen: Vec<i64> = match draw {
            Draw::Seeded(seed) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                sample(&mut rng, all.len(), k)
                    .into_iter()
                    .map(|p| all[p])
                    .collect()
            }
            Draw::Given(images) => {
                let chosen: Vec<i64> = images.iter().map(|&i| i as i64).collect();
                if let Some(i) = chosen.iter().find(|i| all.binary_search(i).is_err()) {
                    return Err(MethodError::Config {
                        field: "deepclusterv2 initial centroids".into(),
                        reason: format!("image {i} is in no memory bank"),
                    });
                }
                if chosen.len() != k {
                    return Err(MethodError::Config {
                        field: "deepclusterv2 initial centroids".into(),
                        reason: format!("{} images given for {k} clusters", chosen.len()),
                    });
                }
                chosen
            }
        };
        let dim = bank.dim;
        let row_of: std::collections::HashMap<i64, usize> = bank
            .index
            .iter()
            .enumerate()
            .rev()
            .map(|(r, &i)| (i, r))
            .collect();
        // Rows, then how many ranks gave each (an image kept twice is averaged).
        let mut acc = vec![0f64; k * dim + k];
        for (c, i) in chosen.iter().enumerate() {
            if let Some(&r) = row_of.get(i) {
                let row = &bank.embeddings[j][r * dim..(r + 1) * dim];
                acc[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(a, &v)| *a = v as f64);
                acc[k * dim + c] = 1.0;
            }
        }
        self.world.sum_host_f64(&mut acc);
        Ok((0..k * dim)
            .map(|x| (acc[x] / acc[k * dim + x / dim].max(1.0)) as f32)
            .collect())
    }
}

/// Where a head's initial centroids come from.
#[derive(Clone, Copy)]
enum Draw<'a> {
    /// K distinct bank images drawn with this seed.
    Seeded(u64),
    /// These data-set images.
    Given(&'a [usize]),
}

/// A host tensor of one row.
fn scalar_row(v: Vec<f32>) -> HostTensor {
    HostTensor {
        shape: vec![v.len()],
        data: v,
    }
}

impl Method for DeepClusterV2 {
    type Model = DeepClusterV2Model;

    fn name(&self) -> &'static str {
        "deepclusterv2"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<DeepClusterV2Model, MethodError> {
        DeepClusterV2Model::new(&self.config, &mut Init::new(seed, device)).map_err(|e| {
            MethodError::Config {
                field: "deepclusterv2.backbone".into(),
                reason: e.to_string(),
            }
        })
    }

    fn backbone(model: &DeepClusterV2Model) -> &ResNet {
        &model.backbone
    }

    /// Head 0's prototypes (its k-means centroids).
    fn prototypes(model: &DeepClusterV2Model) -> Option<Tensor<2>> {
        Some(model.prototypes.heads[0].weight.val())
    }

    /// The normalised embedding and head 0's scores.
    fn head_outputs(model: &DeepClusterV2Model, trunk: &ResNetOutput) -> HeadOutputs {
        let embedding = model.embed_pooled(trunk.pooled.clone());
        HeadOutputs {
            scores: Some(model.prototypes.heads[0].forward(embedding.clone())),
            embedding: Some(embedding),
        }
    }

    fn num_clusters(&self) -> Option<usize> {
        self.config.prototypes.first().copied()
    }

    fn on_epoch_start(
        &mut self,
        mut model: DeepClusterV2Model,
        ctx: &EpochContext<'_>,
    ) -> Result<DeepClusterV2Model, MethodError> {
        if self.bank.is_none() {
            self.bank = Some(self.init_bank(&model, ctx)?);
        }
        let given = self.first_centroids.take();
        let bank = self.bank.as_ref().expect("filled above");
        let (prototypes, targets) = self.cluster(bank, ctx.data.len(), ctx, given.as_deref())?;
        let heads = std::mem::take(&mut model.prototypes.heads);
        model.prototypes.heads = heads
            .into_iter()
            .zip(prototypes)
            .map(|(head, p)| head.replaced(p))
            .collect();
        self.targets = Some(targets);
        self.next_row = 0;
        Ok(model)
    }

    fn forward(
        &mut self,
        model: &DeepClusterV2Model,
        views: &[Tensor<4>],
        batch: &Batch,
        _ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let targets = self.targets.as_ref().ok_or_else(|| {
            MethodError::State("DeepCluster-v2 has no clusters (no epoch start ran)".into())
        })?;
        let out = model.forward(views);
        let step: Vec<Vec<i64>> = targets
            .iter()
            .map(|t| batch.indices.iter().map(|&i| t[i]).collect())
            .collect();
        let loss = deepclusterv2_loss(&out.scores, &step, self.config.temperature);
        let bs = batch.len();
        let dim = self.config.projector.out_dim;
        let z = host::to_f32(out.embeddings.clone().detach());
        let rows = self
            .config
            .crops_for_assign
            .iter()
            .map(|&c| z[c * bs * dim..(c + 1) * bs * dim].to_vec())
            .collect();
        self.pending = Some((batch.indices.clone(), rows));
        let ignored = step[0].iter().filter(|&&t| t == IGNORE).count();
        let assignments = step[0]
            .iter()
            .filter(|&&t| t != IGNORE)
            .map(|&t| t as usize)
            .collect();
        Ok(StepOutput {
            loss,
            metrics: vec![("ignored_images".into(), ignored as f64)],
            assignments,
            watch: vec![("scores[head 0]".into(), out.scores[0].clone().detach())],
        })
    }

    fn filter_grads(
        &self,
        grads: &mut GradientsParams,
        model: &DeepClusterV2Model,
        ctx: &StepContext,
    ) {
        if ctx.iteration < self.config.freeze_prototypes_iterations {
            for head in &model.prototypes.heads {
                grads.remove::<2>(head.weight.id);
            }
        }
    }

    /// The step's embeddings (before the update) into the bank, after the optimiser step.
    fn after_step(&mut self, model: DeepClusterV2Model, _ctx: &StepContext) -> DeepClusterV2Model {
        if let (Some(bank), Some((indices, rows))) = (self.bank.as_mut(), self.pending.take()) {
            bank.write(self.next_row, &indices, &rows);
            self.next_row += indices.len();
        }
        model
    }

    /// Every rank's bank laid out as one process's, the targets and the next bank row.
    fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        if let Some(bank) = &self.bank {
            let (ranks, size, dim) = (self.world.world_size(), bank.len(), bank.dim);
            // Every rank's rows, laid out as one process's bank.
            let canonical = |values: &[f32], width: usize| -> Vec<f32> {
                let all = self.world.all_gather_host(values);
                let mut out = vec![0f32; all.len()];
                for r in 0..ranks {
                    for j in 0..size {
                        let g = self.global_row(r, j);
                        let src = (r * size + j) * width;
                        out[g * width..(g + 1) * width].copy_from_slice(&all[src..src + width]);
                    }
                }
                out
            };
            let index: Vec<f32> = bank.index.iter().map(|&i| i as f32).collect();
            s.insert("bank.index".into(), scalar_row(canonical(&index, 1)));
            for (j, e) in bank.embeddings.iter().enumerate() {
                s.insert(
                    format!("bank.{j}"),
                    HostTensor {
                        shape: vec![size * ranks, dim],
                        data: canonical(e, dim),
                    },
                );
            }
            // Steps written this epoch (rank-invariant; each wrote one local batch).
            s.insert(
                "bank.steps".into(),
                scalar_row(vec![(self.next_row / self.local_batch()) as f32]),
            );
        }
        if let Some(t) = &self.targets {
            let n = t.first().map_or(0, Vec::len);
            s.insert(
                "targets".into(),
                HostTensor {
                    shape: vec![t.len(), n],
                    data: t.iter().flatten().map(|&v| v as f32).collect(),
                },
            );
        }
        s
    }

    fn load_state(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
        _device: &Device,
    ) -> Result<(), MethodError> {
        let Some(index) = state.get("bank.index") else {
            self.bank = None;
            self.targets = None;
            return Ok(());
        };
        let ranks = self.world.world_size();
        let total = index.data.len();
        let size = total / ranks.max(1);
        if size * ranks != total || (size > 0 && self.global_row(ranks - 1, size - 1) >= total) {
            return Err(MethodError::State(format!(
                "the DeepCluster-v2 memory bank has {total} rows, which {ranks} process(es) with \
                 global batch {} cannot split; resume with the batch size it was saved with",
                self.batch_size
            )));
        }
        let r = self.world.rank();
        let dim = self.config.projector.out_dim;
        let rows: Vec<usize> = (0..size).map(|j| self.global_row(r, j)).collect();
        let mut bank = MemoryBank::zeros(self.config.crops_for_assign.len(), size, dim);
        bank.index = rows.iter().map(|&g| index.data[g] as i64).collect();
        for (j, slot) in bank.embeddings.iter_mut().enumerate() {
            let t = state
                .get(&format!("bank.{j}"))
                .ok_or_else(|| MethodError::State(format!("bank.{j} is missing")))?;
            if t.shape != [total, dim] {
                return Err(MethodError::State(format!(
                    "bank.{j} has shape {:?}, the configuration needs {:?}",
                    t.shape,
                    [total, dim]
                )));
            }
            *slot = rows
                .iter()
                .flat_map(|&g| t.data[g * dim..(g + 1) * dim].iter().copied())
                .collect();
        }
        self.next_row =
            state.get("bank.steps").map_or(0, |t| t.data[0] as usize) * self.local_batch();
        self.bank = Some(bank);
        self.targets = state.get("targets").map(|t| {
            let n = t.shape.get(1).copied().unwrap_or(0);
            t.data
                .chunks_exact(n.max(1))
                .map(|r| r.iter().map(|&v| v as i64).collect())
                .collect()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{BatchPass, BatchVisitor, FeaturePass};
    use burn::tensor::Distribution;
    use protoclust_nn::backbone::ResNetConfig;
    use protoclust_nn::running::SyncRunningStats;

    /// Two batches of four 16-px images, two crops each.
    struct TwoBatches(Device);

    impl BatchPass for TwoBatches {
        fn run(&self, f: &mut BatchVisitor<'_>) -> Result<(), MethodError> {
            for indices in [vec![5, 0, 7, 2], vec![1, 6, 3, 4]] {
                let views: Vec<Tensor<4>> = (0..2)
                    .map(|_| {
                        Tensor::random([4, 3, 16, 16], Distribution::Normal(0.0, 1.0), &self.0)
                    })
                    .collect();
                let batch = Batch {
                    views: vec![],
                    geometry: vec![],
                    labels: vec![None; indices.len()],
                    indices,
                    skipped: vec![],
                };
                f(&batch, &views)?;
            }
            Ok(())
        }
    }

    /// A data set of eight images that the bank's filling must not read.
    struct NoWholePass;

    impl FeaturePass for NoWholePass {
        fn len(&self) -> usize {
            8
        }
        fn run(&self, _f: &dyn Fn(Tensor<4>) -> Tensor<2>) -> Result<Tensor<2>, MethodError> {
            Err(MethodError::Data(
                "the whole-set pass is not DeepCluster-v2's".into(),
            ))
        }
    }

    /// Parameters that do not require a gradient.
    struct Frozen(Vec<String>);
    impl burn::module::ModuleVisitor for Frozen {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            if !p.val().is_require_grad() {
                self.0.push(format!("{:?}", p.id));
            }
        }
    }

    /// A width-4 ResNet-18 with a 16-8 projector and heads of `prototypes` clusters.
    fn tiny(prototypes: Vec<usize>) -> DeepClusterV2Config {
        let mut cfg = DeepClusterV2Config {
            backbone: ResNetConfig {
                depth: 18,
                width: 4,
                small_stem: true,
                stem_padding: None,
                zero_init_residual: false,
            },
            prototypes,
            ..Default::default()
        };
        cfg.projector.hidden = vec![16];
        cfg.projector.out_dim = 8;
        cfg
    }

    #[test]
    fn the_first_bank_holds_the_epochs_batches_and_moves_the_running_statistics() {
        let cfg = tiny(vec![3, 4]);
        let dev = Device::flex().autodiff();
        let mut method = DeepClusterV2::new(cfg, 4);
        let model = method.init_model(0, &dev).unwrap();
        let ctx = EpochContext {
            epoch: 0,
            seed: 0,
            device: dev.clone(),
            data: &NoWholePass,
            batches: &TwoBatches(dev.clone()),
        };
        // A twin counts the parameters that are untracked by design (visiting initialises
        // lazy parameters, so the model itself is not visited before the pass).
        let mut before = Frozen(Vec::new());
        method.init_model(0, &dev).unwrap().visit(&mut before);
        let model = method.on_epoch_start(model, &ctx).unwrap();
        let bank = method.bank().expect("filled");
        assert_eq!(bank.index, [5, 0, 7, 2, 1, 6, 3, 4]);
        for slot in &bank.embeddings {
            for row in slot.chunks_exact(8) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-4, "a bank row of norm {norm}");
            }
        }
        assert_ne!(bank.embeddings[0], bank.embeddings[1]);
        // Training mode: the pass moved the model's own running statistics (4 updates).
        model.sync_running_stats();
        let mean = host::to_f32(model.projector.norms[0].running_mean.value());
        assert!(mean.iter().any(|&m| m != 0.0), "running mean untouched");
        // The model itself still trains: the pass's untracked copy left every parameter's
        // gradient tracking as it was (lazily initialised ones included).
        let mut after = Frozen(Vec::new());
        model.visit(&mut after);
        assert_eq!(
            after.0.len(),
            before.0.len(),
            "parameters whose tracking the pass changed"
        );
    }

    #[test]
    fn given_first_centroids_seed_the_first_clustering_and_bad_ones_are_refused() {
        let cfg = DeepClusterV2Config {
            kmeans_iterations: 0,
            ..tiny(vec![3])
        };
        let dev = Device::flex().autodiff();
        let ctx = EpochContext {
            epoch: 0,
            seed: 0,
            device: dev.clone(),
            data: &NoWholePass,
            batches: &TwoBatches(dev.clone()),
        };
        let run = |given: Vec<Vec<usize>>| {
            let mut method = DeepClusterV2::new(cfg.clone(), 4).with_first_centroids(given);
            let model = method.init_model(0, &dev).unwrap();
            method
                .on_epoch_start(model, &ctx)
                .map(|m| (host::to_f32(m.prototypes.heads[0].weight.val()), method))
        };
        // No k-means iteration: the prototypes are the given images' slot-0 rows.
        let (protos, method) = run(vec![vec![6, 5, 3]]).unwrap();
        let bank = method.bank().unwrap();
        let row = |i: i64| {
            let r = bank.index.iter().position(|&x| x == i).unwrap();
            bank.embeddings[0][r * 8..(r + 1) * 8].to_vec()
        };
        assert_eq!(protos, [row(6), row(5), row(3)].concat());
        for (given, said) in [
            (vec![vec![6, 5, 9]], "image 9 is in no memory bank"),
            (vec![vec![6, 5]], "2 images given for 3 clusters"),
            (
                vec![vec![6, 5, 3], vec![1, 2, 4]],
                "2 lists of images given for 1 heads",
            ),
        ] {
            let err = run(given).err().unwrap().to_string();
            assert!(err.contains(said), "{err}");
        }
    }
}
