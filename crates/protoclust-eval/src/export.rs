//! Backbone weights under torchvision's ResNet parameter names, and back.
//!
//! `torchvision.models.resnet50().load_state_dict(...)` accepts the file with `strict=False`
//! (the classifier `fc.*` is not part of a self-supervised backbone).

use protoclust_nn::backbone::ResNet;
use protoclust_nn::io::{save_refs, IoError, OutRef, OutTensor};
use protoclust_nn::named::{named_tensors, HostTensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Maps one of our parameter paths to torchvision's name.
pub fn to_torchvision_name(ours: &str) -> String {
    ours.replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
        .replace(".gamma", ".weight")
        .replace(".beta", ".bias")
}

/// Maps a torchvision parameter name to ours (inverse of [`to_torchvision_name`] on BN/conv).
pub fn from_torchvision_name(tv: &str, is_norm: bool) -> String {
    let s = tv
        .replace(".downsample.0.", ".downsample.conv.")
        .replace(".downsample.1.", ".downsample.bn.");
    if is_norm {
        s.replace(".weight", ".gamma").replace(".bias", ".beta")
    } else {
        s
    }
}

fn is_norm_path(tv: &str) -> bool {
    let module = tv.rsplit_once('.').map(|x| x.0).unwrap_or("");
    let last = module.rsplit('.').next().unwrap_or("");
    last.starts_with("bn") || module.ends_with("downsample.1")
}

/// `num_batches_tracked` of every BatchNorm: 0, a scalar.
const NO_BATCHES: [i64; 1] = [0];

/// Backbone tensors under our paths as a torchvision state dict, borrowed (plus
/// `num_batches_tracked` = 0 per BN).
pub fn torchvision_refs(ours: &BTreeMap<String, HostTensor>) -> BTreeMap<String, OutRef<'_>> {
    let mut out = BTreeMap::new();
    for (name, t) in ours {
        let tv = to_torchvision_name(name);
        if let Some(stem) = tv.strip_suffix(".running_mean") {
            out.insert(
                format!("{stem}.num_batches_tracked"),
                OutRef::I64(&[], &NO_BATCHES),
            );
        }
        out.insert(tv, OutRef::F32(t));
    }
    out
}

/// The backbone's state dict with torchvision names (plus `num_batches_tracked` = 0 per BN).
pub fn torchvision_state_dict(backbone: &ResNet) -> BTreeMap<String, OutTensor> {
    let named = named_tensors(backbone);
    torchvision_refs(&named)
        .into_iter()
        .map(|(k, t)| {
            let owned = match t {
                OutRef::F32(h) => OutTensor::F32(h.clone()),
                OutRef::I64(s, v) => OutTensor::I64(s.to_vec(), v.to_vec()),
            };
            (k, owned)
        })
        .collect()
}

/// Writes the backbone to `path` as torchvision-named safetensors.
pub fn export_safetensors(
    backbone: &ResNet,
    path: &Path,
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    save_refs(path, &torchvision_refs(&named_tensors(backbone)), metadata)
}

/// Converts a torchvision-named state dict into our parameter paths (drops `fc.*` and
/// `num_batches_tracked`).
pub fn from_torchvision(tv: &BTreeMap<String, HostTensor>) -> BTreeMap<String, HostTensor> {
    tv.iter()
        .filter(|(k, _)| !k.starts_with("fc.") && !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| (from_torchvision_name(k, is_norm_path(k)), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use protoclust_nn::backbone::{resnet, ResNetConfig};

    #[test]
    fn resnet50_names_and_shapes_match_torchvision() {
        let cfg = ResNetConfig {
            depth: 50,
            width: 64,
            ..Default::default()
        };
        let net = resnet(&cfg, 0, &Device::flex()).unwrap();
        let sd = torchvision_state_dict(&net);
        // torchvision's resnet50 state dict has 320 entries; less fc.weight and fc.bias, 318:
        // stem 1 + 5, 16 bottlenecks × (3 convs + 3 BNs × 5), 4 downsamples × (1 + 5).
        assert_eq!(sd.len(), 6 + 16 * 18 + 4 * 6);
        assert_eq!(sd.len(), 318);
        let shape = |k: &str| match &sd[k] {
            OutTensor::F32(h) => h.shape.clone(),
            OutTensor::I64(s, _) => s.clone(),
        };
        assert_eq!(shape("conv1.weight"), vec![64, 3, 7, 7]);
        assert_eq!(shape("bn1.weight"), vec![64]);
        assert_eq!(shape("layer1.0.downsample.0.weight"), vec![256, 64, 1, 1]);
        assert_eq!(shape("layer1.0.downsample.1.running_var"), vec![256]);
        assert_eq!(shape("layer4.2.conv3.weight"), vec![2048, 512, 1, 1]);
        assert_eq!(
            shape("layer3.5.bn2.num_batches_tracked"),
            Vec::<usize>::new()
        );
        assert!(sd
            .keys()
            .all(|k| !k.contains("gamma") && !k.contains("beta") && !k.contains(".conv.")));
    }

    #[test]
    fn names_round_trip() {
        for ours in [
            "layer1.0.downsample.bn.gamma",
            "layer2.0.downsample.conv.weight",
            "bn1.beta",
            "layer4.1.conv2.weight",
            "layer4.1.bn2.running_var",
        ] {
            let tv = to_torchvision_name(ours);
            assert_eq!(from_torchvision_name(&tv, is_norm_path(&tv)), ours);
        }
    }
}
