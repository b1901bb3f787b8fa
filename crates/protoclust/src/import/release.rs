//! Which release a checkpoint is, told from its tensor names, and where its model starts.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The layouts `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Release {
    /// facebookresearch/swav `*_pretrain.pth.tar`: `module.` trunk, projection head, prototypes.
    Swav,
    /// facebookresearch/swav `deepclusterv2_*_pretrain.pth.tar`: three prototype heads.
    Deepclusterv2,
    /// dvlab-research/JigsawClustering `JigClu_200e.pth`: `state_dict`, `module.encoder.`.
    Jigclu,
    /// CVMI-Lab/SlotCon `ckpt_epoch_E.pth`: `model`, student and teacher.
    Slotcon,
    /// mmselfsup ODC: `state_dict`, `backbone.`, `neck.fc0/bn0/fc1`, `head.fc_cls`.
    Odc,
    /// mmselfsup SwAV: `state_dict`, `backbone.`, `neck.projection_neck`, `head.(loss.)prototypes`.
    MmselfsupSwav,
    /// lightly SwAV `.ckpt`: `state_dict`, `backbone.`, `projection_head.layers`,
    /// `prototypes.heads.0` (a Linear with a bias).
    LightlySwav,
    /// solo-learn SwAV `.ckpt`: `state_dict`, `backbone.`, `projector`, weight-normed
    /// `prototypes.weight_g/_v`.
    SoloSwav,
    /// solo-learn DeepCluster-v2 `.ckpt`: `state_dict`, `backbone.`, `projector`,
    /// `prototypes.{i}.weight`.
    SoloDeepclusterv2,
    /// VISSL SwAV `.torch`: `classy_state_dict.base_model.model.`, `trunk._feature_blocks.`,
    /// `heads.0.projection_head`, `heads.0.prototypes0`.
    VisslSwav,
    /// VISSL DeepCluster-v2 `.torch`: as VISSL SwAV with `heads.0.prototypes{i}`, i > 0 too.
    VisslDeepclusterv2,
    /// A ResNet trunk alone under any prefix (torchvision, OpenSelfSup, SlotCon's backbone-only
    /// files, lightly/solo-learn `backbone.`, VISSL `trunk._feature_blocks.`).
    Backbone,
}

impl Release {
    /// The method whose model the release fills (`None`: a backbone alone).
    pub fn method(self) -> Option<&'static str> {
        match self {
            Release::Swav
            | Release::MmselfsupSwav
            | Release::LightlySwav
            | Release::SoloSwav
            | Release::VisslSwav => Some("swav"),
            Release::Deepclusterv2 | Release::SoloDeepclusterv2 | Release::VisslDeepclusterv2 => {
                Some("deepclusterv2")
            }
            Release::Jigclu => Some("jigclu"),
            Release::Slotcon => Some("slotcon"),
            Release::Odc => Some("odc"),
            Release::Backbone => None,
        }
    }

    /// The name `--release` takes.
    pub fn name(self) -> &'static str {
        match self {
            Release::Swav => "swav",
            Release::Deepclusterv2 => "deepclusterv2",
            Release::Jigclu => "jigclu",
            Release::Slotcon => "slotcon",
            Release::Odc => "odc",
            Release::MmselfsupSwav => "mmselfsup-swav",
            Release::LightlySwav => "lightly-swav",
            Release::SoloSwav => "solo-swav",
            Release::SoloDeepclusterv2 => "solo-deepclusterv2",
            Release::VisslSwav => "vissl-swav",
            Release::VisslDeepclusterv2 => "vissl-deepclusterv2",
            Release::Backbone => "backbone",
        }
    }

    /// The tensor whose presence under a prefix marks this release.
    fn marker(self) -> &'static str {
        match self {
            Release::Swav => "prototypes.weight",
            Release::Deepclusterv2 => "prototypes.prototypes0.weight",
            Release::Jigclu => "fc_loc.weight",
            Release::Slotcon => "grouping_k.slot_embed.weight",
            Release::Odc => "head.fc_cls.weight",
            Release::MmselfsupSwav => "neck.projection_neck.0.weight",
            Release::LightlySwav => "prototypes.heads.0.weight",
            Release::SoloSwav => "prototypes.weight_v",
            Release::SoloDeepclusterv2 => "prototypes.0.weight",
            Release::VisslSwav => "heads.0.prototypes0.weight",
            Release::VisslDeepclusterv2 => "heads.0.prototypes1.weight",
            Release::Backbone => "layer1.0.conv1.weight",
        }
    }

    /// The prefix before the model's own names for a file whose marker is `key`.
    fn prefix_of(self, key: &str) -> Option<String> {
        let p = key.strip_suffix(self.marker())?;
        (p.is_empty() || p.ends_with('.')).then(|| p.to_string())
    }

    /// The trunk's position under the model prefix.
    pub fn trunk(self) -> &'static str {
        match self {
            Release::Swav | Release::Deepclusterv2 | Release::Jigclu | Release::Backbone => "",
            Release::Slotcon => "encoder_k.",
            Release::Odc
            | Release::MmselfsupSwav
            | Release::LightlySwav
            | Release::SoloSwav
            | Release::SoloDeepclusterv2 => "backbone.",
            Release::VisslSwav | Release::VisslDeepclusterv2 => "trunk._feature_blocks.",
        }
    }
}

/// The order detection tries: specific heads first, a bare trunk last.
const ORDER: [Release; 12] = [
    Release::VisslDeepclusterv2,
    Release::VisslSwav,
    Release::LightlySwav,
    Release::SoloSwav,
    Release::SoloDeepclusterv2,
    Release::Deepclusterv2,
    Release::Slotcon,
    Release::Jigclu,
    Release::Odc,
    Release::MmselfsupSwav,
    Release::Swav,
    Release::Backbone,
];

/// The release (`forced`, or detected from the names) and its model prefix. Exact prefixes: a
/// name counts only when the release's marker and its trunk's stem are both under one prefix.
pub fn detect(
    shapes: &BTreeMap<String, Vec<usize>>,
    forced: Option<Release>,
) -> Result<(Release, String)> {
    let candidates: Vec<Release> = match forced {
        Some(r) => vec![r],
        None => ORDER.to_vec(),
    };
    for r in candidates {
        let mut prefixes: Vec<String> = shapes
            .keys()
            .filter_map(|k| r.prefix_of(k))
            .filter(|p| shapes.contains_key(&format!("{p}{}conv1.weight", r.trunk())))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        // SwAV's marker also ends mmselfsup's `head.prototypes.weight`.
        if r == Release::Swav {
            prefixes.retain(|p| {
                shapes.contains_key(&format!("{p}projection_head.0.weight"))
                    || shapes.contains_key(&format!("{p}projection_head.weight"))
            });
        }
        match prefixes.as_slice() {
            [] => continue,
            [p] => return Ok((r, p.clone())),
            many => bail!(
                "{} trunks under the prefixes {}: name the one to read",
                many.len(),
                many.iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let sample: Vec<&str> = shapes.keys().take(4).map(String::as_str).collect();
    match forced {
        Some(r) => bail!(
            "not a {} release: no `{}` beside a ResNet trunk (names start {:?})",
            r.name(),
            r.marker(),
            sample
        ),
        None => bail!(
            "no known layout: no ResNet trunk (`conv1.weight`, `layer1.0.conv1.weight`) under any \
             prefix among {} tensors (names start {:?})",
            shapes.len(),
            sample
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(keys: &[&str]) -> BTreeMap<String, Vec<usize>> {
        keys.iter().map(|k| (k.to_string(), vec![1])).collect()
    }

    #[test]
    fn each_layout_is_told_from_its_names() {
        let cases: [(&[&str], Release, &str); 11] = [
            (
                &[
                    "module.conv1.weight",
                    "module.layer1.0.conv1.weight",
                    "module.projection_head.0.weight",
                    "module.prototypes.weight",
                ],
                Release::Swav,
                "module.",
            ),
            (
                &[
                    "module.conv1.weight",
                    "module.layer1.0.conv1.weight",
                    "module.prototypes.prototypes0.weight",
                ],
                Release::Deepclusterv2,
                "module.",
            ),
            (
                &[
                    "state_dict.module.encoder.conv1.weight",
                    "state_dict.module.encoder.layer1.0.conv1.weight",
                    "state_dict.module.encoder.fc_loc.weight",
                ],
                Release::Jigclu,
                "state_dict.module.encoder.",
            ),
            (
                &[
                    "model.module.encoder_k.conv1.weight",
                    "model.module.encoder_q.conv1.weight",
                    "model.module.encoder_k.layer1.0.conv1.weight",
                    "model.module.encoder_q.layer1.0.conv1.weight",
                    "model.module.grouping_k.slot_embed.weight",
                ],
                Release::Slotcon,
                "model.module.",
            ),
            (
                &[
                    "state_dict.backbone.conv1.weight",
                    "state_dict.backbone.layer1.0.conv1.weight",
                    "state_dict.head.prototypes.weight",
                    "state_dict.neck.projection_neck.0.weight",
                ],
                Release::MmselfsupSwav,
                "state_dict.",
            ),
            (
                &[
                    "state_dict.backbone.conv1.weight",
                    "state_dict.backbone.layer1.0.conv1.weight",
                ],
                Release::Backbone,
                "state_dict.backbone.",
            ),
            (
                &[
                    "state_dict.backbone.conv1.weight",
                    "state_dict.backbone.layer1.0.conv1.weight",
                    "state_dict.projection_head.layers.0.weight",
                    "state_dict.prototypes.heads.0.weight",
                    "state_dict.prototypes.heads.0.bias",
                ],
                Release::LightlySwav,
                "state_dict.",
            ),
            (
                &[
                    "state_dict.backbone.conv1.weight",
                    "state_dict.backbone.layer1.0.conv1.weight",
                    "state_dict.prototypes.weight_g",
                    "state_dict.prototypes.weight_v",
                ],
                Release::SoloSwav,
                "state_dict.",
            ),
            (
                &[
                    "state_dict.backbone.conv1.weight",
                    "state_dict.backbone.layer1.0.conv1.weight",
                    "state_dict.prototypes.0.weight",
                    "state_dict.prototypes.1.weight",
                ],
                Release::SoloDeepclusterv2,
                "state_dict.",
            ),
            (
                &[
                    "classy_state_dict.base_model.model.trunk._feature_blocks.conv1.weight",
                    "classy_state_dict.base_model.model.trunk._feature_blocks.layer1.0.conv1.weight",
                    "classy_state_dict.base_model.model.heads.0.prototypes0.weight",
                ],
                Release::VisslSwav,
                "classy_state_dict.base_model.model.",
            ),
            (
                &[
                    "classy_state_dict.base_model.model.trunk._feature_blocks.conv1.weight",
                    "classy_state_dict.base_model.model.trunk._feature_blocks.layer1.0.conv1.weight",
                    "classy_state_dict.base_model.model.heads.0.prototypes0.weight",
                    "classy_state_dict.base_model.model.heads.0.prototypes1.weight",
                ],
                Release::VisslDeepclusterv2,
                "classy_state_dict.base_model.model.",
            ),
        ];
        for (keys, release, prefix) in cases {
            assert_eq!(
                detect(&names(keys), None).unwrap(),
                (release, prefix.to_string())
            );
        }
    }

    #[test]
    fn prefixes_are_matched_exactly_and_ambiguity_is_an_error() {
        // `xbackbone.` is not `backbone.`: no character stripping.
        let shapes = names(&["xconv1.weight", "layer1.0.conv1.weight"]);
        assert!(detect(&shapes, None).is_err());
        let two = names(&[
            "a.conv1.weight",
            "a.layer1.0.conv1.weight",
            "b.conv1.weight",
            "b.layer1.0.conv1.weight",
        ]);
        let err = detect(&two, None).unwrap_err().to_string();
        assert!(err.contains("`a.`") && err.contains("`b.`"), "{err}");
        let err = detect(&names(&["fc.weight"]), Some(Release::Swav))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("not a swav release"), "{err}");
    }
}
