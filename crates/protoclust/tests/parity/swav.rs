//! SwAV cases: `distributed_sinkhorn` and one iteration of `train`'s loss block.

use crate::fixture::{compare_exact, compare_float, host, Compared, Fixture};
use burn::tensor::{Device, Tensor};
use protoclust_methods::swav::{swav_loss, SwavLossParams, SwavQueue};
use protoclust_nn::collective::SingleProcess;
use protoclust_nn::ops::{l2_normalize, sinkhorn, SinkhornMode};

pub fn sinkhorn_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let out: Tensor<2> = f.input("out", device)?;
    let eps = f.param_f64("epsilon")?;
    let iters = f.param_usize("sinkhorn_iterations")?;
    let reference = f.tensor("outputs", "Q")?;
    let mut res = Vec::new();
    for (mode, tag) in [
        (SinkhornMode::Official, "official"),
        (SinkhornMode::Stable, "stable"),
    ] {
        let q = sinkhorn(out.clone(), eps, iters, mode, &SingleProcess);
        res.push(compare_float(&format!("Q[{tag}]"), host(&q), &reference)?);
    }
    Ok(res)
}

pub fn loss_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let mut res = Vec::new();
    for (mode, tag) in [
        (SinkhornMode::Official, "official"),
        (SinkhornMode::Stable, "stable"),
    ] {
        res.extend(loss_case_mode(f, device, mode, tag)?);
    }
    Ok(res)
}

fn loss_case_mode(
    f: &Fixture,
    device: &Device,
    mode: SinkhornMode,
    tag: &str,
) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let nmb = f.param_usizes("nmb_crops")?;
    let params = SwavLossParams {
        total_crops: nmb.iter().sum(),
        crops_for_assign: f.param_usizes("crops_for_assign")?,
        temperature: f.param_f64("temperature")?,
        epsilon: f.param_f64("epsilon")?,
        sinkhorn_iters: f.param_usize("sinkhorn_iterations")?,
        mode,
    };
    let emb: Tensor<2> = f.input::<2>("embeddings", &ad)?.require_grad();
    let raw: Tensor<2> = f.input("prototypes_raw", &ad)?;
    let w = l2_normalize(raw, 1).detach().require_grad();
    let mut queue = match f.tensor("inputs", "queue") {
        Ok(_) => {
            let q: Tensor<3> = f.input("queue", &ad)?;
            let [n, l, d] = q.dims();
            Some(SwavQueue {
                queues: (0..n)
                    .map(|i| protoclust_nn::ops::rows(q.clone(), i..i + 1).reshape([l, d]))
                    .collect(),
                use_queue: false,
            })
        }
        Err(_) => None,
    };
    let scores = emb.clone().matmul(w.clone().transpose());
    let layer = protoclust_nn::heads::Prototypes {
        weight: burn::module::Param::from_tensor(w.clone()),
        bias: None,
    };
    let out = swav_loss(
        scores,
        &emb,
        &layer,
        queue.as_mut(),
        &params,
        &SingleProcess,
    );
    let mut res = vec![
        compare_float(
            &format!("loss[{tag}]"),
            host(&out.loss),
            &f.tensor("outputs", "loss")?,
        )?,
        compare_float(
            &format!("prototypes_normalized[{tag}]"),
            host(&w),
            &f.tensor("outputs", "prototypes_normalized")?,
        )?,
    ];
    for (i, c) in params.crops_for_assign.iter().enumerate() {
        res.push(compare_float(
            &format!("Q_crop{c}[{tag}]"),
            host(&out.codes[i]),
            &f.tensor("outputs", &format!("Q_crop{c}"))?,
        )?);
    }
    if let Some(q) = &queue {
        let stacked = Tensor::stack::<3>(q.queues.clone(), 0);
        res.push(compare_float(
            &format!("queue_after[{tag}]"),
            host(&stacked),
            &f.tensor("outputs", "queue_after")?,
        )?);
        let expected = f.param_bool("queue_used")?;
        res.push(compare_exact(
            &format!("queue_used[{tag}]"),
            &[out.queue_used as i64],
            &crate::fixture::Stored {
                shape: vec![1],
                data: vec![expected as u8 as f64],
            },
        ));
    }
    let grads = out.loss.backward();
    let ge = emb.grad(&grads).ok_or("no gradient for embeddings")?;
    let gw = w.grad(&grads).ok_or("no gradient for prototypes")?;
    res.push(compare_float(
        &format!("grad.embeddings[{tag}]"),
        host(&ge),
        &f.tensor("grads", "embeddings")?,
    )?);
    res.push(compare_float(
        &format!("grad.prototypes[{tag}]"),
        host(&gw),
        &f.tensor("grads", "prototypes")?,
    )?);
    Ok(res)
}
