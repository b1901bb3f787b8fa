//! JigClu cases: montage assembly, the decoupling module with its backward, the loss heads
//! (labels, SupCluLoss, location CE) and the whole forward with a pooling trunk.

use crate::fixture::{as_i64, compare_exact, compare_float, host, Compared, Fixture};
use burn::tensor::{Device, Tensor};
use protoclust_methods::jigclu::{
    decouple, jigsaw_labels, montage, sup_clu_loss, JigCluConfig, JigCluHeads,
};
use protoclust_methods::pseudo::weighted_cross_entropy;
use protoclust_nn::init::Init;
use protoclust_nn::ops::{adaptive_avg_pool, l2_normalize, resize_bilinear};

fn patches(f: &Fixture, device: &Device) -> Result<Vec<Tensor<4>>, String> {
    (0..4)
        .map(|i| f.input::<4>(&format!("images_{i}"), device))
        .collect()
}

pub fn montage_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let permute = f.indices("inputs", "permute")?;
    let out = montage(&patches(f, device)?, &permute, 2);
    Ok(vec![
        compare_float("montage", host(&out), &f.tensor("outputs", "montage")?)?,
        compare_exact(
            "bs_all",
            &[out.dims()[0] as i64],
            &f.tensor("outputs", "bs_all")?,
        ),
    ])
}

pub fn decouple_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let size = f.param_usizes("interp_size")?;
    let pool = f.param_usizes("pool")?;
    let x: Tensor<4> = f.input::<4>("x", &ad)?.require_grad();
    let up = resize_bilinear(x.clone(), size[0], size[1]);
    let pooled_two_step = adaptive_avg_pool(up.clone(), pool[0], pool[1]);
    // The fused module the method uses: one linear map per axis.
    let pooled = decouple(x.clone(), pool[0], size[0]);
    let g = f.input::<4>("upstream_grad", &ad)?;
    let grads = (pooled.clone() * g).sum().backward();
    let gx = x.grad(&grads).ok_or("no gradient for x")?;
    Ok(vec![
        compare_float(
            "upsampled_8x8",
            host(&up),
            &f.tensor("outputs", "upsampled_8x8")?,
        )?,
        compare_float(
            "pooled_2x2 (resize then pool)",
            host(&pooled_two_step),
            &f.tensor("outputs", "pooled_2x2")?,
        )?,
        compare_float(
            "pooled_2x2",
            host(&pooled),
            &f.tensor("outputs", "pooled_2x2")?,
        )?,
        compare_float("grad.x", host(&gx), &f.tensor("grads", "x")?)?,
    ])
}

pub fn loss_heads_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let n = f.param_usize("n")?;
    let t = f.param_f64("T")?;
    let base = f.param_f64("base_temperature")?;
    let permute = f.indices("inputs", "permute")?;
    let raw: Tensor<2> = f.input::<2>("q_clu_raw", &ad)?.require_grad();
    let q_loc: Tensor<2> = f.input::<2>("q_loc", &ad)?.require_grad();
    let (label_clu, label_loc) = jigsaw_labels(&permute, n);
    let loss_clu = sup_clu_loss(l2_normalize(raw.clone(), 1), &label_clu, t, base);
    let loss_loc = weighted_cross_entropy(q_loc.clone(), &label_loc, None);
    let g_clu = loss_clu.backward();
    let g_raw = raw.grad(&g_clu).ok_or("no gradient for q_clu_raw")?;
    let g_loc = loss_loc.backward();
    let g_q_loc = q_loc.grad(&g_loc).ok_or("no gradient for q_loc")?;
    Ok(vec![
        compare_exact(
            "label_clu",
            &as_i64(&label_clu),
            &f.tensor("outputs", "label_clu")?,
        ),
        compare_exact(
            "label_loc",
            &as_i64(&label_loc),
            &f.tensor("outputs", "label_loc")?,
        ),
        compare_float(
            "loss_clu",
            host(&loss_clu),
            &f.tensor("outputs", "loss_clu")?,
        )?,
        compare_float(
            "loss_loc",
            host(&loss_loc),
            &f.tensor("outputs", "loss_loc")?,
        )?,
        compare_float(
            "grad.q_clu_raw",
            host(&g_raw),
            &f.tensor("grads", "q_clu_raw")?,
        )?,
        compare_float("grad.q_loc", host(&g_q_loc), &f.tensor("grads", "q_loc")?)?,
    ])
}

pub fn full_forward_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let n = f.param_usize("n")?;
    let c = f.param_usize("C")?;
    let patch = f.param_usize("patch")?;
    let cfg = JigCluConfig {
        dim: f.param_usize("dim")?,
        temperature: f.param_f64("T")?,
        base_temperature: f.param_f64("base_temperature")?,
        clu_weight: f.param_f64("loss_clu_weight")?,
        loc_weight: f.param_f64("loss_loc_weight")?,
        ..Default::default()
    };
    let permute = f.indices("inputs", "permute")?;
    let images = montage(&patches(f, &ad)?, &permute, 2);
    if images.dims()[0] != n {
        return Err(format!("{} montages for n = {n}", images.dims()[0]));
    }
    // The fixture's trunk: AvgPool2d(2) turns the 2P × 2P montage into a P × P map.
    let map = adaptive_avg_pool(images.clone(), patch, patch);
    let feat = decouple(map, 2, 8).detach().require_grad();
    let mut heads = JigCluHeads::new(c, cfg.dim, 4, &mut Init::new(0, &ad));
    let p = "param.encoder";
    heads.clu.linears[0].weight = f.linear_weight(&format!("{p}.fc_clu.0.weight"), &ad)?;
    heads.clu.linears[0].bias = Some(f.vector_param(&format!("{p}.fc_clu.0.bias"), &ad)?);
    heads.clu.linears[1].weight = f.linear_weight(&format!("{p}.fc_clu.2.weight"), &ad)?;
    heads.clu.linears[1].bias = Some(f.vector_param(&format!("{p}.fc_clu.2.bias"), &ad)?);
    heads.loc.weight = f.linear_weight(&format!("{p}.fc_loc.weight"), &ad)?;
    heads.loc.bias = Some(f.vector_param(&format!("{p}.fc_loc.bias"), &ad)?);
    let out = heads.losses(feat.clone(), &permute, &cfg);
    let grads = out.loss.backward();
    let mut compared = vec![
        compare_float("montage", host(&images), &f.tensor("outputs", "montage")?)?,
        compare_float("feat2x2", host(&feat), &f.tensor("outputs", "feat2x2")?)?,
        compare_float(
            "q_gather",
            host(&out.rows),
            &f.tensor("outputs", "q_gather")?,
        )?,
        compare_float(
            "q_clu_normalized",
            host(&out.q_clu),
            &f.tensor("outputs", "q_clu_normalized")?,
        )?,
        compare_float("q_loc", host(&out.q_loc), &f.tensor("outputs", "q_loc")?)?,
        compare_exact(
            "label_clu",
            &as_i64(&out.label_clu),
            &f.tensor("outputs", "label_clu")?,
        ),
        compare_exact(
            "label_loc",
            &as_i64(&out.label_loc),
            &f.tensor("outputs", "label_loc")?,
        ),
        compare_float(
            "loss_clu",
            host(&out.loss_clu),
            &f.tensor("outputs", "loss_clu")?,
        )?,
        compare_float(
            "loss_loc",
            host(&out.loss_loc),
            &f.tensor("outputs", "loss_loc")?,
        )?,
        compare_float("loss", host(&out.loss), &f.tensor("outputs", "loss")?)?,
    ];
    let g_feat = feat.grad(&grads).ok_or("no gradient for feat2x2")?;
    compared.push(compare_float(
        "grad.feat2x2",
        host(&g_feat),
        &f.tensor("grads", "feat2x2")?,
    )?);
    let params: [(&str, Option<Tensor<2>>, Option<Tensor<1>>); 3] = [
        (
            "fc_clu.0",
            heads.clu.linears[0].weight.val().grad(&grads),
            heads.clu.linears[0]
                .bias
                .as_ref()
                .and_then(|b| b.val().grad(&grads)),
        ),
        (
            "fc_clu.2",
            heads.clu.linears[1].weight.val().grad(&grads),
            heads.clu.linears[1]
                .bias
                .as_ref()
                .and_then(|b| b.val().grad(&grads)),
        ),
        (
            "fc_loc",
            heads.loc.weight.val().grad(&grads),
            heads.loc.bias.as_ref().and_then(|b| b.val().grad(&grads)),
        ),
    ];
    for (name, gw, gb) in params {
        let gw = gw.ok_or_else(|| format!("no gradient for {name}.weight"))?;
        let gb = gb.ok_or_else(|| format!("no gradient for {name}.bias"))?;
        compared.push(compare_float(
            &format!("grad.{name}.weight"),
            host(&gw.transpose()),
            &f.tensor("grads", &format!("{p}.{name}.weight"))?,
        )?);
        compared.push(compare_float(
            &format!("grad.{name}.bias"),
            host(&gb),
            &f.tensor("grads", &format!("{p}.{name}.bias"))?,
        )?);
    }
    Ok(compared)
}
