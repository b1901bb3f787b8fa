//! Exponential moving average of one module's parameters into another of the same structure
//! (a teacher following its student), on the device.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use std::collections::BTreeMap;

#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn leaf(&self) -> String {
        self.0.join(".")
    }
}

struct Gather {
    path: Path,
    out: BTreeMap<String, Tensor<1>>,
}

impl ModuleVisitor for Gather {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.0.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.0.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.out.insert(self.path.leaf(), t.reshape([n]));
    }
}

struct Blend<'a> {
    path: Path,
    src: &'a BTreeMap<String, Tensor<1>>,
    momentum: f64,
}

/// Running statistics follow the teacher's own forward passes, not the student.
fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

impl ModuleMapper for Blend<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.0.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.0.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.leaf();
        let Some(s) = self.src.get(&name) else {
            return param;
        };
        if is_running_stat(&name) {
            return param;
        }
        let (id, t, mapper) = param.consume();
        let dims: [usize; D] = t.dims();
        let blended = t.detach().mul_scalar(self.momentum)
            + s.clone().reshape(dims).mul_scalar(1.0 - self.momentum);
        Param::from_mapped_value(id, blended, mapper)
    }
}

/// teacher ← m·teacher + (1 − m)·student for every parameter (matched by path; BatchNorm
/// running statistics are left alone); the result carries no gradient.
pub fn ema_update<M: Module>(teacher: M, student: &M, momentum: f64) -> M {
    let mut g = Gather {
        path: Path::default(),
        out: BTreeMap::new(),
    };
    student.visit(&mut g);
    let mut b = Blend {
        path: Path::default(),
        src: &g.out,
        momentum,
    };
    teacher.map(&mut b).no_grad()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Init;
    use burn::tensor::Device;

    #[test]
    fn the_teacher_moves_towards_the_student_by_one_minus_momentum() {
        let dev = Device::flex();
        let cfg = crate::backbone::ResNetConfig {
            depth: 18,
            width: 2,
            small_stem: true,
            stem_padding: None,
            zero_init_residual: false,
        };
        let student = cfg.init(&mut Init::new(1, &dev)).unwrap();
        let teacher = cfg.init(&mut Init::new(2, &dev)).unwrap();
        let s = crate::named::named_tensors(&student);
        let t = crate::named::named_tensors(&teacher);
        let after = crate::named::named_tensors(&ema_update(teacher, &student, 0.9));
        let w = "conv1.weight";
        for i in 0..s[w].data.len() {
            let want = 0.9 * t[w].data[i] + 0.1 * s[w].data[i];
            assert!((after[w].data[i] - want).abs() < 1e-6);
        }
        let rv = "bn1.running_var";
        assert_eq!(after[rv].data, t[rv].data);
    }
}
