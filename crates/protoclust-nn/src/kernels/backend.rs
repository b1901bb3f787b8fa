//! The kernels as a burn backend extension: the `Flex` implementation runs them on the
//! primitive tensors, the `Autodiff<Flex>` implementation records them with their backward.

use super::batch_norm::{self, Layout};
use super::elementwise;
use super::geometry::ConvGeometry;
use super::timing::{timed, Kernel};
use super::{bf16_conv, conv2d, Products};
use crate::collective::World;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata};
use burn::tensor::{DType, TensorData};
use std::borrow::Cow;

/// Stride, padding and products of a convolution, as the extension passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// (vertical, horizontal) stride.
    pub stride: [usize; 2],
    /// ((top, bottom), (left, right)) padding.
    pub padding: [(usize, usize); 2],
    /// The arithmetic of the forward's and both gradients' products.
    pub products: Products,
}

/// The project's CPU kernels behind burn's backend-extension seam.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// conv2d without bias (groups 1, dilation 1); stride, padding and products as
    /// [`ConvSpec`] fields.
    #[allow(clippy::too_many_arguments)]
    fn pc_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_t: usize,
        pad_b: usize,
        pad_l: usize,
        pad_r: usize,
        products: Products,
    ) -> FloatTensor<Self>;

    /// BatchNorm with batch statistics: (output, mean, biased variance).
    fn pc_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// ReLU (values ≤ 0 to 0, NaN kept).
    fn pc_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `relu(a + b)` for operands of one shape: a residual join.
    fn pc_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The tensor's f32 values in row-major order (copied only when it is a strided view).
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "protoclust kernels: f32 tensors only"
    );
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    assert_eq!(s.num_dims(), 4, "protoclust conv2d: rank-4 tensors only");
    [s[0], s[1], s[2], s[3]]
}

fn geometry(x: &FlexTensor, w: &FlexTensor, spec: ConvSpec) -> ConvGeometry {
    ConvGeometry::new(dims4(x), dims4(w), spec.stride, spec.padding)
        .expect("protoclust conv2d: input and weight shapes do not fit")
}

fn layout(x: &FlexTensor) -> Layout {
    let s = x.shape();
    let (n, c) = (s[0], s[1]);
    Layout {
        n,
        c,
        s: s.num_elements() / (n * c).max(1),
    }
}

/// Forward convolution on flex tensors.
pub fn conv_forward(x: &FlexTensor, w: &FlexTensor, spec: ConvSpec) -> FlexTensor {
    let _t = timed(Kernel::ConvForward);
    let g = geometry(x, w, spec);
    let mut y = elementwise::zeroed(g.batch * g.out_len());
    match spec.products {
        Products::F32 => conv2d::forward(&g, &values(x), &values(w), &mut y),
        Products::Bf16 => bf16_conv::forward(&g, &values(x), &values(w), &mut y),
    }
    tensor(y, vec![g.batch, g.out_c, g.out_h, g.out_w])
}

/// Weight gradient on flex tensors.
pub fn conv_weight_grad(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    spec: ConvSpec,
) -> FlexTensor {
    let _t = timed(Kernel::ConvWeightGrad);
    let g = geometry(x, w, spec);
    let mut dw = elementwise::zeroed(g.out_c * g.patch_len());
    match spec.products {
        Products::F32 => conv2d::weight_grad(&g, &values(x), &values(dy), &mut dw),
        Products::Bf16 => bf16_conv::weight_grad(&g, &values(x), &values(dy), &mut dw),
    }
    tensor(dw, vec![g.out_c, g.in_c, g.k_h, g.k_w])
}

/// Input gradient on flex tensors.
pub fn conv_input_grad(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    spec: ConvSpec,
) -> FlexTensor {
    let _t = timed(Kernel::ConvInputGrad);
    let g = geometry(x, w, spec);
    let mut dx = elementwise::zeroed(g.batch * g.in_len());
    match spec.products {
        Products::F32 => conv2d::input_grad(&g, &values(w), &values(dy), &mut dx),
        Products::Bf16 => bf16_conv::input_grad(&g, &values(w), &values(dy), &mut dx),
    }
    tensor(dx, vec![g.batch, g.in_c, g.in_h, g.in_w])
}

/// BatchNorm with batch statistics on flex tensors: (output, mean, biased variance).
fn bn_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    sync: Option<&World>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let _t = timed(Kernel::BatchNormForward);
    let l = layout(x);
    let mut y = elementwise::zeroed(x.shape().num_elements());
    let (mean, var) = batch_norm::forward(
        l,
        &values(x),
        &values(gamma),
        &values(beta),
        epsilon,
        &mut y,
        sync,
    );
    (
        tensor(y, x.shape().to_vec()),
        tensor(mean, vec![l.c]),
        tensor(var, vec![l.c]),
    )
}

/// Gradients (x, gamma, beta) of a training BatchNorm given its output gradient `dy`.
fn bn_backward(
    x: &FlexTensor,
    dy: &[f32],
    gamma: &FlexTensor,
    mean: &FlexTensor,
    var: &FlexTensor,
    epsilon: f64,
    sync: Option<&World>,
) -> [FlexTensor; 3] {
    let _t = timed(Kernel::BatchNormBackward);
    let l = layout(x);
    let mut dx = elementwise::zeroed(x.shape().num_elements());
    let (dgamma, dbeta) = batch_norm::backward(
        l,
        &values(x),
        dy,
        &values(gamma),
        &values(mean),
        &values(var),
        epsilon,
        &mut dx,
        sync,
    );
    [
        tensor(dx, x.shape().to_vec()),
        tensor(dgamma, vec![l.c]),
        tensor(dbeta, vec![l.c]),
    ]
}

impl CpuKernels for Flex {
    fn pc_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_t: usize,
        pad_b: usize,
        pad_l: usize,
        pad_r: usize,
        products: Products,
    ) -> FlexTensor {
        let spec = ConvSpec {
            stride: [stride_h, stride_w],
            padding: [(pad_t, pad_b), (pad_l, pad_r)],
            products,
        };
        conv_forward(&x, &weight, spec)
    }

    fn pc_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        bn_forward(
            &x,
            &gamma,
            &beta,
            epsilon,
            crate::collective::sync_batchnorm().as_ref(),
        )
    }

    fn pc_relu(x: FlexTensor) -> FlexTensor {
        relu_forward(&x)
    }

    fn pc_add_relu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        add_relu_forward(&a, &b)
    }
}

fn relu_forward(x: &FlexTensor) -> FlexTensor {
    let _t = timed(Kernel::ReluForward);
    tensor(elementwise::relu(&values(x)), x.shape().to_vec())
}

fn add_relu_forward(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let _t = timed(Kernel::ReluForward);
    assert_eq!(a.shape(), b.shape(), "protoclust add_relu: shapes differ");
    tensor(
        elementwise::add_relu(&values(a), &values(b)),
        a.shape().to_vec(),
    )
}

/// The gradient through a ReLU whose output was `y`.
fn relu_grad(y: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    let _t = timed(Kernel::ReluBackward);
    tensor(
        elementwise::relu_backward(&values(y), &values(dy)),
        y.shape().to_vec(),
    )
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (FlexTensor, FlexTensor, ConvSpec);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, spec) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, conv_input_grad(&x, &w, &dy, spec));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, conv_weight_grad(&x, &w, &dy, spec));
        }
    }
}

/// State of a BatchNorm: input, gamma, batch mean and biased variance, epsilon, and the world
/// its statistics spanned (SyncBatchNorm, decided at the forward pass).
type BnState = (
    FlexTensor,
    FlexTensor,
    FlexTensor,
    FlexTensor,
    f64,
    Option<World>,
);

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, mean, var, epsilon, sync) = ops.state;
        let g = bn_backward(
            &x,
            &values(&dy),
            &gamma,
            &mean,
            &var,
            epsilon,
            sync.as_ref(),
        );
        for (node, grad) in ops.parents.into_iter().zip(g) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// Backward of [`CpuKernels::pc_relu`] (`D` = 1) and [`CpuKernels::pc_add_relu`] (`D` = 2):
/// every parent gets the output gradient masked by the output.
#[derive(Debug)]
struct ReluBackward<const D: usize>;

impl<const D: usize> Backward<Flex, D> for ReluBackward<D> {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, D>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let dx = relu_grad(&ops.state, &dy);
        for node in ops.parents.into_iter().flatten() {
            grads.register::<Flex>(node.id, dx.clone());
        }
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn pc_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_t: usize,
        pad_b: usize,
        pad_l: usize,
        pad_r: usize,
        products: Products,
    ) -> FloatTensor<Self> {
        let spec = ConvSpec {
            stride: [stride_h, stride_w],
            padding: [(pad_t, pad_b), (pad_l, pad_r)],
            products,
        };
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), weight.into_primitive());
                let y = conv_forward(&x, &w, spec);
                prep.finish((x, w, spec), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(conv_forward(x.primitive(), weight.primitive(), spec))
            }
        }
    }

    fn pc_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        let sync = crate::collective::sync_batchnorm();
        let (y, mean, var) = bn_forward(&x, &gamma, &beta, epsilon, sync.as_ref());
        let out = match prep {
            OpsKind::Tracked(prep) => {
                prep.finish((x, gamma, mean.clone(), var.clone(), epsilon, sync), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (out, Self::from_inner(mean), Self::from_inner(var))
    }

    fn pc_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward::<1>
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = relu_forward(x.primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(relu_forward(x.primitive())),
        }
    }

    fn pc_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward::<2>
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = add_relu_forward(a.primitive(), b.primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(add_relu_forward(a.primitive(), b.primitive())),
        }
    }
}
