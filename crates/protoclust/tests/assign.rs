//! `protoclust assign`: one row per image whose cluster is the method's own (as `eval
//! cluster` computes it) or k-means', with per-cluster folders and contact sheets.

mod common;

use burn::tensor::Device;
use protoclust::model_file::ModelFile;
use protoclust::runner;
use protoclust::suite::{argmax_rows, split_features};
use std::path::Path;

use common::cli as protoclust;

/// The `cluster` column of an assignments CSV, by image index.
fn clusters_of(csv: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("index,path,cluster,"));
    let mut rows: Vec<(usize, usize)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 9, "{l}");
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    rows.sort();
    assert!(
        rows.iter().enumerate().all(|(i, r)| r.0 == i),
        "one row per image"
    );
    rows.into_iter().map(|r| r.1).collect()
}

/// The method's own assignment of every image of `data`, as `eval cluster` computes it.
fn prototype_argmax(ck: &Path, data: &str) -> Vec<usize> {
    let dev = Device::flex();
    let model = ModelFile::open(ck, None, true, &dev).unwrap();
    let spec = protoclust::data_spec::DataSpec::parse(data).unwrap();
    let view = model.config.as_ref().unwrap().eval_view.clone();
    let f = split_features(&model, spec.open().unwrap(), &view, &dev).unwrap();
    argmax_rows(f.scores.as_ref().unwrap())
}

/// `protoclust assign MODEL --data DATA --out OUT EXTRA...`.
fn assign(model: &Path, data: &str, out: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "assign",
        model.to_str().unwrap(),
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    protoclust(&args)
}

#[test]
fn assign_matches_the_methods_argmax_and_kmeans_serves_exports() {
    let d = common::scratch("assign");
    let data = "synthetic:32:16:3";
    for method in ["swav", "odc", "deepclusterv2"] {
        let cfg = common::tiny_method_config(&d.join(method), method);
        let ck = runner::run(&cfg, None, true, &Device::flex())
            .unwrap()
            .last_checkpoint;
        let out = d.join(format!("{method}.csv"));
        let (ok, text) = assign(
            &ck,
            data,
            &out,
            &[
                "--copy-to",
                d.join(format!("{method}-folders")).to_str().unwrap(),
                "--sheets",
                d.join(format!("{method}-sheets")).to_str().unwrap(),
            ],
        );
        assert!(ok, "{text}");
        let got = clusters_of(&out);
        assert_eq!(got.len(), 32);
        assert_eq!(got, prototype_argmax(&ck, data), "{method}");
        let used: std::collections::BTreeSet<usize> = got.iter().copied().collect();
        let folders = std::fs::read_dir(d.join(format!("{method}-folders")))
            .unwrap()
            .count();
        let sheets = std::fs::read_dir(d.join(format!("{method}-sheets")))
            .unwrap()
            .count();
        assert_eq!((folders, sheets), (used.len(), used.len()));
        let members: usize = std::fs::read_dir(d.join(format!("{method}-folders")))
            .unwrap()
            .map(|e| std::fs::read_dir(e.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(members, 32);
        if method == "swav" {
            // JSON lines carry the same clusters; an exported backbone needs --k.
            let jl = d.join("swav.jsonl");
            let (ok, text) = assign(&ck, data, &jl, &[]);
            assert!(ok, "{text}");
            let from_json: Vec<usize> = std::fs::read_to_string(&jl)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert_eq!(v["top"].as_array().unwrap().len(), 5);
                    v["cluster"].as_u64().unwrap() as usize
                })
                .collect();
            assert_eq!(from_json, got);
            let export = d.join("backbone.safetensors");
            let (ok, text) = protoclust(&[
                "export",
                ck.to_str().unwrap(),
                "--out",
                export.to_str().unwrap(),
            ]);
            assert!(ok, "{text}");
            let (ok, text) = assign(&export, data, &d.join("x.csv"), &[]);
            assert!(!ok && text.contains("--k"), "{text}");
            let km = d.join("kmeans.csv");
            let args = |seed: &str| assign(&export, data, &km, &["--k", "4", "--seed", seed]);
            let (ok, text) = args("1");
            assert!(ok, "{text}");
            let a = clusters_of(&km);
            assert!(a.iter().all(|&c| c < 4));
            assert!(a.iter().collect::<std::collections::BTreeSet<_>>().len() > 1);
            args("1");
            assert_eq!(clusters_of(&km), a, "k-means is seeded");
        }
    }
}
