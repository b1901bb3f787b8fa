//! Named access to a module's float tensors (parameters and running statistics).
//!
//! One mechanism serves checkpoints, export and optimiser state: each float tensor is known by
//! its dotted module path (`layer1.0.conv1.weight`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};
use std::collections::BTreeMap;

/// A host copy of a tensor: shape and f32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Reads a device tensor back to the host as f32.
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> Self {
        Self {
            shape: t.dims().to_vec(),
            data: crate::ops::host::to_f32(t.clone()),
        }
    }

    /// Uploads to `device` as a rank-D tensor (the caller guarantees the rank).
    pub fn to_tensor<const D: usize>(&self, device: &burn::tensor::Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn leaf(&self) -> String {
        self.0.join(".")
    }
}

struct Collect {
    path: PathStack,
    out: BTreeMap<String, HostTensor>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out
            .insert(self.path.leaf(), HostTensor::from_tensor(&param.val()));
    }
}

/// Every float tensor of `module` by dotted path.
pub fn named_tensors<M: Module>(module: &M) -> BTreeMap<String, HostTensor> {
    let mut v = Collect {
        path: PathStack::default(),
        out: BTreeMap::new(),
    };
    module.visit(&mut v);
    v.out
}

struct Ids {
    path: PathStack,
    out: BTreeMap<ParamId, String>,
}

impl ModuleVisitor for Ids {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.insert(param.id, self.path.leaf());
    }
}

/// Map from parameter id to dotted path, for every float tensor of `module`.
pub fn param_paths<M: Module>(module: &M) -> BTreeMap<ParamId, String> {
    let mut v = Ids {
        path: PathStack::default(),
        out: BTreeMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Why named tensors could not be loaded into a module.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoadError {
    /// A tensor the module needs is not in the source.
    #[error("tensor `{0}` is missing")]
    Missing(String),
    /// A tensor has a different shape than the module's.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    Shape {
        /// Dotted path.
        name: String,
        /// Shape in the source.
        got: Vec<usize>,
        /// Shape in the module.
        expected: Vec<usize>,
    },
}

struct Load<'a> {
    path: PathStack,
    src: &'a BTreeMap<String, HostTensor>,
    errors: Vec<LoadError>,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.leaf();
        let Some(host) = self.src.get(&name) else {
            self.errors.push(LoadError::Missing(name));
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let expected = tensor.dims().to_vec();
        if host.shape != expected {
            self.errors.push(LoadError::Shape {
                name,
                got: host.shape.clone(),
                expected,
            });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let grad = tensor.is_require_grad();
        let mut t: Tensor<D> = host.to_tensor(&tensor.device());
        if grad {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Replaces every float tensor of `module` by the source tensor of the same path, keeping
/// parameter ids; fails (with the first problem) if one is missing or mis-shaped.
pub fn load_named<M: Module>(
    module: M,
    src: &BTreeMap<String, HostTensor>,
) -> Result<M, LoadError> {
    let mut m = Load {
        path: PathStack::default(),
        src,
        errors: Vec::new(),
    };
    let module = module.map(&mut m);
    match m.errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(module),
    }
}
