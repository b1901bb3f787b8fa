//! Loading golden fixtures and comparing against them with the fixtures README's tolerances.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use std::path::Path;

/// One fixture file.
pub struct Fixture {
    pub json: Value,
}

/// A tensor as stored in a fixture.
pub struct Stored {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let json = serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?;
        Ok(Self { json })
    }

    pub fn str(&self, key: &str) -> String {
        self.json
            .pointer(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    }

    pub fn param_f64(&self, name: &str) -> Result<f64, String> {
        self.json["params"][name]
            .as_f64()
            .ok_or_else(|| format!("params.{name} missing or not a number"))
    }

    pub fn param_usize(&self, name: &str) -> Result<usize, String> {
        self.json["params"][name]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("params.{name} missing or not an integer"))
    }

    pub fn param_usizes(&self, name: &str) -> Result<Vec<usize>, String> {
        self.json["params"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|v| v as usize))
                    .collect()
            })
            .ok_or_else(|| format!("params.{name} missing or not a list"))
    }

    pub fn param_bool(&self, name: &str) -> Result<bool, String> {
        self.json["params"][name]
            .as_bool()
            .ok_or_else(|| format!("params.{name} missing or not a bool"))
    }

    /// Tensor `name` of section `section` ("inputs", "outputs", "grads").
    pub fn tensor(&self, section: &str, name: &str) -> Result<Stored, String> {
        let t = &self.json[section][name];
        if t.is_null() {
            return Err(format!("{section}.{name} is missing"));
        }
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .ok_or_else(|| format!("{section}.{name}.shape missing"))?
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as usize))
            .collect();
        let data: Vec<f64> = t["data"]
            .as_array()
            .ok_or_else(|| format!("{section}.{name}.data missing"))?
            .iter()
            .map(|v| match v {
                Value::Bool(b) => *b as u8 as f64,
                other => other.as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        if data.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "{section}.{name}: data length does not match shape {shape:?}"
            ));
        }
        Ok(Stored { shape, data })
    }

    /// Integer tensor `name` of `section` as indices.
    pub fn indices(&self, section: &str, name: &str) -> Result<Vec<usize>, String> {
        Ok(self
            .tensor(section, name)?
            .data
            .iter()
            .map(|&v| v as usize)
            .collect())
    }

    /// A torch `Linear.weight` input (out × in) as burn's in × out trainable parameter.
    pub fn linear_weight(&self, name: &str, device: &Device) -> Result<Param<Tensor<2>>, String> {
        Ok(Param::from_tensor(
            self.input::<2>(name, device)?.transpose().require_grad(),
        ))
    }

    /// A 1-d input (bias, BatchNorm affine) as a trainable parameter.
    pub fn vector_param(&self, name: &str, device: &Device) -> Result<Param<Tensor<1>>, String> {
        Ok(Param::from_tensor(
            self.input::<1>(name, device)?.require_grad(),
        ))
    }

    /// Input tensor uploaded as f32.
    pub fn input<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>, String> {
        let s = self.tensor("inputs", name)?;
        if s.shape.len() != D {
            return Err(format!(
                "inputs.{name} has rank {}, expected {D}",
                s.shape.len()
            ));
        }
        let v: Vec<f32> = s.data.iter().map(|&x| x as f32).collect();
        Ok(Tensor::from_data(TensorData::new(v, s.shape), device))
    }
}

/// Result of comparing one tensor.
pub struct Compared {
    pub name: String,
    pub max_abs: f64,
    pub bound: f64,
}

impl Compared {
    pub fn ok(&self) -> bool {
        self.max_abs <= self.bound
    }
}

/// Reads a tensor back as f64.
pub fn host<const D: usize>(t: &Tensor<D>) -> (Vec<usize>, Vec<f64>) {
    let d = t.to_data().convert::<f32>();
    let shape = d.shape().to_vec();
    let v: Vec<f32> = d.try_to_vec().unwrap_or_default();
    (shape, v.into_iter().map(|x| x as f64).collect())
}

/// Float comparison: max|got − ref| ≤ 2e-5 · max|ref| + 1e-7 (the fixtures README's bound).
pub fn compare_float(
    name: &str,
    got: (Vec<usize>, Vec<f64>),
    reference: &Stored,
) -> Result<Compared, String> {
    let (shape, got) = got;
    // A torch scalar (shape []) is a one-element tensor here.
    let scalar = reference.shape.is_empty() && got.len() == 1;
    if shape != reference.shape && !scalar {
        return Err(format!(
            "{name}: shape {shape:?}, reference {:?}",
            reference.shape
        ));
    }
    let max_ref = reference.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    let max_abs = got.iter().zip(&reference.data).fold(0f64, |m, (a, b)| {
        m.max(if a.is_finite() {
            (a - b).abs()
        } else {
            f64::INFINITY
        })
    });
    Ok(Compared {
        name: name.to_string(),
        max_abs,
        bound: 2e-5 * max_ref + 1e-7,
    })
}

/// Exact comparison of integer or bool values.
pub fn compare_exact(name: &str, got: &[i64], reference: &Stored) -> Compared {
    let mismatches = if got.len() != reference.data.len() {
        got.len().max(reference.data.len())
    } else {
        got.iter()
            .zip(&reference.data)
            .filter(|(a, b)| **a as f64 != **b)
            .count()
    };
    Compared {
        name: name.to_string(),
        max_abs: mismatches as f64,
        bound: 0.0,
    }
}

/// Indices as i64, for [`compare_exact`].
pub fn as_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// Absolute comparison for gradients that are analytically zero (biases before a training BN).
pub fn compare_abs(name: &str, got: (Vec<usize>, Vec<f64>), bound: f64) -> Compared {
    Compared {
        name: name.to_string(),
        max_abs: got.1.iter().fold(0f64, |m, v| m.max(v.abs())),
        bound,
    }
}
