//! Tables from a released checkpoint's parameter names (the authors' PyTorch modules) to this
//! crate's model paths: the shared pieces (trunk, Linear, BatchNorm) each method's
//! `official.rs` builds its table from.

use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::heads::MlpConfig;
use std::collections::BTreeMap;

/// How a released tensor becomes one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// The same values and shape.
    Same,
    /// A torch `Linear.weight` (out × in) as burn's (in × out).
    Transpose,
    /// A weight-normed torch `Linear` (`nn.utils.weight_norm`, dim 0) read from its `weight_v`
    /// (the entry's name, out × in) and the `weight_g` beside it (out × 1): the K × D matrix
    /// g · v / ‖v‖ of each row, kept as it is (prototypes).
    WeightNorm,
}

impl Convert {
    /// The second tensor the conversion reads besides `official`: a weight norm's `weight_g`.
    pub fn companion(self, official: &str) -> Option<String> {
        match self {
            Convert::WeightNorm => official
                .strip_suffix("weight_v")
                .map(|stem| format!("{stem}weight_g")),
            _ => None,
        }
    }
}

/// One released tensor (name under the layout's prefix) and the path it fills in our model.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Name in the release, after its prefix.
    pub official: String,
    /// Our parameter path.
    pub ours: String,
    /// Expected shape in the release (torch layout).
    pub shape: Vec<usize>,
    /// Conversion to our layout.
    pub convert: Convert,
}

/// One of our tensors a release has no counterpart for, at a fixed value (the γ = 1, β = 0 of
/// a BatchNorm the release built with `affine=False`).
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// Our parameter path.
    pub ours: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Every element's value.
    pub value: f32,
}

/// The identity affine parameters of a BatchNorm of `c` channels at `ours`.
pub fn identity_affine(ours: &str, c: usize) -> Vec<Constant> {
    vec![
        Constant {
            ours: format!("{ours}.gamma"),
            shape: vec![c],
            value: 1.0,
        },
        Constant {
            ours: format!("{ours}.beta"),
            shape: vec![c],
            value: 0.0,
        },
    ]
}

/// Why a release's tensors do not make one of our models.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OfficialError {
    /// A tensor the architecture needs is not in the file.
    #[error("missing tensor `{0}`")]
    Missing(String),
    /// A tensor has another shape than the architecture needs.
    #[error("`{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Released name.
        key: String,
        /// What the architecture needs.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// The trunk is not a ResNet this crate builds.
    #[error("{0}")]
    Architecture(String),
}

/// The shapes of a release's tensors, named under the layout's prefix.
pub struct Released<'a> {
    /// Name → shape (torch layout).
    pub shapes: &'a BTreeMap<String, Vec<usize>>,
}

impl Released<'_> {
    /// The shape of `key`, or a missing-tensor error.
    pub fn shape(&self, key: &str) -> Result<&[usize], OfficialError> {
        self.shapes
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| OfficialError::Missing(key.to_string()))
    }

    /// Axis `axis` of `key`'s shape.
    pub fn dim(&self, key: &str, axis: usize) -> Result<usize, OfficialError> {
        let s = self.shape(key)?;
        s.get(axis).copied().ok_or_else(|| OfficialError::Shape {
            key: key.to_string(),
            expected: vec![0; axis + 1],
            found: s.to_vec(),
        })
    }

    /// Whether the release has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.shapes.contains_key(key)
    }

    /// Blocks of stage `stage` (1..=4) under `prefix`: `layerN.i.` present for i = 0, 1, ...
    fn blocks(&self, prefix: &str, stage: usize) -> usize {
        (0..)
            .take_while(|i| self.has(&format!("{prefix}layer{stage}.{i}.conv1.weight")))
            .count()
    }
}

/// The ResNet whose torchvision-named trunk is under `prefix`, and its table: every
/// convolution and BatchNorm tensor (265 of a ResNet-50), shapes from the architecture.
pub fn trunk(src: &Released, prefix: &str) -> Result<(ResNetConfig, Vec<Entry>), OfficialError> {
    let stem = format!("{prefix}conv1.weight");
    let s = src.shape(&stem)?;
    if s.len() != 4 || s[1] != 3 || !(s[2] == 7 || s[2] == 3) || s[2] != s[3] {
        return Err(OfficialError::Architecture(format!(
            "`{stem}` has shape {s:?}, expected [width, 3, 7, 7] or [width, 3, 3, 3]"
        )));
    }
    let (width, small_stem) = (s[0], s[2] == 3);
    let blocks: Vec<usize> = (1..=4).map(|n| src.blocks(prefix, n)).collect();
    let bottleneck = src.has(&format!("{prefix}layer1.0.conv3.weight"));
    let depth = match (blocks.as_slice(), bottleneck) {
        ([2, 2, 2, 2], false) => 18,
        ([3, 4, 6, 3], false) => 34,
        ([3, 4, 6, 3], true) => 50,
        (b, _) => {
            return Err(OfficialError::Architecture(format!(
                "a ResNet with {b:?} blocks per stage{}: expected ResNet-18, 34 or 50",
                if bottleneck { " (bottleneck)" } else { "" }
            )))
        }
    };
    let config = ResNetConfig {
        depth,
        width,
        small_stem,
        stem_padding: None,
        zero_init_residual: false,
    };
    if config.validate().is_err() {
        return Err(OfficialError::Architecture(format!(
            "`{stem}`: a stem of {width} channels, expected 1..=512"
        )));
    }
    Ok((config.clone(), trunk_table(&config, prefix)))
}

/// Every convolution and BatchNorm tensor of `config`'s ResNet under torchvision's names.
fn trunk_table(config: &ResNetConfig, prefix: &str) -> Vec<Entry> {
    let w = config.width;
    let k = if config.small_stem { 3 } else { 7 };
    let mut t = conv(&format!("{prefix}conv1"), "conv1", [w, 3, k, k]);
    t.extend(batch_norm(&format!("{prefix}bn1"), "bn1", w));
    let (blocks, expansion) = match config.depth {
        18 => ([2, 2, 2, 2], 1),
        34 => ([3, 4, 6, 3], 1),
        _ => ([3, 4, 6, 3], 4),
    };
    let mut cin = w;
    for (stage, &n) in blocks.iter().enumerate() {
        let planes = w << stage;
        let cout = planes * expansion;
        for i in 0..n {
            let at = format!("layer{}.{i}", stage + 1);
            let off = format!("{prefix}{at}");
            let block_in = if i == 0 { cin } else { cout };
            let shapes: Vec<[usize; 4]> = if expansion == 4 {
                vec![
                    [planes, block_in, 1, 1],
                    [planes, planes, 3, 3],
                    [cout, planes, 1, 1],
                ]
            } else {
                vec![[planes, block_in, 3, 3], [cout, planes, 3, 3]]
            };
            for (j, shape) in shapes.iter().enumerate() {
                t.extend(conv(
                    &format!("{off}.conv{}", j + 1),
                    &format!("{at}.conv{}", j + 1),
                    *shape,
                ));
                t.extend(batch_norm(
                    &format!("{off}.bn{}", j + 1),
                    &format!("{at}.bn{}", j + 1),
                    shape[0],
                ));
            }
            if i == 0 && (stage > 0 || cin != cout) {
                t.extend(conv(
                    &format!("{off}.downsample.0"),
                    &format!("{at}.downsample.conv"),
                    [cout, cin, 1, 1],
                ));
                t.extend(batch_norm(
                    &format!("{off}.downsample.1"),
                    &format!("{at}.downsample.bn"),
                    cout,
                ));
            }
        }
        cin = cout;
    }
    t
}

/// `entries` with our paths under `prefix` (a trunk inside a method's model: `backbone.`).
pub fn under(entries: Vec<Entry>, prefix: &str) -> Vec<Entry> {
    entries
        .into_iter()
        .map(|mut e| {
            e.ours = format!("{prefix}{}", e.ours);
            e
        })
        .collect()
}

fn entry(official: String, ours: String, shape: Vec<usize>, convert: Convert) -> Entry {
    Entry {
        official,
        ours,
        shape,
        convert,
    }
}

/// A bias-free convolution's weight.
pub fn conv(official: &str, ours: &str, shape: [usize; 4]) -> Vec<Entry> {
    vec![entry(
        format!("{official}.weight"),
        format!("{ours}.weight"),
        shape.to_vec(),
        Convert::Same,
    )]
}

/// A convolution's weight and bias.
pub fn conv_bias(official: &str, ours: &str, shape: [usize; 4]) -> Vec<Entry> {
    let mut t = conv(official, ours, shape);
    t.push(entry(
        format!("{official}.bias"),
        format!("{ours}.bias"),
        vec![shape[0]],
        Convert::Same,
    ));
    t
}

/// A `Linear(in, out)`: the weight transposed to burn's in × out, and the bias.
pub fn linear(official: &str, ours: &str, in_dim: usize, out_dim: usize) -> Vec<Entry> {
    let mut t = linear_weight(official, ours, in_dim, out_dim);
    t.push(entry(
        format!("{official}.bias"),
        format!("{ours}.bias"),
        vec![out_dim],
        Convert::Same,
    ));
    t
}

/// A bias-free `Linear(in, out)`'s weight, transposed to burn's in × out.
pub fn linear_weight(official: &str, ours: &str, in_dim: usize, out_dim: usize) -> Vec<Entry> {
    vec![entry(
        format!("{official}.weight"),
        format!("{ours}.weight"),
        vec![out_dim, in_dim],
        Convert::Transpose,
    )]
}

/// A K × D matrix kept as it is (prototypes, slot embeddings).
pub fn matrix(official: &str, ours: &str, rows: usize, cols: usize) -> Vec<Entry> {
    vec![entry(
        official.to_string(),
        ours.to_string(),
        vec![rows, cols],
        Convert::Same,
    )]
}

/// A vector of `n` kept as it is (a bias outside a `Linear` of ours).
pub fn vector(official: &str, ours: &str, n: usize) -> Vec<Entry> {
    vec![entry(
        official.to_string(),
        ours.to_string(),
        vec![n],
        Convert::Same,
    )]
}

/// A weight-normed K × D matrix (`{official}.weight_v` with its `weight_g`) as `ours`.
pub fn weight_normed(official: &str, ours: &str, rows: usize, cols: usize) -> Vec<Entry> {
    vec![entry(
        format!("{official}.weight_v"),
        ours.to_string(),
        vec![rows, cols],
        Convert::WeightNorm,
    )]
}

/// A BatchNorm's affine parameters (torch `weight`/`bias` as burn's `gamma`/`beta`) and
/// running statistics.
pub fn batch_norm(official: &str, ours: &str, c: usize) -> Vec<Entry> {
    let mut t = vec![
        entry(
            format!("{official}.weight"),
            format!("{ours}.gamma"),
            vec![c],
            Convert::Same,
        ),
        entry(
            format!("{official}.bias"),
            format!("{ours}.beta"),
            vec![c],
            Convert::Same,
        ),
    ];
    t.extend(batch_norm_stats(official, ours, c));
    t
}

/// A BatchNorm's running statistics only (`affine=False`: γ = 1 and β = 0 stay ours).
pub fn batch_norm_stats(official: &str, ours: &str, c: usize) -> Vec<Entry> {
    ["running_mean", "running_var"]
        .iter()
        .map(|s| {
            entry(
                format!("{official}.{s}"),
                format!("{ours}.{s}"),
                vec![c],
                Convert::Same,
            )
        })
        .collect()
}

/// An MLP head read from a release: its shape as our config, and its tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpTable {
    /// Hidden widths, output width and BatchNorm, as our `Mlp` is built.
    pub config: MlpConfig,
    /// The tensors read from the release.
    pub entries: Vec<Entry>,
    /// Zero biases of the Linears a BatchNorm follows that the release built with
    /// `bias=False` (lightly's heads): the same function, as BatchNorm removes any offset.
    pub constants: Vec<Constant>,
}

/// The table of an MLP head written as `nn.Sequential(Linear, [BatchNorm1d], ReLU, ..., Linear)`
/// under `official` (or one bare `Linear` named `official` itself when it has no hidden layer),
/// into our `Mlp` at `ours`. How many modules a hidden layer spans in the Sequential is found
/// from the names (3 with BatchNorm, 2 without).
pub fn sequential_mlp(
    src: &Released,
    official: &str,
    ours: &str,
    in_dim: usize,
) -> Result<MlpTable, OfficialError> {
    if src.has(&format!("{official}.weight")) {
        let out = src.dim(&format!("{official}.weight"), 0)?;
        return Ok(MlpTable {
            config: MlpConfig {
                hidden: vec![],
                out_dim: out,
                batch_norm: false,
            },
            entries: linear(official, &format!("{ours}.linears.0"), in_dim, out),
            constants: vec![],
        });
    }
    let bn = src.has(&format!("{official}.1.running_mean"));
    let step = if bn { 3 } else { 2 };
    let mut hidden = Vec::new();
    let mut entries = Vec::new();
    let mut constants = Vec::new();
    let mut dim = in_dim;
    let mut idx = 0;
    loop {
        let key = format!("{official}.{idx}.weight");
        let out = src.dim(&key, 0)?;
        let layer = hidden.len();
        let last = !src.has(&format!("{official}.{}.weight", idx + step));
        let (from, to) = (
            format!("{official}.{idx}"),
            format!("{ours}.linears.{layer}"),
        );
        if bn && !last && !src.has(&format!("{from}.bias")) {
            entries.extend(linear_weight(&from, &to, dim, out));
            constants.push(Constant {
                ours: format!("{to}.bias"),
                shape: vec![out],
                value: 0.0,
            });
        } else {
            entries.extend(linear(&from, &to, dim, out));
        }
        dim = out;
        if last {
            let config = MlpConfig {
                hidden,
                out_dim: out,
                batch_norm: bn,
            };
            return Ok(MlpTable {
                config,
                entries,
                constants,
            });
        }
        if bn {
            entries.extend(batch_norm(
                &format!("{official}.{}", idx + 1),
                &format!("{ours}.norms.{layer}"),
                out,
            ));
        }
        hidden.push(out);
        idx += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use protoclust_nn::named::named_tensors;

    fn shapes_of(entries: &[Entry]) -> BTreeMap<String, Vec<usize>> {
        entries
            .iter()
            .map(|e| (e.official.clone(), e.shape.clone()))
            .collect()
    }

    #[test]
    fn the_trunk_table_names_every_tensor_of_our_resnets_with_their_shapes() {
        for (depth, width, small_stem) in [(50, 8, false), (18, 4, true), (34, 2, false)] {
            let cfg = ResNetConfig {
                depth,
                width,
                small_stem,
                stem_padding: None,
                zero_init_residual: false,
            };
            let net = protoclust_nn::backbone::resnet(&cfg, 0, &Device::flex()).unwrap();
            let ours = named_tensors(&net);
            let table = trunk_table(&cfg, "module.");
            assert_eq!(table.len(), ours.len(), "depth {depth}");
            for e in &table {
                let o = &ours[&e.ours];
                assert_eq!(o.shape, e.shape, "{}", e.ours);
            }
            // The table detects its own architecture back from the shapes.
            let shapes = shapes_of(&table);
            let (found, again) = trunk(&Released { shapes: &shapes }, "module.").unwrap();
            assert_eq!(found, cfg);
            assert_eq!(again, table);
        }
        let r50 = ResNetConfig {
            depth: 50,
            width: 64,
            ..Default::default()
        };
        // 53 convolutions and 53 BatchNorms of four tensors each.
        assert_eq!(trunk_table(&r50, "").len(), 265);
    }

    #[test]
    fn another_architecture_is_named_not_guessed() {
        let cfg = ResNetConfig {
            depth: 50,
            width: 4,
            ..Default::default()
        };
        let mut shapes = shapes_of(&trunk_table(&cfg, ""));
        // A ResNet-101's third stage.
        for i in 6..23 {
            shapes.insert(format!("layer3.{i}.conv1.weight"), vec![16, 64, 1, 1]);
        }
        let err = trunk(&Released { shapes: &shapes }, "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[3, 4, 23, 3]") && err.contains("ResNet-18, 34 or 50"),
            "{err}"
        );
        let err = trunk(
            &Released {
                shapes: &BTreeMap::new(),
            },
            "module.",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "missing tensor `module.conv1.weight`");
    }

    #[test]
    fn sequential_heads_are_read_with_and_without_batch_norm() {
        let with_bn = [
            ("h.0.weight", vec![6, 4]),
            ("h.0.bias", vec![6]),
            ("h.1.weight", vec![6]),
            ("h.1.running_mean", vec![6]),
            ("h.3.weight", vec![3, 6]),
        ];
        let shapes: BTreeMap<String, Vec<usize>> = with_bn
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect();
        let head = sequential_mlp(&Released { shapes: &shapes }, "h", "p", 4).unwrap();
        let c = &head.config;
        assert_eq!(
            (c.hidden.clone(), c.out_dim, c.batch_norm),
            (vec![6], 3, true)
        );
        assert!(head.constants.is_empty());
        let t = head.entries;
        let names: Vec<_> = t
            .iter()
            .map(|e| (e.official.as_str(), e.ours.as_str()))
            .collect();
        assert!(names.contains(&("h.1.weight", "p.norms.0.gamma")));
        assert!(names.contains(&("h.3.weight", "p.linears.1.weight")));
        assert_eq!(
            t.iter().find(|e| e.official == "h.3.weight").unwrap().shape,
            vec![3, 6]
        );
        let without: BTreeMap<String, Vec<usize>> =
            [("c.0.weight", vec![5, 4]), ("c.2.weight", vec![2, 5])]
                .iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect();
        let head = sequential_mlp(&Released { shapes: &without }, "c", "q", 4).unwrap();
        let c = &head.config;
        assert_eq!(
            (
                c.hidden.clone(),
                c.out_dim,
                c.batch_norm,
                head.entries.len()
            ),
            (vec![5], 2, false, 4)
        );
        // Without a bias only where a BatchNorm follows; none on the last Linear.
        let mut lightly = shapes.clone();
        lightly.remove("h.0.bias");
        let head = sequential_mlp(&Released { shapes: &lightly }, "h", "p", 4).unwrap();
        assert_eq!(head.constants.len(), 1);
        assert_eq!(head.constants[0].ours, "p.linears.0.bias");
        assert!(!head.entries.iter().any(|e| e.official == "h.0.bias"));
        let mut no_last_bias = shapes.clone();
        no_last_bias.remove("h.3.bias");
        let head = sequential_mlp(
            &Released {
                shapes: &no_last_bias,
            },
            "h",
            "p",
            4,
        )
        .unwrap();
        assert!(head.entries.iter().any(|e| e.official == "h.3.bias"));
    }
}
