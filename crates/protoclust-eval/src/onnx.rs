//! ONNX export of a backbone: images N × 3 × H × W in, pooled features N × C out (opset 13,
//! Conv / BatchNormalization / Relu / MaxPool / Add / GlobalAveragePool / Flatten), encoded with
//! prost from the ONNX protocol-buffer schema.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use protoclust_nn::backbone::ResNet;
use protoclust_nn::named::HostTensor;

/// ONNX `OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetId {
    /// Operator domain ("" = ai.onnx).
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Opset version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// ONNX `TensorProto` (float data as raw little-endian bytes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (1 = float, 7 = int64).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Name (the initializer's input name).
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian values.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// ONNX `AttributeProto` (the int, ints and float cases).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attribute {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// FLOAT value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// INT value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// INTS value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Attribute type: 1 FLOAT, 2 INT, 7 INTS.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// ONNX `NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Node {
    /// Input names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<Attribute>,
}

/// ONNX `TensorShapeProto.Dimension`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// Fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// Symbolic size.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// ONNX `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Shape {
    /// Dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// ONNX `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorType {
    /// Element type (1 = float).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<Shape>,
}

/// ONNX `TypeProto` (the tensor case).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// Tensor type.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorType>,
}

/// ONNX `ValueInfoProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfo {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// ONNX `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Graph {
    /// Nodes in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<Node>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Weights.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfo>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfo>,
}

/// ONNX `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Model {
    /// IR version.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Producer.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Producer version.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<Graph>,
    /// Opsets used.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetId>,
}

/// Name of the graph's image input.
pub const INPUT: &str = "images";
/// Name of the graph's feature output.
pub const OUTPUT: &str = "features";

fn ints(name: &str, v: &[usize]) -> Attribute {
    Attribute {
        name: name.into(),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: 7,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[&str]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: 1,
                shape: Some(Shape {
                    dim: dims
                        .iter()
                        .map(|d| match d.parse::<i64>() {
                            Ok(v) => Dimension {
                                dim_value: Some(v),
                                dim_param: None,
                            },
                            Err(_) => Dimension {
                                dim_value: None,
                                dim_param: Some(d.to_string()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// Builds the graph node by node.
struct Builder {
    graph: Graph,
    count: usize,
}

impl Builder {
    fn weight(&mut self, name: String, t: HostTensor) -> String {
        self.graph.initializer.push(TensorProto {
            dims: t.shape.iter().map(|&d| d as i64).collect(),
            data_type: 1,
            name: name.clone(),
            raw_data: t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<Attribute>) -> String {
        self.count += 1;
        let out = format!("t{}", self.count);
        self.graph.node.push(Node {
            input: inputs,
            output: vec![out.clone()],
            name: format!("{op}_{}", self.count),
            op_type: op.into(),
            attribute: attrs,
        });
        out
    }

    fn conv(&mut self, path: &str, c: &Conv2d, x: String) -> Result<String, String> {
        let pads = match c.padding {
            PaddingConfig2d::Valid => [0, 0, 0, 0],
            PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
            PaddingConfig2d::Same => return Err(format!("{path}: 'same' padding is not exported")),
        };
        let w = self.weight(
            format!("{path}.weight"),
            HostTensor::from_tensor(&c.weight.val()),
        );
        let mut inputs = vec![x, w];
        if let Some(b) = &c.bias {
            inputs.push(self.weight(format!("{path}.bias"), HostTensor::from_tensor(&b.val())));
        }
        let attrs = vec![
            ints("kernel_shape", &c.kernel_size),
            ints("strides", &c.stride),
            ints("dilations", &c.dilation),
            ints("pads", &pads),
            Attribute {
                name: "group".into(),
                i: c.groups as i64,
                r#type: 2,
                ..Default::default()
            },
        ];
        Ok(self.node("Conv", inputs, attrs))
    }

    fn bn(&mut self, path: &str, bn: &BatchNorm, x: String) -> String {
        let inputs = vec![
            x,
            self.weight(
                format!("{path}.weight"),
                HostTensor::from_tensor(&bn.gamma.val()),
            ),
            self.weight(
                format!("{path}.bias"),
                HostTensor::from_tensor(&bn.beta.val()),
            ),
            self.weight(
                format!("{path}.running_mean"),
                HostTensor::from_tensor(&bn.running_mean.value()),
            ),
            self.weight(
                format!("{path}.running_var"),
                HostTensor::from_tensor(&bn.running_var.value()),
            ),
        ];
        let eps = Attribute {
            name: "epsilon".into(),
            f: bn.epsilon as f32,
            r#type: 1,
            ..Default::default()
        };
        self.node("BatchNormalization", inputs, vec![eps])
    }

    fn relu(&mut self, x: String) -> String {
        self.node("Relu", vec![x], Vec::new())
    }
}

/// The backbone (inference mode: BatchNorm running statistics) as an ONNX model, with
/// torchvision's parameter names on its weights.
pub fn backbone_onnx(net: &ResNet) -> Result<Model, String> {
    let mut b = Builder {
        graph: Graph {
            name: "protoclust_backbone".into(),
            input: vec![value_info(INPUT, &["batch", "3", "height", "width"])],
            output: vec![value_info(OUTPUT, &["batch", &net.out_dim().to_string()])],
            ..Default::default()
        },
        count: 0,
    };
    let mut x = b.conv("conv1", &net.conv1, INPUT.to_string())?;
    x = b.bn("bn1", &net.bn1, x);
    x = b.relu(x);
    if net.maxpool {
        x = b.node(
            "MaxPool",
            vec![x],
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
            ],
        );
    }
    for (s, stage) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
        .iter()
        .enumerate()
    {
        for (i, blk) in stage.iter().enumerate() {
            let p = format!("layer{}.{i}", s + 1);
            let identity = match &blk.downsample {
                Some(d) => {
                    let y = b.conv(&format!("{p}.downsample.0"), &d.conv, x.clone())?;
                    b.bn(&format!("{p}.downsample.1"), &d.bn, y)
                }
                None => x.clone(),
            };
            let mut y = b.conv(&format!("{p}.conv1"), &blk.conv1, x)?;
            y = b.bn(&format!("{p}.bn1"), &blk.bn1, y);
            y = b.relu(y);
            y = b.conv(&format!("{p}.conv2"), &blk.conv2, y)?;
            y = b.bn(&format!("{p}.bn2"), &blk.bn2, y);
            if let (Some(c3), Some(b3)) = (&blk.conv3, &blk.bn3) {
                y = b.relu(y);
                y = b.conv(&format!("{p}.conv3"), c3, y)?;
                y = b.bn(&format!("{p}.bn3"), b3, y);
            }
            let sum = b.node("Add", vec![y, identity], Vec::new());
            x = b.relu(sum);
        }
    }
    let pooled = b.node("GlobalAveragePool", vec![x], Vec::new());
    let flat = b.node(
        "Flatten",
        vec![pooled],
        vec![Attribute {
            name: "axis".into(),
            i: 1,
            r#type: 2,
            ..Default::default()
        }],
    );
    // Rename the last output to the graph's output name.
    if let Some(last) = b.graph.node.last_mut() {
        last.output = vec![OUTPUT.to_string()];
    }
    let _ = flat;
    Ok(Model {
        ir_version: 8,
        producer_name: "protoclust".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(b.graph),
        opset_import: vec![OperatorSetId {
            domain: String::new(),
            version: 13,
        }],
    })
}

/// The model's protobuf bytes.
pub fn encode(model: &Model) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use protoclust_nn::backbone::{resnet, ResNetConfig};

    #[test]
    fn graph_wires_every_block_and_names_weights_as_torchvision() {
        let cfg = ResNetConfig {
            depth: 18,
            width: 4,
            small_stem: true,
            stem_padding: None,
            ..Default::default()
        };
        let net = resnet(&cfg, 0, &Device::flex()).unwrap();
        let m = backbone_onnx(&net).unwrap();
        let g = m.graph.as_ref().unwrap();
        let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
        // Stem + 8 blocks × 2 + 3 downsamples.
        assert_eq!(count("Conv"), 1 + 16 + 3);
        assert_eq!(count("BatchNormalization"), 20);
        assert_eq!(count("Add"), 8);
        assert_eq!(count("MaxPool"), 0);
        assert_eq!(g.node.last().unwrap().output, vec![OUTPUT.to_string()]);
        assert!(g
            .initializer
            .iter()
            .any(|t| t.name == "layer2.0.downsample.1.running_var"));
        // Every node input is the graph input, an initializer or an earlier output.
        let mut known: std::collections::HashSet<String> =
            g.initializer.iter().map(|t| t.name.clone()).collect();
        known.insert(INPUT.into());
        for n in &g.node {
            for i in &n.input {
                assert!(known.contains(i), "{} reads undefined {i}", n.name);
            }
            known.extend(n.output.iter().cloned());
        }
        let bytes = encode(&m);
        let back: Model = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, m);
    }
}
