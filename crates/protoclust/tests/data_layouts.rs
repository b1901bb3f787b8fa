//! Data as users have it: Tiny-ImageNet-style nested class folders with junk files, flat
//! folders, unlabelled trees and list files train, and the labelled ones evaluate.

mod common;

use std::path::Path;

/// A 16-px image of class `c`: a bright square whose place depends on the class, on noise.
fn write_image(path: &Path, c: usize, i: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        let inside = (x as usize / 8) == c % 2 && (y as usize / 8) == c / 2;
        let n = ((x as usize * 7 + y as usize * 13 + i * 31) % 40) as u8;
        if inside {
            image::Rgb([220 - n, 200, 180 + n / 2])
        } else {
            image::Rgb([n, 30 + n, 60])
        }
    });
    img.save(path).unwrap();
}

use common::cli as protoclust;

/// Trains the tiny SwAV config on `data` (a `--set data...` pair) and returns the checkpoint.
fn train_on(dir: &Path, kind: &str, path: &Path) -> (std::path::PathBuf, String) {
    let run = dir.join(format!("run-{kind}"));
    let c = common::tiny_config(&run, 1);
    let cfg = dir.join(format!("{kind}.toml"));
    std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
    let (ok, out) = protoclust(&[
        "train",
        cfg.to_str().unwrap(),
        "--quiet",
        "--set",
        &format!("data.kind={kind:?}"),
        "--set",
        &format!("data.paths=[{:?}]", path.to_str().unwrap()),
    ]);
    assert!(ok, "training on {kind}:{} failed:\n{out}", path.display());
    (run.join("checkpoints/last.safetensors"), out)
}

#[test]
fn nested_flat_unlabelled_and_listed_images_train_and_evaluate() {
    let d = common::scratch("layouts");
    // Tiny-ImageNet's train layout: train/<wnid>/images/*.JPEG beside <wnid>_boxes.txt.
    let tin = d.join("tiny/train");
    for c in 0..4 {
        let wnid = format!("n0{c}");
        for i in 0..8 {
            write_image(
                &tin.join(&wnid)
                    .join("images")
                    .join(format!("{wnid}_{i}.png")),
                c,
                i,
            );
        }
        std::fs::write(tin.join(&wnid).join(format!("{wnid}_boxes.txt")), "0 0 8 8").unwrap();
    }
    std::fs::write(tin.join(".DS_Store"), "junk").unwrap();
    let (ck, out) = train_on(&d, "folder", &tin);
    assert!(
        out.matches("skipped 5 files that are not images (.txt: 4, hidden: 1)")
            .count()
            == 1,
        "{out}"
    );
    let spec = format!("folder:{}", tin.display());
    let (ok, out) = protoclust(&[
        "eval",
        "knn",
        ck.to_str().unwrap(),
        "--train",
        &spec,
        "--test",
        &spec,
        "--k",
        "5",
        "--t",
        "0.1",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("32") && out.contains('%'), "{out}");

    // The same images as an unlabelled tree: training works, kNN says which split lacks labels.
    let (ck_u, _) = train_on(&d, "folder-unlabelled", &tin);
    let unl = format!("folder-unlabelled:{}", tin.display());
    let (ok, out) = protoclust(&[
        "eval",
        "knn",
        ck_u.to_str().unwrap(),
        "--train",
        &unl,
        "--test",
        &spec,
    ]);
    assert!(!ok && out.contains("train split has no labels"), "{out}");

    // A flat folder (CIFAR PNGs exported without classes).
    let flat = d.join("flat");
    for i in 0..24 {
        write_image(&flat.join(format!("{i:05}.png")), i % 4, i);
    }
    train_on(&d, "folder", &flat);

    // A curated list with labels, relative to the list's folder.
    let mut list = String::from("path,label\n");
    for c in 0..4 {
        for i in 0..8 {
            list.push_str(&format!("tiny/train/n0{c}/images/n0{c}_{i}.png,class{c}\n"));
        }
    }
    std::fs::write(d.join("subset.csv"), list).unwrap();
    let (ck_l, _) = train_on(&d, "list", &d.join("subset.csv"));
    let lspec = format!("list:{}", d.join("subset.csv").display());
    let (ok, out) = protoclust(&[
        "eval",
        "knn",
        ck_l.to_str().unwrap(),
        "--train",
        &lspec,
        "--test",
        &lspec,
        "--k",
        "5",
        "--t",
        "0.1",
    ]);
    assert!(ok, "{out}");
}
