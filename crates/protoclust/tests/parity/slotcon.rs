//! SlotCon cases: semantic grouping, inverse augmentation (RoIAlign + flip), self-distillation,
//! the centre, the grouping loss and the slot contrast.

use crate::fixture::{compare_abs, compare_exact, compare_float, host, Compared, Fixture};
use burn::tensor::{Device, Tensor};
use protoclust_methods::slotcon::{
    group_loss, invaug, self_distill, semantic_grouping, slot_contrast, slotcon_loss,
    teacher_momentum, update_center, DinoHead, DinoHeadConfig, GroupLossParams, SlotConLossParams,
    TeacherCentering, ViewPair,
};
use protoclust_nn::collective::World;
use protoclust_nn::init::Init;

fn coords(f: &Fixture, v: usize) -> Result<Vec<[f32; 4]>, String> {
    Ok(f.tensor("inputs", &format!("coords_view{v}"))?
        .data
        .chunks(4)
        .map(|c| [c[0] as f32, c[1] as f32, c[2] as f32, c[3] as f32])
        .collect())
}

fn flags(f: &Fixture, v: usize) -> Result<Vec<bool>, String> {
    Ok(f.tensor("inputs", &format!("flags_view{v}"))?
        .data
        .iter()
        .map(|&x| x != 0.0)
        .collect())
}

pub fn view_pair(f: &Fixture) -> Result<ViewPair, String> {
    Ok(ViewPair {
        coords: [coords(f, 0)?, coords(f, 1)?],
        flags: [flags(f, 0)?, flags(f, 1)?],
    })
}

fn params(f: &Fixture) -> Result<GroupLossParams, String> {
    Ok(GroupLossParams {
        student_temp: f.param_f64("student_temp")?,
        teacher_temp: f.param_f64("teacher_temp")?,
        center_momentum: f.param_f64("center_momentum")?,
        group_weight: f.param_f64("group_loss_weight")?,
        centering: TeacherCentering::Mean,
    })
}

pub fn grouping_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let x: Tensor<4> = f.input::<4>("x", &ad)?.require_grad();
    let p: Tensor<2> = f.input::<2>("slot_embed", &ad)?.require_grad();
    let g = semantic_grouping(x.clone(), p.clone(), f.param_f64("temp")?);
    let up_s = f.input::<3>("upstream_slots", &ad)?;
    let up_d = f.input::<4>("upstream_dots", &ad)?;
    let grads = ((g.slots.clone() * up_s).sum() + (g.dots.clone() * up_d).sum()).backward();
    let gx = x.grad(&grads).ok_or("no gradient for x")?;
    let gp = p.grad(&grads).ok_or("no gradient for slot_embed")?;
    Ok(vec![
        compare_float("slots", host(&g.slots), &f.tensor("outputs", "slots")?)?,
        compare_float("dots", host(&g.dots), &f.tensor("outputs", "dots")?)?,
        compare_float("grad.x", host(&gx), &f.tensor("grads", "x")?)?,
        compare_float(
            "grad.slot_embed",
            host(&gp),
            &f.tensor("grads", "slot_embed")?,
        )?,
    ])
}

pub fn invaug_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let views = view_pair(f)?;
    let up = f.input::<4>("upstream", &ad)?;
    let mut out = Vec::new();
    for v in 0..2 {
        let x: Tensor<4> = f.input::<4>("x", &ad)?.require_grad();
        let a = invaug(x.clone(), &views.coords[v], &views.flags[v]);
        let grads = (a.clone() * up.clone()).sum().backward();
        let gx = x.grad(&grads).ok_or("no gradient for x")?;
        out.push(compare_float(
            &format!("aligned_view{v}"),
            host(&a),
            &f.tensor("outputs", &format!("aligned_view{v}"))?,
        )?);
        out.push(compare_float(
            &format!("grad.x_view{v}"),
            host(&gx),
            &f.tensor("grads", &format!("x_view{v}"))?,
        )?);
    }
    Ok(out)
}

pub fn self_distill_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let q: Tensor<2> = f.input::<2>("q", &ad)?.require_grad();
    let k = f.input::<2>("k", &ad)?;
    let c = f.input::<2>("center", &ad)?;
    let loss = self_distill(
        q.clone(),
        k,
        c,
        f.param_f64("student_temp")?,
        f.param_f64("teacher_temp")?,
    );
    let gq = q.grad(&loss.backward()).ok_or("no gradient for q")?;
    Ok(vec![
        compare_float("loss", host(&loss), &f.tensor("outputs", "loss")?)?,
        compare_float("grad.q", host(&gq), &f.tensor("grads", "q")?)?,
    ])
}

pub fn update_center_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let c = update_center(
        f.input::<2>("center", device)?,
        f.input::<2>("teacher_output", device)?,
        f.param_f64("center_momentum")?,
        &World::Single,
    );
    Ok(vec![compare_float(
        "center_after",
        host(&c),
        &f.tensor("outputs", "center_after")?,
    )?])
}

pub fn group_loss_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let q1: Tensor<4> = f.input::<4>("score_q1", &ad)?.require_grad();
    let q2: Tensor<4> = f.input::<4>("score_q2", &ad)?.require_grad();
    let out = group_loss(
        [q1.clone(), q2.clone()],
        [
            f.input::<4>("score_k1", &ad)?,
            f.input::<4>("score_k2", &ad)?,
        ],
        f.input::<2>("center", &ad)?,
        &view_pair(f)?,
        &params(f)?,
        &World::Single,
    );
    let terms = Tensor::cat(out.terms.to_vec(), 0);
    let grads = out.loss.backward();
    let g1 = q1.grad(&grads).ok_or("no gradient for score_q1")?;
    let g2 = q2.grad(&grads).ok_or("no gradient for score_q2")?;
    Ok(vec![
        compare_float("loss", host(&out.loss), &f.tensor("outputs", "loss")?)?,
        compare_float("terms", host(&terms), &f.tensor("outputs", "terms")?)?,
        compare_float(
            "center_after",
            host(&out.center_after),
            &f.tensor("outputs", "center_after")?,
        )?,
        compare_float("grad.score_q1", host(&g1), &f.tensor("grads", "score_q1")?)?,
        compare_float("grad.score_q2", host(&g2), &f.tensor("grads", "score_q2")?)?,
    ])
}

fn flags_i64(v: &[bool]) -> Vec<i64> {
    v.iter().map(|&b| b as i64).collect()
}

pub fn ctr_loss_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let q: Tensor<3> = f.input::<3>("q", &ad)?.require_grad();
    let out = slot_contrast(
        q.clone(),
        f.input::<3>("k", &ad)?,
        f.input::<4>("score_q", &ad)?,
        f.input::<4>("score_k", &ad)?,
        f.param_f64("tau")?,
        &|x| x,
        &World::Single,
    );
    let gq = q.grad(&out.loss.backward()).ok_or("no gradient for q")?;
    let idxs: Vec<i64> = out.idxs_q.iter().map(|&i| i as i64).collect();
    let labels: Vec<i64> = out.labels.iter().map(|&i| i as i64).collect();
    Ok(vec![
        compare_exact(
            "mask_q",
            &flags_i64(&out.mask_q),
            &f.tensor("outputs", "mask_q")?,
        ),
        compare_exact(
            "mask_k",
            &flags_i64(&out.mask_k),
            &f.tensor("outputs", "mask_k")?,
        ),
        compare_exact("idxs_q", &idxs, &f.tensor("outputs", "idxs_q")?),
        compare_exact("labels", &labels, &f.tensor("outputs", "labels")?),
        compare_float("logits", host(&out.logits), &f.tensor("outputs", "logits")?)?,
        compare_float("loss", host(&out.loss), &f.tensor("outputs", "loss")?)?,
        compare_float("grad.q", host(&gq), &f.tensor("grads", "q")?)?,
    ])
}

pub fn forward_case(f: &Fixture, device: &Device) -> Result<Vec<Compared>, String> {
    let ad = device.clone().autodiff();
    let d = f.param_usize("D")?;
    let hidden = f.param_usize("dim_hidden")?;
    let p = SlotConLossParams {
        group: params(f)?,
        grouping_temp: f.param_f64("grouping_temp")?,
        tau: f.param_f64("tau")?,
    };
    let m = teacher_momentum(
        f.param_f64("teacher_momentum")?,
        f.param_usize("k_iter")? as u64,
        f.param_usize("K_iters")? as u64,
    );
    let x1: Tensor<4> = f.input::<4>("x1", &ad)?.require_grad();
    let x2: Tensor<4> = f.input::<4>("x2", &ad)?.require_grad();
    let sp: Tensor<2> = f.input::<2>("student_slot_embed", &ad)?.require_grad();
    // Teacher momentum step first, then the teacher's grouping with the updated prototypes.
    let tp = f
        .input::<2>("teacher_slot_embed", &ad)?
        .mul_scalar(m)
        .add(sp.clone().detach().mul_scalar(1.0 - m));
    let mut head = DinoHead::new(d, &DinoHeadConfig { hidden }, &mut Init::new(0, &ad));
    let pre = "predictor.mlp";
    head.fc0.weight = f.linear_weight(&format!("{pre}.0.weight"), &ad)?;
    head.fc0.bias = Some(f.vector_param(&format!("{pre}.0.bias"), &ad)?);
    head.bn0.gamma = f.vector_param(&format!("{pre}.1.weight"), &ad)?;
    head.bn0.beta = f.vector_param(&format!("{pre}.1.bias"), &ad)?;
    head.fc1.weight = f.linear_weight(&format!("{pre}.3.weight"), &ad)?;
    head.fc1.bias = Some(f.vector_param(&format!("{pre}.3.bias"), &ad)?);
    head.bn1.gamma = f.vector_param(&format!("{pre}.4.weight"), &ad)?;
    head.bn1.beta = f.vector_param(&format!("{pre}.4.bias"), &ad)?;
    head.fc2.weight = f.linear_weight(&format!("{pre}.6.weight"), &ad)?;
    head.fc2.bias = Some(f.vector_param(&format!("{pre}.6.bias"), &ad)?);
    let out = slotcon_loss(
        [x1.clone(), x2.clone()],
        [f.input::<4>("y1", &ad)?, f.input::<4>("y2", &ad)?],
        sp.clone(),
        tp.clone(),
        f.input::<2>("center", &ad)?,
        &view_pair(f)?,
        &head,
        &p,
        &World::Single,
    );
    let grads = out.loss.backward();
    let mut c = vec![
        compare_float("loss", host(&out.loss), &f.tensor("outputs", "loss")?)?,
        compare_float(
            "group_loss_terms",
            host(&Tensor::cat(out.group_terms.to_vec(), 0)),
            &f.tensor("outputs", "group_loss_terms")?,
        )?,
        compare_float(
            "ctr_loss_terms",
            host(&Tensor::cat(out.ctr_terms.to_vec(), 0)),
            &f.tensor("outputs", "ctr_loss_terms")?,
        )?,
        compare_float(
            "center_after",
            host(&out.center_after),
            &f.tensor("outputs", "center_after")?,
        )?,
        compare_float(
            "teacher_slot_embed_after",
            host(&tp),
            &f.tensor("outputs", "teacher_slot_embed_after")?,
        )?,
        compare_float(
            "teacher_momentum_used",
            (vec![], vec![m]),
            &f.tensor("outputs", "teacher_momentum_used")?,
        )?,
    ];
    let groupings = [
        ("q1", &out.student[0]),
        ("q2", &out.student[1]),
        ("k1", &out.teacher[0]),
        ("k2", &out.teacher[1]),
    ];
    for (tag, g) in groupings {
        c.push(compare_float(
            &format!("slots_{tag}"),
            host(&g.slots),
            &f.tensor("outputs", &format!("slots_{tag}"))?,
        )?);
        c.push(compare_float(
            &format!("score_{tag}"),
            host(&g.dots),
            &f.tensor("outputs", &format!("score_{tag}"))?,
        )?);
    }
    let g = |t: &Tensor<4>| t.grad(&grads);
    c.push(compare_float(
        "grad.x1",
        host(&g(&x1).ok_or("no gradient for x1")?),
        &f.tensor("grads", "x1")?,
    )?);
    c.push(compare_float(
        "grad.x2",
        host(&g(&x2).ok_or("no gradient for x2")?),
        &f.tensor("grads", "x2")?,
    )?);
    c.push(compare_float(
        "grad.student_slot_embed",
        host(
            &sp.grad(&grads)
                .ok_or("no gradient for student_slot_embed")?,
        ),
        &f.tensor("grads", "student_slot_embed")?,
    )?);
    let weights = [
        ("0", &head.fc0.weight),
        ("3", &head.fc1.weight),
        ("6", &head.fc2.weight),
    ];
    for (i, w) in weights {
        let gw = w
            .val()
            .grad(&grads)
            .ok_or("no gradient for a predictor weight")?;
        c.push(compare_float(
            &format!("grad.{pre}.{i}.weight"),
            host(&gw.transpose()),
            &f.tensor("grads", &format!("{pre}.{i}.weight"))?,
        )?);
    }
    let vectors = [
        ("1.weight", &head.bn0.gamma),
        ("1.bias", &head.bn0.beta),
        ("4.weight", &head.bn1.gamma),
        ("4.bias", &head.bn1.beta),
    ];
    for (name, v) in vectors {
        let gv = v
            .val()
            .grad(&grads)
            .ok_or("no gradient for a predictor BN")?;
        c.push(compare_float(
            &format!("grad.{pre}.{name}"),
            host(&gv),
            &f.tensor("grads", &format!("{pre}.{name}"))?,
        )?);
    }
    let biases = [
        ("0.bias", head.fc0.bias.as_ref(), true),
        ("3.bias", head.fc1.bias.as_ref(), true),
        ("6.bias", head.fc2.bias.as_ref(), false),
    ];
    for (name, b, pre_bn) in biases {
        let gb = b
            .and_then(|b| b.val().grad(&grads))
            .ok_or("no gradient for a predictor bias")?;
        let label = format!("grad.{pre}.{name}");
        if pre_bn {
            // Analytically zero before a training-mode BatchNorm: absolute 1e-6 (README).
            c.push(compare_abs(&label, host(&gb), 1e-6));
        } else {
            c.push(compare_float(
                &label,
                host(&gb),
                &f.tensor("grads", &format!("{pre}.{name}"))?,
            )?);
        }
    }
    Ok(c)
}
