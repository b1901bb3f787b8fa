//! Data-parallel gradient synchronisation: every rank's gradients become their mean over the
//! ranks, in one flattened all-reduce per step (before weight decay, LARS and the update).

use super::Collective;
use crate::ops::host;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

/// Pass 1: every float parameter in visit order, its gradient (or zeros) appended to `flat`,
/// 1 or 0 in `present`.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    flat: Vec<f32>,
    present: Vec<f32>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let len = param.val().dims().iter().product();
        match self.grads.remove::<D>(param.id) {
            Some(g) => {
                self.flat.extend(host::to_f32(g));
                self.present.push(1.0);
            }
            None => {
                self.flat.extend(std::iter::repeat_n(0.0, len));
                self.present.push(0.0);
            }
        }
    }
}

/// Pass 2, in the same visit order: the averaged values back as gradients, for every
/// parameter some rank had one for.
struct Unflatten<'a> {
    grads: &'a mut GradientsParams,
    flat: &'a [f32],
    counts: &'a [f32],
    offset: usize,
    index: usize,
    world: f32,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let dims = param.val().dims();
        let len = dims.iter().product::<usize>();
        let values = &self.flat[self.offset..self.offset + len];
        self.offset += len;
        let count = self.counts[self.index];
        self.index += 1;
        if count == 0.0 {
            return;
        }
        let mean: Vec<f32> = values.iter().map(|v| v / self.world).collect();
        let device = param.val().inner().device();
        self.grads.register::<D>(
            param.id,
            Tensor::from_data(TensorData::new(mean, dims), &device),
        );
    }
}

/// Replaces `grads` by their mean over all ranks of `world` (a parameter without a gradient on
/// some ranks counts as zero there, as PyTorch DDP does). A no-op on one process.
pub fn average_grads<M: Module>(grads: &mut GradientsParams, model: &M, world: &impl Collective) {
    let n = world.world_size();
    if n == 1 {
        return;
    }
    let mut pass = Flatten {
        grads,
        flat: Vec::new(),
        present: Vec::new(),
    };
    model.visit(&mut pass);
    let Flatten {
        grads,
        mut flat,
        present,
    } = pass;
    let params = present.len();
    flat.extend(present);
    world.sum_host(&mut flat);
    let (values, counts) = flat.split_at(flat.len() - params);
    let mut back = Unflatten {
        grads,
        flat: values,
        counts,
        offset: 0,
        index: 0,
        world: n as f32,
    };
    model.visit(&mut back);
}
