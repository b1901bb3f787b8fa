//! `protoclust bench --ops`: time per training step of the ops a ResNet step spends its time
//! in (conv2d forward, weight gradient, input gradient; BatchNorm forward and backward), summed
//! over the backbone's layers at the config's shapes, for the project's kernels and for
//! burn-flex's own ops side by side, with GFLOP/s.

use anyhow::Result;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::Flex;
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::TensorData;
use protoclust_nn::backbone::{resnet, ResNet, ResNetConfig};
use protoclust_nn::kernels::batch_norm::{self, Layout};
use protoclust_nn::kernels::bf16_conv::{self, Bf16Route};
use protoclust_nn::kernels::bf16_gemm;
use protoclust_nn::kernels::conv2d::{self, Pass, Route};
use protoclust_nn::kernels::gemm::{matmul, View};
use protoclust_nn::kernels::geometry::ConvGeometry;
use std::time::Instant;

/// Appends `conv` applied to `batch` images of `size`; returns its output size.
fn push(
    layers: &mut Vec<ConvGeometry>,
    conv: &Conv2d,
    batch: usize,
    size: [usize; 2],
) -> Result<[usize; 2]> {
    let [_, c, kh, kw] = conv.weight.dims();
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => [(t, b), (l, r)],
        _ => [(0, 0), (0, 0)],
    };
    let g = ConvGeometry::new(
        [batch, c, size[0], size[1]],
        conv.weight.dims(),
        conv.stride,
        pad,
    )
    .ok_or_else(|| {
        anyhow::anyhow!("bench --ops: a {kh}x{kw} convolution does not fit a {size:?} map")
    })?;
    layers.push(g);
    Ok([g.out_h, g.out_w])
}

/// The convolutions of `net` on `batch` images of `size` pixels, in forward order.
fn layers_of(net: &ResNet, batch: usize, size: usize) -> Result<Vec<ConvGeometry>> {
    let mut layers = Vec::new();
    let mut s = push(&mut layers, &net.conv1, batch, [size, size])?;
    if net.maxpool {
        s = [(s[0] - 1) / 2 + 1, (s[1] - 1) / 2 + 1];
    }
    for stage in [&net.layer1, &net.layer2, &net.layer3, &net.layer4] {
        for block in stage.iter() {
            if let Some(d) = &block.downsample {
                push(&mut layers, &d.conv, batch, s)?;
            }
            let mut t = push(&mut layers, &block.conv1, batch, s)?;
            t = push(&mut layers, &block.conv2, batch, t)?;
            if let Some(c3) = &block.conv3 {
                t = push(&mut layers, c3, batch, t)?;
            }
            s = t;
        }
    }
    Ok(layers)
}

fn noise(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

fn flex(v: &[f32], shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v.to_vec(), shape))
}

/// Best-of-`reps` seconds of `f` after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[derive(Default, Clone, Copy)]
struct Row {
    ours: f64,
    burn: f64,
    flops: f64,
}

/// Prints the per-op table for `config`'s backbone on `images` images of `size` px per pass
/// and `passes` passes per step (e.g. SwAV's crop groups).
pub fn run(
    config: &ResNetConfig,
    images: usize,
    size: usize,
    passes: usize,
    reps: usize,
) -> Result<()> {
    let net = resnet(config, 0, &burn::tensor::Device::flex())?;
    let layers = layers_of(&net, images, size)?;
    let mut rows = [Row::default(); 5];
    for &g in &layers {
        let x = noise(g.batch * g.in_len(), 1);
        let w = noise(g.out_c * g.patch_len(), 2);
        let dy = noise(g.batch * g.out_len(), 3);
        let flops = 2.0 * (g.batch * g.out_len() * g.patch_len()) as f64;
        let mut y = vec![0f32; dy.len()];
        let mut dw = vec![0f32; w.len()];
        let mut dx = vec![0f32; x.len()];
        let mut dbn = vec![0f32; dy.len()];
        let xt = flex(&x, vec![g.batch, g.in_c, g.in_h, g.in_w]);
        let wt = flex(&w, vec![g.out_c, g.in_c, g.k_h, g.k_w]);
        let dyt = flex(&dy, vec![g.batch, g.out_c, g.out_h, g.out_w]);
        let opts = ConvOptions::new_with_padding(
            [g.stride_h, g.stride_w],
            [(g.pad_t, g.pad_b), (g.pad_l, g.pad_r)],
            [1, 1],
            1,
        );
        let ops: [(f64, f64); 3] = [
            (
                time(reps, || conv2d::forward(&g, &x, &w, &mut y)),
                time(reps, || {
                    drop(Flex::conv2d(xt.clone(), wt.clone(), None, opts.clone()))
                }),
            ),
            (
                time(reps, || conv2d::weight_grad(&g, &x, &dy, &mut dw)),
                time(reps, || {
                    drop(Flex::conv2d_weight_backward(
                        xt.clone(),
                        wt.clone(),
                        dyt.clone(),
                        opts.clone(),
                    ))
                }),
            ),
            (
                time(reps, || conv2d::input_grad(&g, &w, &dy, &mut dx)),
                time(reps, || {
                    drop(Flex::conv2d_x_backward(
                        xt.clone(),
                        wt.clone(),
                        dyt.clone(),
                        opts.clone(),
                    ))
                }),
            ),
        ];
        for (row, (ours, burn)) in rows.iter_mut().zip(ops) {
            row.ours += ours;
            row.burn += burn;
            row.flops += flops;
        }
        // The BatchNorm that follows this convolution.
        let l = Layout {
            n: g.batch,
            c: g.out_c,
            s: g.out_pixels(),
        };
        let gamma = vec![1f32; g.out_c];
        let beta = vec![0f32; g.out_c];
        let (gt, bt) = (flex(&gamma, vec![g.out_c]), flex(&beta, vec![g.out_c]));
        let (mean, var) = batch_norm::forward(l, &dy, &gamma, &beta, 1e-5, &mut y, None);
        let (mt, vt) = (flex(&mean, vec![g.out_c]), flex(&var, vec![g.out_c]));
        rows[3].ours += time(reps, || {
            drop(batch_norm::forward(
                l, &dy, &gamma, &beta, 1e-5, &mut y, None,
            ))
        });
        rows[3].burn += time(reps, || {
            drop(Flex::batch_norm_train(
                dyt.clone(),
                gt.clone(),
                bt.clone(),
                1e-5,
            ))
        });
        rows[4].ours += time(reps, || {
            drop(batch_norm::backward(
                l, &dy, &y, &gamma, &mean, &var, 1e-5, &mut dbn, None,
            ))
        });
        rows[4].burn += time(reps, || {
            drop(Flex::batch_norm_train_backward(
                dyt.clone(),
                gt.clone(),
                mt.clone(),
                vt.clone(),
                1e-5,
                dyt.clone(),
            ))
        });
    }
    // The practical ceiling: one large square product on all threads.
    let n = 1024;
    let a = noise(n * n, 4);
    let mut c = vec![0f32; n * n];
    let dense = time(reps, || {
        use rayon::prelude::*;
        c.par_chunks_mut(n * n / rayon::current_num_threads())
            .enumerate()
            .for_each(|(i, part)| {
                let rows = part.len() / n;
                matmul(
                    part,
                    n,
                    false,
                    View::rows(&a[i * rows * n..(i + 1) * rows * n], rows, n),
                    View::rows(&a, n, n),
                );
            })
    });
    let dense_gflops = 2.0 * (n * n * n) as f64 / dense / 1e9;
    let p = passes as f64;
    println!(
        "protoclust bench --ops: ResNet-{} width {}, {} passes of {} images of {} px per step, {} threads, {} conv layers",
        config.depth, config.width, passes, images, size, rayon::current_num_threads(), layers.len()
    );
    println!("| op (all layers, per step) | protoclust s | protoclust GFLOP/s | burn-flex s | burn-flex GFLOP/s | speed-up |");
    println!("|---|---|---|---|---|---|");
    let names = [
        "conv2d forward",
        "conv2d weight gradient",
        "conv2d input gradient",
        "BatchNorm forward (train)",
        "BatchNorm backward",
    ];
    let mut total = Row::default();
    for (name, r) in names.iter().zip(rows) {
        let gf = |s: f64| {
            if r.flops > 0.0 {
                format!("{:.1}", r.flops / s / 1e9)
            } else {
                "–".into()
            }
        };
        println!(
            "| {name} | {:.4} | {} | {:.4} | {} | {:.2}× |",
            r.ours * p,
            gf(r.ours),
            r.burn * p,
            gf(r.burn),
            r.burn / r.ours
        );
        total.ours += r.ours * p;
        total.burn += r.burn * p;
    }
    println!(
        "| **sum** | {:.4} | – | {:.4} | – | {:.2}× |",
        total.ours,
        total.burn,
        total.burn / total.ours
    );
    println!("| dense {n}³ matmul (gemm crate, all threads): the practical ceiling | – | {dense_gflops:.1} | – | – | – |");
    Ok(())
}

/// One cell of the `--routes` table: seconds and GFLOP/s of `flops` in `s`, starred where the
/// route is the one taken (`chosen`); a dash where the route does not compute the pass.
fn timing(s: Option<f64>, flops: f64, chosen: bool) -> String {
    let Some(s) = s else {
        return "–".to_string();
    };
    let mark = if chosen { " *" } else { "" };
    format!("{s:.4} ({:.0}){mark}", flops / s / 1e9)
}

/// Prints, for every distinct convolution shape of `config`'s backbone on `images` images of
/// `size` px, the seconds of its forward, weight gradient and input gradient on each route
/// that computes it, with GFLOP/s counted as the direct convolution's, and the route taken.
pub fn routes(config: &ResNetConfig, images: usize, size: usize, reps: usize) -> Result<()> {
    let net = resnet(config, 0, &burn::tensor::Device::flex())?;
    let mut shapes = layers_of(&net, images, size)?;
    shapes.dedup();
    let mut seen = Vec::new();
    shapes.retain(|g| {
        let new = !seen.contains(g);
        seen.push(*g);
        new
    });
    println!(
        "protoclust bench --routes: ResNet-{} width {}, {images} images of {size} px, {} threads; s (GFLOP/s), best of {reps}",
        config.depth, config.width, rayon::current_num_threads()
    );
    println!("(* the route each pass takes)");
    println!(
        "| layer (C → O, k, stride, map) | route | forward | weight gradient | input gradient |"
    );
    println!("|---|---|---|---|---|");
    for g in shapes {
        let x = noise(g.batch * g.in_len(), 1);
        let w = noise(g.out_c * g.patch_len(), 2);
        let dy = noise(g.batch * g.out_len(), 3);
        let flops = 2.0 * (g.batch * g.out_len() * g.patch_len()) as f64;
        let (mut y, mut dw, mut dx) = (
            vec![0f32; dy.len()],
            vec![0f32; w.len()],
            vec![0f32; x.len()],
        );
        let cell = |s: Option<f64>, route: Route, pass: Pass| {
            timing(s, flops, Route::of(&g, pass) == route)
        };
        let routes = [
            Route::Winograd,
            Route::Direct,
            Route::ChannelsLast,
            Route::Lowering,
        ];
        for route in routes {
            let applies = |pass| route.applies(&g, pass);
            if ![Pass::Forward, Pass::WeightGrad, Pass::InputGrad]
                .into_iter()
                .any(applies)
            {
                continue;
            }
            let fwd = applies(Pass::Forward)
                .then(|| time(reps, || conv2d::forward_by(route, &g, &x, &w, &mut y)));
            let wg = applies(Pass::WeightGrad)
                .then(|| time(reps, || conv2d::weight_grad_by(route, &g, &x, &dy, &mut dw)));
            let ig = applies(Pass::InputGrad)
                .then(|| time(reps, || conv2d::input_grad_by(route, &g, &w, &dy, &mut dx)));
            println!(
                "| {} → {}, {}×{}, s{}, {}×{} | {route:?} | {} | {} | {} |",
                g.in_c,
                g.out_c,
                g.k_h,
                g.k_w,
                g.stride_h,
                g.in_h,
                g.in_w,
                cell(fwd, route, Pass::Forward),
                cell(wg, route, Pass::WeightGrad),
                cell(ig, route, Pass::InputGrad),
            );
        }
        if !bf16_gemm::supported() {
            continue;
        }
        // The bf16 products (`train.precision = "bf16"`), on each route that computes them.
        for route in [Bf16Route::ChannelsLast, Bf16Route::Panels] {
            let applies = |pass| route.applies(&g, pass);
            let cell = |pass: Pass, run: &mut dyn FnMut()| {
                let s = applies(pass).then(|| time(reps, run));
                timing(s, flops, Bf16Route::of(&g, pass) == route)
            };
            let fwd = cell(Pass::Forward, &mut || {
                bf16_conv::forward_by(route, &g, &x, &w, &mut y)
            });
            let wg = cell(Pass::WeightGrad, &mut || {
                bf16_conv::weight_grad_by(route, &g, &x, &dy, &mut dw)
            });
            let ig = cell(Pass::InputGrad, &mut || {
                bf16_conv::input_grad_by(route, &g, &w, &dy, &mut dx)
            });
            println!(
                "| {} → {}, {}×{}, s{}, {}×{} | bf16 {route:?} | {fwd} | {wg} | {ig} |",
                g.in_c, g.out_c, g.k_h, g.k_w, g.stride_h, g.in_h, g.in_w,
            );
        }
    }
    Ok(())
}
