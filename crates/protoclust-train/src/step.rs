//! One training step in three phases — forward, backward, update — shared by the training loop
//! and `protoclust bench`, so the benchmark times exactly the step that trains.

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use protoclust_data::loader::Batch;
use protoclust_methods::{Method, MethodError, StepContext, StepOutput};
use protoclust_nn::collective::grads::average_grads;
use protoclust_nn::collective::World;
use protoclust_nn::ops::host;
use protoclust_nn::optim::loss_scale::{LossScaler, Verdict};
use protoclust_nn::optim::Optimizer;
use protoclust_nn::precision::{with_precision, Precision};

/// What the forward phase gives the rest of the step.
pub struct Forwarded<M: Method> {
    /// The model after the method's before-forward hook.
    pub model: M::Model,
    /// The method's output (loss, metrics, assignments, watched tensors).
    pub out: StepOutput,
    /// This rank's loss, then the sum of each watched tensor, read back in one host read.
    pub sums: Vec<f32>,
}

/// The method's before-forward hook, its forward under `precision`, and the step's one host read.
pub fn forward<M: Method>(
    method: &mut M,
    model: M::Model,
    views: &[Tensor<4>],
    batch: &Batch,
    ctx: &StepContext,
    precision: Precision,
) -> Result<Forwarded<M>, MethodError> {
    let model = method.before_forward(model, ctx);
    let out = with_precision(precision, || method.forward(&model, views, batch, ctx))?;
    let mut sums = vec![out.loss.clone()];
    sums.extend(out.watch.iter().map(|(_, t)| t.clone().sum()));
    let sums = host::scalars(sums);
    Ok(Forwarded { model, out, sums })
}

/// Gradients of `loss` (scaled when a scaler is given), filtered by the method and averaged
/// over the ranks of `world`.
pub fn backward<M: Method>(
    method: &M,
    model: &M::Model,
    loss: Tensor<1>,
    scaler: Option<&LossScaler>,
    ctx: &StepContext,
    world: &World,
) -> GradientsParams {
    let loss = match scaler {
        Some(s) => s.scale_loss(loss),
        None => loss,
    };
    let mut grads = GradientsParams::from_grads(loss.backward(), model);
    method.filter_grads(&mut grads, model, ctx);
    average_grads(&mut grads, model, world);
    grads
}

/// Unscales, takes the optimiser step at `lr` unless a gradient overflowed, then runs the
/// method's after-step hook (EMA teachers, memories); returns the model and the verdict.
pub fn update<M: Method>(
    method: &mut M,
    model: M::Model,
    mut grads: GradientsParams,
    scaler: Option<&mut LossScaler>,
    optimizer: &mut Optimizer,
    lr: f64,
    ctx: &StepContext,
) -> (M::Model, Verdict) {
    // Averaged gradients: every rank reaches the same verdict.
    let verdict = scaler.map_or(Verdict::Step, |s| s.unscale(&mut grads, &model));
    let model = match verdict {
        Verdict::Skip => model,
        Verdict::Step => optimizer.step(model, grads, lr),
    };
    (method.after_step(model, ctx), verdict)
}
