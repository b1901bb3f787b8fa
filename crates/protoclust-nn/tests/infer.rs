//! The folded inference network against burn's own eval-mode ops (`Conv2d::forward`,
//! `BatchNorm::forward`), to the fixtures README's float32 rule
//! (max|got − ref| ≤ 2e-5 · max|ref| + 1e-7 per tensor).

#[path = "common/resnet50.rs"]
mod resnet50;
#[path = "common/tolerance.rs"]
mod tolerance;

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use protoclust_nn::backbone::{resnet, Block, ResNet, ResNetConfig};
use protoclust_nn::infer::{Activation, FoldedConv, InferenceResNet};

/// [`tolerance::close`], on a reference that is not all zeros (which would check nothing).
fn close(what: &str, got: &[f32], want: &[f32]) {
    tolerance::close(what, got, want);
    assert!(
        want.iter().any(|v| v.abs() > 0.0),
        "{what}: an all-zero reference checks nothing"
    );
}

/// Deterministic pseudo-random values in [lo, hi).
fn noise(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) ^ 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn t1(v: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// A BatchNorm with non-trivial γ, β and running statistics.
fn randomise(bn: &mut BatchNorm, seed: u64) {
    let c = bn.gamma.dims()[0];
    let d = bn.gamma.device();
    bn.gamma = Param::from_tensor(t1(noise(c, seed, 0.5, 1.5), &d));
    bn.beta = Param::from_tensor(t1(noise(c, seed + 1, -0.3, 0.3), &d));
    bn.running_mean = RunningState::new(t1(noise(c, seed + 2, -0.5, 0.5), &d));
    bn.running_var = RunningState::new(t1(noise(c, seed + 3, 0.2, 2.0), &d));
}

fn randomise_net(net: &mut ResNet) {
    randomise(&mut net.bn1, 1);
    let mut seed = 10;
    for stage in [
        &mut net.layer1,
        &mut net.layer2,
        &mut net.layer3,
        &mut net.layer4,
    ] {
        for b in stage.iter_mut() {
            for bn in [Some(&mut b.bn1), Some(&mut b.bn2), b.bn3.as_mut()]
                .into_iter()
                .flatten()
            {
                randomise(bn, seed);
                seed += 4;
            }
            if let Some(d) = b.downsample.as_mut() {
                randomise(&mut d.bn, seed);
                seed += 4;
            }
        }
    }
}

fn relu(x: Tensor<4>) -> Tensor<4> {
    burn::tensor::activation::relu(x)
}

/// torchvision's block on burn's own ops.
fn block_reference(b: &Block, x: Tensor<4>) -> Tensor<4> {
    let identity = match &b.downsample {
        Some(d) => d.bn.forward(d.conv.forward(x.clone())),
        None => x.clone(),
    };
    let mut out = relu(b.bn1.forward(b.conv1.forward(x)));
    out = b.bn2.forward(b.conv2.forward(out));
    if let (Some(c3), Some(b3)) = (&b.conv3, &b.bn3) {
        out = b3.forward(c3.forward(relu(out)));
    }
    relu(out + identity)
}

/// The eval-mode trunk on burn's own ops: pooled N × C.
fn reference(net: &ResNet, x: Tensor<4>) -> Vec<f32> {
    let mut x = relu(net.bn1.forward(net.conv1.forward(x)));
    if net.maxpool {
        x = max_pool2d(
            x,
            MaxPoolOptions {
                kernel_size: [3, 3],
                stride: [2, 2],
                padding: [(1, 1), (1, 1)],
                dilation: [1, 1],
                ceil_mode: false,
            },
        );
    }
    for b in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
        .into_iter()
        .flatten()
    {
        x = block_reference(b, x);
    }
    let [n, c, _, _] = x.dims();
    adaptive_avg_pool2d(x, [1, 1])
        .reshape([n, c])
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

fn trunk_case(depth: usize, width: usize, small_stem: bool, n: usize, hw: [usize; 2]) {
    let device = Device::flex();
    let config = ResNetConfig {
        depth,
        width,
        small_stem,
        stem_padding: None,
        zero_init_residual: false,
    };
    let mut net = resnet(&config, 7, &device).unwrap().valid();
    randomise_net(&mut net);
    let x = noise(n * 3 * hw[0] * hw[1], 99, -2.0, 2.0);
    let want = reference(
        &net,
        Tensor::from_data(TensorData::new(x.clone(), [n, 3, hw[0], hw[1]]), &device),
    );
    let folded = InferenceResNet::new(&net).unwrap();
    assert_eq!(folded.out_dim(), config.out_dim());
    let got = folded.pooled(&x, n, hw[0], hw[1]);
    close(
        &format!("ResNet-{depth} width {width} small stem {small_stem}, {n} × {hw:?}"),
        &got,
        &want,
    );
    // And the module path the CLI takes elsewhere (the project's training kernels, eval mode).
    let modules = net
        .forward(Tensor::from_data(
            TensorData::new(x, [n, 3, hw[0], hw[1]]),
            &device,
        ))
        .pooled
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    close("module path", &modules, &want);
}

#[test]
fn folded_resnet50_equals_the_eval_mode_modules_on_an_odd_non_square_input() {
    trunk_case(50, 8, false, 3, [67, 53]);
}

#[test]
fn folded_resnet18_and_34_equal_the_eval_mode_modules() {
    trunk_case(18, 5, true, 2, [13, 11]);
    trunk_case(34, 3, false, 1, [32, 45]);
}

/// A bias-free k × k convolution (padding k / 2) with weights uniform in ±`scale`, and a
/// BatchNorm with random statistics.
fn conv_bn(
    c: usize,
    o: usize,
    k: usize,
    stride: usize,
    scale: f32,
    device: &Device,
) -> (burn::nn::conv::Conv2d, BatchNorm) {
    let pad = k / 2;
    let mut conv = Conv2dConfig::new([c, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device);
    let w: Vec<f32> = noise(o * c * k * k, 5, -1.0, 1.0)
        .into_iter()
        .map(|v| v * scale)
        .collect();
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [o, c, k, k]), device));
    let mut bn = BatchNormConfig::new(o).init(device);
    randomise(&mut bn, 3);
    (conv, bn)
}

/// One convolution + BatchNorm of the given geometry: folded (with residual and ReLU in the
/// output pass) against burn's conv2d and eval BatchNorm followed by the same add and ReLU.
#[allow(clippy::too_many_arguments)]
fn layer_case(n: usize, c: usize, hw: usize, o: usize, k: usize, stride: usize, residual: bool) {
    let device = Device::flex();
    let (conv, bn) = conv_bn(c, o, k, stride, 1.0 / ((c * k * k) as f32).sqrt(), &device);
    let xv = noise(n * c * hw * hw, 8, -1.0, 1.0);
    let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), [n, c, hw, hw]), &device);
    let y = bn.forward(conv.forward(x));
    let [_, _, oh, ow] = y.dims();
    let rv = noise(n * o * oh * ow, 9, -1.0, 1.0);
    let y = if residual {
        relu(y + Tensor::from_data(TensorData::new(rv.clone(), [n, o, oh, ow]), &device))
    } else {
        y
    };
    let want = Activation::from_nchw(&y.into_data().try_into_vec::<f32>().unwrap(), n, o, oh, ow);
    let folded = FoldedConv::new(&conv, &bn).unwrap();
    let r = residual.then(|| Activation::from_nchw(&rv, n, o, oh, ow));
    let got = folded.run(
        &Activation::from_nchw(&xv, n, c, hw, hw),
        r.as_ref(),
        residual,
    );
    assert_eq!((got.h, got.w, got.c), (oh, ow, o));
    close(
        &format!("N{n} C{c} {hw}px O{o} k{k} s{stride} residual {residual}"),
        &got.data,
        &want.data,
    );
}

#[test]
fn every_resnet50_layer_shape_at_224_px() {
    for (c, hw, o, k, s) in resnet50::CONVS {
        layer_case(1, c, hw, o, k, s, k == 1 && s == 1 && o > c);
    }
}

#[test]
fn odd_layer_shapes_with_and_without_the_residual() {
    for (n, c, hw, o, k, s) in [
        (3, 5, 9, 7, 3, 1),
        (2, 13, 10, 3, 3, 2),
        (1, 3, 17, 8, 7, 2),
        (5, 8, 6, 13, 1, 2),
        (37, 4, 3, 5, 1, 1),
    ] {
        layer_case(n, c, hw, o, k, s, false);
        layer_case(n, c, hw, o, k, s, true);
    }
}

#[test]
fn batches_are_sized_by_activation_memory() {
    let device = Device::flex();
    let rn50 = resnet(
        &ResNetConfig {
            depth: 50,
            width: 64,
            small_stem: false,
            stem_padding: None,
            zero_init_residual: false,
        },
        0,
        &device,
    )
    .unwrap();
    let folded = InferenceResNet::new(&rn50).unwrap();
    // layer1's first block: its input, the shortcut, two 64-channel maps and the output.
    let want = (56 * 56 * (64 + 256 + 64 + 64 + 256)) * 4;
    assert_eq!(folded.bytes_per_image(224, 224), want);
    let trunk = protoclust_nn::infer::EvalTrunk::new(&rn50);
    assert!(trunk.is_folded());
    let b = trunk.batch_for(224, 256);
    assert_eq!(b, protoclust_nn::infer::BATCH_BYTES / want);
    assert!((16..=64).contains(&b), "{b}");
    let small = resnet(&ResNetConfig::default(), 0, &device).unwrap();
    assert_eq!(
        protoclust_nn::infer::EvalTrunk::new(&small).batch_for(32, 256),
        256
    );
}

/// bf16 results against the f32 ones: bf16 keeps 8 significant bits, so each product's
/// operands are off by up to 2^-9 relative; over a layer (or fifty) the outputs move by about
/// 2^-8 of their scale. A wrong weight, tap or row would move them by their whole scale.
fn bf16_close(what: &str, got: &[f32], want: &[f32]) {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    assert!(scale > 0.0, "{what}: an all-zero reference checks nothing");
    assert!(
        err <= 2e-2 * scale,
        "{what}: max|bf16 − f32| = {err:e} > 2e-2 · {scale:e}"
    );
    eprintln!("{what}: max|bf16 − f32| / max|f32| = {:.2e}", err / scale);
}

/// Every ResNet-50 layer shape and odd ones, folded in bf16 against the same layer in f32.
#[test]
fn bf16_layers_follow_the_f32_ones_at_every_resnet50_shape() {
    if !protoclust_nn::kernels::bf16_gemm::supported() {
        eprintln!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    let device = Device::flex();
    let shapes = resnet50::CONVS
        .iter()
        .map(|&(c, hw, o, k, s)| (1, c, hw, o, k, s))
        .chain([
            (3, 5, 9, 7, 3, 1),
            (2, 14, 10, 3, 3, 2),
            (1, 3, 17, 8, 7, 2),
            (5, 8, 6, 13, 1, 2),
        ]);
    for (n, c, hw, o, k, stride) in shapes {
        let (conv, bn) = conv_bn(c, o, k, stride, 1.0, &device);
        let x = Activation::from_nchw(&noise(n * c * hw * hw, 8, -1.0, 1.0), n, c, hw, hw);
        let f32_conv = FoldedConv::new(&conv, &bn).unwrap();
        let want = f32_conv.run(&x, None, true);
        let got = f32_conv.clone().to_bf16().run(&x, None, true);
        bf16_close(
            &format!("N{n} C{c} {hw}px O{o} k{k} s{stride}"),
            &got.data,
            &want.data,
        );
    }
}

/// A whole ResNet-50 (narrow, odd input) in bf16 against f32, through `EvalTrunk`.
#[test]
fn a_bf16_trunk_follows_the_f32_one() {
    use protoclust_nn::infer::{EvalTrunk, PrecisionError};
    use protoclust_nn::precision::Precision;
    let device = Device::flex();
    let config = ResNetConfig {
        depth: 50,
        width: 8,
        ..Default::default()
    };
    let mut net = resnet(&config, 7, &device).unwrap().valid();
    randomise_net(&mut net);
    let (n, h, w) = (3, 67, 53);
    let x = || {
        Tensor::<4>::from_data(
            TensorData::new(noise(n * 3 * h * w, 99, -2.0, 2.0), [n, 3, h, w]),
            &device,
        )
    };
    let host = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
    let want = host(EvalTrunk::new(&net).pooled(x()));
    // f16 is refused on the CPU, in one line.
    assert_eq!(
        EvalTrunk::new(&net).with_precision(Precision::F16).err(),
        Some(PrecisionError::F16OnCpu)
    );
    match EvalTrunk::new(&net).with_precision(Precision::Bf16) {
        Ok(trunk) => {
            let got = host(trunk.pooled(x()));
            bf16_close("ResNet-50 width 8, 3 × 67 × 53", &got, &want);
            assert_ne!(got, want, "bf16 ran as f32");
        }
        Err(e) => {
            assert!(!protoclust_nn::kernels::bf16_gemm::supported());
            assert_eq!(e, PrecisionError::NoBf16Cpu);
        }
    }
}
