//! DeepCluster-v2 cases: the projection head with `MultiPrototypes` (`ResNet.forward_head`),
//! `init_memory`'s bank and BatchNorm statistics, and `train`'s start-of-epoch
//! `cluster_memory`, one step's loss and gradients and the bank update.

use crate::fixture::{compare_abs, compare_exact, compare_float, host, Compared, Fixture};
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use protoclust_methods::deepclusterv2::{
    cluster_bank, dataset_targets, deepclusterv2_loss, MemoryBank, MemoryInit,
};
use protoclust_nn::collective::World;
use protoclust_nn::heads::{Mlp, MlpConfig, MultiPrototypes, Prototypes};
use protoclust_nn::init::Init;
use protoclust_nn::ops::{l2_normalize, rows};
use protoclust_nn::running::SyncRunningStats;

/// The bank slots of the fixture (2 × S × D) as a `MemoryBank`.
fn bank_of(f: &Fixture) -> Result<MemoryBank, String> {
    let b = f.tensor("inputs", "bank")?;
    let (slots, size, dim) = (b.shape[0], b.shape[1], b.shape[2]);
    let index = f.tensor("inputs", "bank_index")?;
    Ok(MemoryBank {
        index: index.data.iter().map(|&v| v as i64).collect(),
        embeddings: (0..slots)
            .map(|j| {
                b.data[j * size * dim..(j + 1) * size * dim]
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect(),
        dim,
    })
}

pub fn step_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let ks = f.param_usizes("nmb_prototypes")?;
    let iters = f.param_usize("nmb_kmeans_iters")?;
    let n = f.param_usize("dataset_size")?;
    let bs = f.param_usize("batch_size")?;
    let t = f.param_f64("temperature")?;
    // The fixture's loader has one batch, so the step's iteration is its epoch.
    let frozen = f.param_usize("freeze_prototypes_niters")? > f.param_usize("epoch")?;
    let init_rows: Vec<Vec<usize>> = f.json["params"]["init_rows"]
        .as_array()
        .ok_or("params.init_rows missing")?
        .iter()
        .map(|r| {
            r.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64().map(|v| v as usize))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let mut bank = bank_of(f)?;
    let slots = bank.embeddings.len();
    let mut res = Vec::new();
    let mut prototypes = Vec::new();
    let mut targets = Vec::new();
    let reference_targets = f.tensor("outputs", "assignments")?;
    for (h, &k) in ks.iter().enumerate() {
        let slot = bank.slot_tensor(h % slots, device);
        let slot_rows = bank.embeddings[h % slots].clone();
        let idx = &init_rows[h];
        let init = Tensor::cat(
            idx.iter().map(|&i| rows(slot.clone(), i..i + 1)).collect(),
            0,
        );
        let c = cluster_bank(&slot, &slot_rows, init, iters, &World::Single, true);
        res.push(compare_float(
            &format!("centroids{h}"),
            host(&Tensor::stack::<3>(c.trace.clone(), 0)),
            &f.tensor("outputs", &format!("centroids{h}"))?,
        )?);
        res.push(compare_float(
            &format!("prototypes{h}"),
            host(&c.centroids),
            &f.tensor("outputs", &format!("prototypes{h}"))?,
        )?);
        let tg = dataset_targets(n, &bank.index, &c.assignments, &World::Single);
        let reference = crate::fixture::Stored {
            shape: vec![n],
            data: reference_targets.data[h * n..(h + 1) * n].to_vec(),
        };
        res.push(compare_exact(&format!("assignments[{h}]"), &tg, &reference));
        assert_eq!(c.centroids.dims(), [k, bank.dim]);
        prototypes.push(c.centroids);
        targets.push(tg);
    }
    // The step: scores of the fixture's embeddings against the new prototypes.
    let z: Tensor<2> = f.input::<2>("z", &ad)?.require_grad();
    let batch = f.indices("inputs", "batch_index")?;
    let heads = MultiPrototypes {
        heads: prototypes
            .iter()
            .map(|p| Prototypes {
                weight: Param::from_tensor(Tensor::from_data(p.to_data(), &ad).require_grad()),
                bias: None,
            })
            .collect(),
    };
    let scores = heads.forward(z.clone());
    let step_targets: Vec<Vec<i64>> = targets
        .iter()
        .map(|tg| batch.iter().map(|&i| tg[i]).collect())
        .collect();
    let loss = deepclusterv2_loss(&scores, &step_targets, t);
    let reference_loss = f.tensor("outputs", "loss")?;
    let grads = loss.backward();
    if reference_loss.data[0].is_nan() {
        // Every target ignored: the official loss is NaN with zero gradients; ours is 0.
        res.push(compare_abs("loss (all ignored: 0)", host(&loss), 0.0));
    } else {
        res.push(compare_float("loss", host(&loss), &reference_loss)?);
    }
    res.push(compare_float(
        "grad.z",
        host(&z.grad(&grads).ok_or("no gradient for z")?),
        &f.tensor("grads", "z")?,
    )?);
    if !frozen {
        for (h, p) in heads.heads.iter().enumerate() {
            let g = p.weight.val().grad(&grads).ok_or("no prototype gradient")?;
            res.push(compare_float(
                &format!("grad.prototypes{h}"),
                host(&g),
                &f.tensor("grads", &format!("prototypes{h}"))?,
            )?);
        }
    }
    // The bank update: crops 0 and 1 of this step's (pre-step) embeddings at rows 0..bs.
    let zh = host(&z).1;
    let dim = bank.dim;
    let crop = |c: usize| -> Vec<f32> {
        zh[c * bs * dim..(c + 1) * bs * dim]
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    bank.write(0, &batch, &[crop(0), crop(1)]);
    let flat: Vec<f64> = bank.embeddings.concat().iter().map(|&v| v as f64).collect();
    res.push(compare_float(
        "bank_after",
        (vec![slots, bank.len(), dim], flat),
        &f.tensor("outputs", "bank_after")?,
    )?);
    res.push(compare_exact(
        "bank_index_after",
        &bank.index,
        &f.tensor("outputs", "bank_index_after")?,
    ));
    Ok(res)
}

/// The official projection head (Linear 0, BatchNorm 1, Linear 3) with the fixture's weights.
fn projection_head(
    f: &Fixture,
    feat: usize,
    hidden: usize,
    d: usize,
    ad: &Device,
) -> Result<Mlp, String> {
    let mut mlp = MlpConfig {
        hidden: vec![hidden],
        out_dim: d,
        batch_norm: true,
    }
    .init(feat, &mut Init::new(0, ad));
    mlp.linears[0].weight = f.linear_weight("0.weight", ad)?;
    mlp.linears[0].bias = Some(f.vector_param("0.bias", ad)?);
    mlp.linears[1].weight = f.linear_weight("3.weight", ad)?;
    mlp.linears[1].bias = Some(f.vector_param("3.bias", ad)?);
    mlp.norms[0].gamma = f.vector_param("1.weight", ad)?;
    mlp.norms[0].beta = f.vector_param("1.bias", ad)?;
    Ok(mlp)
}

/// `init_memory` over fixed crops: the bank, its index and the projection head's BatchNorm
/// running statistics after the pass (the backbone stands replaced by the given features).
pub fn init_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let (batches, bs, crops) = (
        f.param_usize("batches")?,
        f.param_usize("bs")?,
        f.param_usize("crops")?,
    );
    let (feat, hidden, d) = (
        f.param_usize("f")?,
        f.param_usize("hidden")?,
        f.param_usize("d")?,
    );
    let crops_for_assign = f.param_usizes("crops_for_assign")?;
    let mlp = projection_head(f, feat, hidden, d, &ad)?;
    let features = f.tensor("inputs", "features")?;
    let order = f.indices("inputs", "batch_index")?;
    let mut init = MemoryInit::new(&crops_for_assign, batches * bs, d);
    for b in 0..batches {
        init.add_batch(&order[b * bs..(b + 1) * bs], |c| {
            let at = (b * crops + c) * bs * feat;
            let x: Vec<f32> = features.data[at..at + bs * feat]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [bs, feat]), &ad);
            host_f32(&l2_normalize(mlp.forward(x), 1).detach())
        });
    }
    let bank = init.finish();
    let flat: Vec<f64> = bank.embeddings.concat().iter().map(|&v| v as f64).collect();
    let slots = crops_for_assign.len();
    let mut res = vec![
        compare_float(
            "memory_embeddings",
            (vec![slots, bank.len(), d], flat),
            &f.tensor("outputs", "memory_embeddings")?,
        )?,
        compare_exact(
            "memory_index",
            &bank.index,
            &f.tensor("outputs", "memory_index")?,
        ),
    ];
    let bn = &mlp.norms[0];
    bn.sync_running_stats();
    for (name, t) in [
        ("running_mean", bn.running_mean.value()),
        ("running_var", bn.running_var.value()),
    ] {
        res.push(compare_float(name, host(&t), &f.tensor("outputs", name)?)?);
    }
    Ok(res)
}

/// A tensor's values as f32 on the host.
fn host_f32(t: &Tensor<2>) -> Vec<f32> {
    host(t).1.into_iter().map(|v| v as f32).collect()
}

pub fn head_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let ks = f.param_usizes("ks")?;
    let (feat, hidden, d) = (
        f.param_usize("f")?,
        f.param_usize("hidden")?,
        f.param_usize("d")?,
    );
    let mlp = projection_head(f, feat, hidden, d, &ad)?;
    let heads = MultiPrototypes {
        heads: (0..ks.len())
            .map(|h| {
                Ok(Prototypes {
                    weight: Param::from_tensor(
                        f.input::<2>(&format!("prototypes{h}.weight"), &ad)?
                            .require_grad(),
                    ),
                    bias: None,
                })
            })
            .collect::<Result<_, String>>()?,
    };
    let x: Tensor<2> = f.input::<2>("x", &ad)?.require_grad();
    let z = l2_normalize(mlp.forward(x.clone()), 1);
    let scores = heads.forward(z.clone());
    let mut res = vec![compare_float("z", host(&z), &f.tensor("outputs", "z")?)?];
    let mut loss = z.clone().powf_scalar(3.0).sum();
    for (h, s) in scores.iter().enumerate() {
        res.push(compare_float(
            &format!("scores{h}"),
            host(s),
            &f.tensor("outputs", &format!("scores{h}"))?,
        )?);
        loss = loss + s.clone().powf_scalar(2.0).sum() * (h + 1) as f64;
    }
    res.push(compare_float(
        "loss",
        host(&loss),
        &f.tensor("outputs", "loss")?,
    )?);
    let bn = &mlp.norms[0];
    bn.sync_running_stats();
    res.push(compare_float(
        "running_mean",
        host(&bn.running_mean.value()),
        &f.tensor("outputs", "running_mean")?,
    )?);
    res.push(compare_float(
        "running_var",
        host(&bn.running_var.value()),
        &f.tensor("outputs", "running_var")?,
    )?);
    let grads = loss.backward();
    let g = |t: &Tensor<2>| t.grad(&grads);
    res.push(compare_float(
        "grad.x",
        host(&g(&x).ok_or("no gradient for x")?),
        &f.tensor("grads", "x")?,
    )?);
    for (name, w) in [
        ("0.weight", &mlp.linears[0].weight),
        ("3.weight", &mlp.linears[1].weight),
    ] {
        let gw = w.val().grad(&grads).ok_or("no weight gradient")?;
        res.push(compare_float(
            &format!("grad.{name}"),
            host(&gw.transpose()),
            &f.tensor("grads", name)?,
        )?);
    }
    let vectors = [
        ("1.weight", &mlp.norms[0].gamma),
        ("1.bias", &mlp.norms[0].beta),
    ];
    for (name, v) in vectors {
        let gv = v.val().grad(&grads).ok_or("no BN gradient")?;
        res.push(compare_float(
            &format!("grad.{name}"),
            host(&gv),
            &f.tensor("grads", name)?,
        )?);
    }
    let b0 = mlp.linears[0]
        .bias
        .as_ref()
        .and_then(|b| b.val().grad(&grads));
    // Analytically zero before a training-mode BatchNorm: absolute 1e-6 (fixtures README).
    res.push(compare_abs(
        "grad.0.bias",
        host(&b0.ok_or("no bias gradient")?),
        1e-6,
    ));
    let b3 = mlp.linears[1]
        .bias
        .as_ref()
        .and_then(|b| b.val().grad(&grads));
    res.push(compare_float(
        "grad.3.bias",
        host(&b3.ok_or("no bias gradient")?),
        &f.tensor("grads", "3.bias")?,
    )?);
    for (h, p) in heads.heads.iter().enumerate() {
        let gp = p.weight.val().grad(&grads).ok_or("no prototype gradient")?;
        res.push(compare_float(
            &format!("grad.prototypes{h}.weight"),
            host(&gp),
            &f.tensor("grads", &format!("prototypes{h}.weight"))?,
        )?);
    }
    Ok(res)
}
