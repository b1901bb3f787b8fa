//! ODC cases: the memory pipeline (init → forward → memory update → centroids → small
//! clusters → re-weighting) and the re-weighted cross-entropy.

use crate::fixture::{as_i64, compare_exact, compare_float, host, Compared, Fixture};
use burn::tensor::{Device, Tensor};
use protoclust_methods::odc::OdcMemory;
use protoclust_methods::pseudo::{class_weights, top1_accuracy, weighted_cross_entropy};
use std::collections::BTreeSet;

fn vector(v: &[f32]) -> (Vec<usize>, Vec<f64>) {
    (vec![v.len()], v.iter().map(|&x| x as f64).collect())
}

fn scalar(v: f64) -> (Vec<usize>, Vec<f64>) {
    (vec![], vec![v])
}

pub fn reweight_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let k = f.param_usize("K")?;
    let pow = f.param_f64("reweight_pow")?;
    let bank = f.indices("inputs", "label_bank")?;
    let targets = f.indices("inputs", "targets")?;
    let w = class_weights(&bank, k, pow);
    let logits: Tensor<2> = f.input::<2>("logits", &ad)?.require_grad();
    let loss = weighted_cross_entropy(logits.clone(), &targets, Some(&w));
    let acc = top1_accuracy(logits.clone(), &targets);
    let g = logits
        .grad(&loss.backward())
        .ok_or("no gradient for logits")?;
    Ok(vec![
        compare_float(
            "loss_weight",
            vector(&w),
            &f.tensor("outputs", "loss_weight")?,
        )?,
        compare_float("loss", host(&loss), &f.tensor("outputs", "loss")?)?,
        compare_float("acc", scalar(acc), &f.tensor("outputs", "acc")?)?,
        compare_float("grad.logits", host(&g), &f.tensor("grads", "logits")?)?,
    ])
}

pub fn pipeline_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let k = f.param_usize("K")?;
    let momentum = f.param_f64("momentum")?;
    let min_cluster = f.param_usize("min_cluster")?;
    let labels = f.indices("inputs", "labels")?;
    let batch_ind = f.indices("inputs", "batch_ind")?;
    let mut res = Vec::new();

    // 1. init_memory + set_reweight(init pow).
    let mut mem = OdcMemory::init(f.input("features", device)?, labels.clone(), k);
    let w0 = class_weights(&labels, k, f.param_f64("init_reweight_pow")?);
    res.push(compare_float(
        "init_feature_bank",
        host(&mem.bank),
        &f.tensor("outputs", "init_feature_bank")?,
    )?);
    res.push(compare_float(
        "init_centroids",
        host(&mem.centroids),
        &f.tensor("outputs", "init_centroids")?,
    )?);
    res.push(compare_float(
        "init_loss_weight",
        vector(&w0),
        &f.tensor("outputs", "init_loss_weight")?,
    )?);

    // 2. forward_train: weighted CE on the labels before the update, then the memory update.
    let feat: Tensor<2> = f.input::<2>("batch_feature", &ad)?.require_grad();
    let weight: Tensor<2> = f.input::<2>("fc_cls.weight", &ad)?.require_grad();
    let bias: Tensor<1> = f.input::<1>("fc_cls.bias", &ad)?.require_grad();
    let logits = feat.clone().matmul(weight.clone().transpose()) + bias.clone().unsqueeze_dim(0);
    let targets: Vec<usize> = batch_ind.iter().map(|&i| mem.labels[i]).collect();
    let acc = top1_accuracy(logits.clone(), &targets);
    let loss = weighted_cross_entropy(logits, &targets, Some(&w0));
    let grads = loss.backward();
    res.push(compare_float(
        "loss",
        host(&loss),
        &f.tensor("outputs", "loss")?,
    )?);
    res.push(compare_float(
        "acc",
        scalar(acc),
        &f.tensor("outputs", "acc")?,
    )?);
    for (name, g) in [
        ("feature", feat.grad(&grads).map(|g| host(&g))),
        ("fc_cls.weight", weight.grad(&grads).map(|g| host(&g))),
        ("fc_cls.bias", bias.grad(&grads).map(|g| host(&g))),
    ] {
        let g = g.ok_or(format!("no gradient for {name}"))?;
        res.push(compare_float(
            &format!("grad.{name}"),
            g,
            &f.tensor("grads", name)?,
        )?);
    }
    let change = mem.update_samples(&batch_ind, feat.detach().inner(), momentum);
    res.push(compare_float(
        "change_ratio",
        scalar(change),
        &f.tensor("outputs", "change_ratio")?,
    )?);
    res.push(compare_float(
        "feature_bank_after_update",
        host(&mem.bank),
        &f.tensor("outputs", "feature_bank_after_update")?,
    )?);
    res.push(compare_exact(
        "label_bank_after_update",
        &as_i64(&mem.labels),
        &f.tensor("outputs", "label_bank_after_update")?,
    ));

    // 3. The hook: centroids, small clusters (dissolve, split), re-weight.
    mem.update_centroids(None);
    res.push(compare_float(
        "centroids_after_update",
        host(&mem.centroids),
        &f.tensor("outputs", "centroids_after_update")?,
    )?);
    let report = mem.deal_with_small_clusters(min_cluster, 0);
    res.push(compare_exact(
        "small_clusters",
        &as_i64(&report.small),
        &f.tensor("outputs", "small_clusters")?,
    ));
    res.push(compare_exact(
        "labels_after_reassign",
        &as_i64(&report.labels_after_reassign),
        &f.tensor("outputs", "labels_after_reassign")?,
    ));
    let froms: Vec<usize> = report.splits.iter().map(|s| s.from).collect();
    res.push(compare_exact(
        "split_max_clusters",
        &as_i64(&froms),
        &f.tensor("outputs", "split_max_clusters")?,
    ));
    // A 2-means may name the halves the other way round: accept exactly the planted halves,
    // either way, and swap the reference's ids (labels, centroids, weights) to match.
    let mut final_ref = f.tensor("outputs", "label_bank_final")?;
    let mut cent_ref = f.tensor("outputs", "centroids_final")?;
    let mut w_ref = f.tensor("outputs", "loss_weight_final")?;
    let d = cent_ref.shape[1];
    for (j, s) in report.splits.iter().enumerate() {
        let sub1 = f.indices("outputs", &format!("split{j}_sub1_ind"))?;
        let sub2 = f.indices("outputs", &format!("split{j}_sub2_ind"))?;
        let swapped = if s.kept == sub1 && s.moved == sub2 {
            false
        } else if s.kept == sub2 && s.moved == sub1 {
            true
        } else {
            res.push(Compared {
                name: format!("split{j} halves"),
                max_abs: 1.0,
                bound: 0.0,
            });
            continue;
        };
        res.push(Compared {
            name: format!("split{j} halves"),
            max_abs: 0.0,
            bound: 0.0,
        });
        if swapped {
            let members: BTreeSet<usize> = sub1.iter().chain(&sub2).copied().collect();
            for &i in &members {
                let v = final_ref.data[i] as usize;
                final_ref.data[i] = if v == s.from {
                    s.into as f64
                } else if v == s.into {
                    s.from as f64
                } else {
                    v as f64
                };
            }
            for c in 0..d {
                cent_ref.data.swap(s.from * d + c, s.into * d + c);
            }
            w_ref.data.swap(s.from, s.into);
        }
    }
    res.push(compare_exact(
        "label_bank_final",
        &as_i64(&mem.labels),
        &final_ref,
    ));
    res.push(compare_float(
        "centroids_final",
        host(&mem.centroids),
        &cent_ref,
    )?);
    let w1 = class_weights(&mem.labels, k, f.param_f64("hook_reweight_pow")?);
    res.push(compare_float("loss_weight_final", vector(&w1), &w_ref)?);
    Ok(res)
}
