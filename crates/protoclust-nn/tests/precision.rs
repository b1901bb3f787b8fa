//! One ResNet forward and backward under the half-precision scope against float32: outputs
//! and parameter gradients are float32 and agree within the half type's rounding, and the
//! BatchNorm running statistics are float32.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};
use protoclust_nn::backbone::{resnet, ResNetConfig};
use protoclust_nn::precision::{with_precision, Precision};

/// Every parameter gradient (visit order), flattened, with its dtype.
struct Grads<'a> {
    grads: &'a burn::tensor::Gradients,
    values: Vec<f32>,
    dtypes: Vec<DType>,
}

impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if let Some(g) = p.val().grad(self.grads) {
            self.dtypes.push(g.dtype());
            self.values.extend(protoclust_nn::ops::host::to_f32(g));
        }
    }
}

/// Pooled features, parameter gradients and their dtypes of one step in `precision`, on the
/// fixed input (first rounded to `round_input` and back, when given).
fn step(
    precision: Precision,
    round_input: Option<Precision>,
) -> (Tensor<2>, Vec<f32>, Vec<DType>, Vec<DType>) {
    let dev = Device::flex().autodiff();
    let net = resnet(
        &ResNetConfig {
            depth: 18,
            width: 8,
            small_stem: true,
            stem_padding: None,
            zero_init_residual: false,
        },
        7,
        &dev,
    )
    .unwrap();
    // The same input for every precision: a fixed pseudo-random pattern in [0, 1).
    let mut state = 12345u64;
    let values: Vec<f32> = (0..6 * 3 * 17 * 15)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let mut x = Tensor::<4>::from_data(TensorData::new(values, [6, 3, 17, 15]), &dev);
    if let Some(half) = round_input.and_then(Precision::half) {
        x = x.cast(half).cast(burn::tensor::FloatDType::F32);
    }
    let out = with_precision(precision, || net.forward(x));
    // A fixed random projection of the pooled features.
    let [n, c] = out.pooled.dims();
    let r: Vec<f32> = (0..n * c)
        .map(|i| ((i * 7919) % 13) as f32 / 6.0 - 1.0)
        .collect();
    let r = Tensor::<2>::from_data(TensorData::new(r, [n, c]), &dev);
    let loss = (out.pooled.clone() * r).sum();
    let grads = loss.backward();
    let mut g = Grads {
        grads: &grads,
        values: Vec::new(),
        dtypes: Vec::new(),
    };
    net.visit(&mut g);
    let running = vec![
        net.bn1.running_mean.value_sync().dtype(),
        net.bn1.running_var.value_sync().dtype(),
    ];
    (out.pooled.inner(), g.values, g.dtypes, running)
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut d, mut n) = (0f64, 0f64);
    for (a, b) in got.iter().zip(want) {
        d += ((a - b) as f64).powi(2);
        n += (*b as f64).powi(2);
    }
    (d / n).sqrt()
}

#[test]
fn half_precision_step_agrees_with_float32_within_rounding() {
    let (pooled, grads, _, _) = step(Precision::F32, None);
    let pooled = protoclust_nn::ops::host::to_f32(pooled);
    for (precision, u) in [
        (Precision::Bf16, 2f64.powi(-9)),
        (Precision::F16, 2f64.powi(-12)),
    ] {
        let (p, g, dtypes, running) = step(precision, None);
        assert_eq!(
            p.dtype(),
            DType::F32,
            "{precision}: pooled features are float32"
        );
        assert!(
            dtypes.iter().all(|d| *d == DType::F32),
            "{precision}: gradients {dtypes:?}"
        );
        assert_eq!(
            running,
            vec![DType::F32; 2],
            "{precision}: running statistics"
        );
        assert_eq!(g.len(), grads.len());
        // Unit roundoff u (bfloat16 2^-9, float16 2^-12): through 17 layers of rounded inputs,
        // weights and outputs the features' relative error grows to some tens of u.
        let ep = relative_error(&protoclust_nn::ops::host::to_f32(p), &pooled);
        assert!(ep > 0.0, "{precision}: the half path was not taken");
        assert!(
            ep < 64.0 * u,
            "{precision}: pooled features off by {ep} (u = {u})"
        );
        // A freshly initialised BatchNorm network's gradients are chaotic in its input (BN's
        // backward cancels most of each gradient): rounding only the input to the half type,
        // all else float32, already moves them by tens of percent. Computing every layer in the
        // half type may move them by a few times that, no more.
        let (_, g_rounded, _, _) = step(Precision::F32, Some(precision));
        let sensitivity = relative_error(&g_rounded, &grads);
        let eg = relative_error(&g, &grads);
        eprintln!(
            "{precision}: pooled {:.1} u; gradients {eg:.3} against {sensitivity:.3} from rounding the input",
            ep / u
        );
        assert!(sensitivity > 0.0);
        assert!(
            eg < 4.0 * sensitivity,
            "{precision}: gradients off by {eg}, rounding the input alone moves them {sensitivity}"
        );
    }
}
