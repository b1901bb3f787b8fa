//! Property-based fuzzing of every parser that reads user files or text: CIFAR and STL-10
//! binaries, image decoding, TOML configs with `--set`, data specs, list files and
//! checkpoints/exports. Each must return a value or an error, never panic. The case count is
//! bounded (`PROPTEST_CASES`, default below) so the targets run in CI.

use proptest::prelude::*;
use protoclust::config;
use protoclust::data_spec::DataSpec;
use protoclust_data::source::cifar::CifarKind;
use protoclust_data::source::{Cifar, ImageFiles, Source, Stl10};
use std::path::{Path, PathBuf};

/// Cases per target unless PROPTEST_CASES says otherwise.
const CASES: u32 = 192;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Real config fields, for overrides with odd values.
const KEYS: &[&str] = &[
    "loader.batch_size",
    "swav.prototypes",
    "swav.queue_length",
    "swav.temperature",
    "swav.epsilon",
    "swav.crops_for_assign",
    "swav.views.crops",
    "swav.backbone.width",
    "swav.backbone.depth",
    "swav.projector.out_dim",
    "odc.clusters",
    "odc.min_cluster",
    "deepcluster.clusters",
    "jigclu.views.grid",
    "jigclu.views.size",
    "slotcon.prototypes",
    "slotcon.views.size",
    "optim.lr",
    "optim.momentum",
    "schedule.warmup_epochs",
    "train.epochs",
    "data.kind",
    "data.size",
    "data.len",
    "eval_view.size",
    "eval_view.resize",
];

/// Odd values: zero, huge, negative, non-finite, wrong types, empty arrays.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "18446744073709551615",
    "1e300",
    "nan",
    "inf",
    "-0.0",
    "\"\"",
    "\"folder\"",
    "[]",
    "[0, 99]",
    "[{count = 0, size = 0, scale = [0.0, 0.0]}]",
    "[{count = 2, size = 4096, scale = [1.0, 0.5]}]",
    "{}",
    "true",
];

/// A valid small PNG, to be mutated.
fn png_bytes() -> Vec<u8> {
    let img = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A valid small checkpoint-like safetensors file, to be mutated.
fn safetensors_bytes() -> Vec<u8> {
    let mut t = std::collections::BTreeMap::new();
    t.insert(
        "model/w".to_string(),
        protoclust_nn::io::OutTensor::F32(protoclust_nn::named::HostTensor {
            shape: vec![2, 3],
            data: vec![0.5; 6],
        }),
    );
    let mut meta = std::collections::HashMap::new();
    meta.insert("protoclust".into(), "{\"format\":1}".into());
    protoclust_nn::io::to_safetensors(&t, meta).unwrap()
}

/// A released checkpoint written by the authors' code (legacy container, `module.` dict), and
/// one in the ZIP container with nested dicts (JigClu's `state_dict` and `optimizer`).
fn release_bytes(zip: bool) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/released");
    std::fs::read(dir.join(if zip {
        "jigclu_w8.pth"
    } else {
        "bad_shape.pth.tar"
    }))
    .unwrap()
}

/// Applies byte edits (position, value) and a truncation to `base`.
fn mutate(mut base: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, v) in edits {
        if !base.is_empty() {
            let i = at % base.len();
            base[i] ^= v;
        }
    }
    let keep = base.len().saturating_sub(cut % (base.len() + 1));
    base.truncate(keep);
    base
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn cifar_and_stl_binaries_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8000), labels in proptest::collection::vec(any::<u8>(), 0..8)) {
        let d = scratch("bin");
        let f = d.join("batch.bin");
        std::fs::write(&f, &bytes).unwrap();
        for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
            if let Ok(c) = Cifar::open(kind, std::slice::from_ref(&f)) {
                for i in 0..c.len().min(3) {
                    let _ = c.get(i);
                }
            }
        }
        let y = d.join("y.bin");
        std::fs::write(&y, &labels).unwrap();
        if let Ok(s) = Stl10::open(&f, Some(&y)) {
            let _ = s.get(0);
        }
        let _ = Stl10::open(&f, None);
    }

    #[test]
    fn image_decoding_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12), cut in any::<usize>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let d = scratch("img");
        let mut bytes = mutate(png_bytes(), &edits, cut);
        if edits.len() % 3 == 0 {
            bytes.extend_from_slice(&junk);
        }
        let f = d.join("x.png");
        std::fs::write(&f, &bytes).unwrap();
        let _ = protoclust_data::source::files::decode(&f);
    }

    #[test]
    fn configs_and_overrides_never_panic(text in "[\\[\\]a-z_.=\"0-9 \n-]{0,120}", set in "[a-z_.=\\[\\]{}0-9\"-]{0,40}") {
        let _ = config::parse(&text, "fuzz.toml", std::slice::from_ref(&set));
        let _ = config::parse("[swav]\nprototypes = 100\n", "fuzz.toml", &[set]);
    }

    #[test]
    fn overrides_of_real_fields_with_odd_values_never_panic(
        picks in proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 1..5),
        method in 0..5usize,
    ) {
        let mut sets: Vec<String> = picks
            .iter()
            .map(|&(k, v)| format!("{}={}", KEYS[k], VALUES[v]))
            .collect();
        sets.push(format!(
            "method=\"{}\"",
            ["swav", "odc", "deepcluster", "jigclu", "slotcon"][method]
        ));
        let _ = config::parse("", "fuzz.toml", &sets);
    }

    #[test]
    fn data_specs_never_panic(spec in "[a-z0-9:,./_-]{0,40}") {
        let _ = DataSpec::parse(&spec);
    }

    #[test]
    fn list_files_never_panic(text in "[a-z0-9,./# \n\r-]{0,200}") {
        let d = scratch("list");
        std::fs::write(d.join("a.png"), png_bytes()).unwrap();
        let f = d.join("l.csv");
        std::fs::write(&f, &text).unwrap();
        if let Ok(l) = ImageFiles::open_list(&f) {
            for i in 0..l.len().min(3) {
                let _ = l.get(i);
            }
        }
    }

    #[test]
    fn checkpoints_and_exports_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), cut in any::<usize>()) {
        let d = scratch("ck");
        let f = d.join("c.safetensors");
        std::fs::write(&f, mutate(safetensors_bytes(), &edits, cut)).unwrap();
        let _ = protoclust_nn::io::load(&f);
        let _ = protoclust_train::Checkpoint::load(&f);
        let _ = protoclust::model_file::load_backbone(&f, &burn::tensor::Device::flex());
    }

    /// The PyTorch reader and the release detection on mutated released files: edits land in
    /// the first 16 KiB (the pickles, the ZIP headers) or anywhere, then a truncation.
    #[test]
    fn released_checkpoints_never_panic(zip in any::<bool>(), head in proptest::collection::vec((0usize..16384, any::<u8>()), 0..6), anywhere in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3), cut in any::<usize>(), keep_whole in any::<bool>()) {
        let d = scratch("release");
        let f = d.join(if zip { "r.pth" } else { "r.pth.tar" });
        let mut edits = head;
        edits.extend(anywhere);
        let cut = if keep_whole { 0 } else { cut };
        std::fs::write(&f, mutate(release_bytes(zip), &edits, cut)).unwrap();
        let _ = protoclust::import::import(&f, None);
    }
}
