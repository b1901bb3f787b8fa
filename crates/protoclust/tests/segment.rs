//! `eval segment` end to end on a few real CamVid frames (skipped without ../shared/data), and
//! its clear errors on a broken image+mask set.

mod common;

use std::path::Path;
use std::process::Command;

fn protoclust(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn link_first(src: &Path, dst: &Path, n: usize) -> Vec<String> {
    std::fs::create_dir_all(dst).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.truncate(n);
    for name in &names {
        std::os::unix::fs::symlink(src.join(name), dst.join(name)).unwrap();
    }
    names
}

const TINY: &str = "method = \"slotcon\"\n[slotcon]\nprototypes = 4\n[slotcon.backbone]\ndepth = 18\nwidth = 4\nsmall_stem = true\n[slotcon.projector]\nhidden = 8\nout_dim = 8\n[slotcon.predictor]\nhidden = 8\n[slotcon.views]\nsize = 32\n";

#[test]
fn segment_scores_camvid_frames_and_draws_panels() {
    let Some(data) = common::shared_data() else {
        eprintln!("skipped: ../shared/data is missing (CamVid frames needed)");
        return;
    };
    let d = common::scratch("segment-camvid");
    let (images, masks) = (d.join("images"), d.join("masks"));
    let names = link_first(&data.join("camvid/val"), &images, 3);
    std::fs::create_dir_all(&masks).unwrap();
    for n in &names {
        std::os::unix::fs::symlink(data.join("camvid/valannot").join(n), masks.join(n)).unwrap();
    }
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = d.join("panels");
    let args = [
        "eval",
        "segment",
        cfg.to_str().unwrap(),
        "--random-init",
        "--images",
        images.to_str().unwrap(),
        "--masks",
        masks.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--panels",
        "2",
    ];
    let (ok, stdout, stderr) = protoclust(&args);
    assert!(ok, "{stderr}");
    let miou: f64 = stdout
        .split("mIoU ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no mIoU in: {stdout}"));
    assert!((0.0..=100.0).contains(&miou) && miou > 0.0, "{stdout}");
    let pngs = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count()
    };
    assert_eq!(pngs(&out), 2);
    // The default mode also scores SlotCon's prototypes, with panels of their own.
    assert!(stdout.contains("prototypes: argmax of 4"), "{stdout}");
    // panels + regions.png: a row of region crops (96 px, 6 columns) per prototype listed.
    assert_eq!(pngs(&out.join("prototypes")), 3);
    let listed = stdout
        .split("prototype regions")
        .nth(1)
        .unwrap_or_else(|| panic!("no region rows in: {stdout}"))
        .lines()
        .skip(1)
        .take_while(|l| l.contains("% "))
        .count();
    assert!((1..=4).contains(&listed), "{stdout}");
    let regions = image::open(out.join("prototypes/regions.png")).unwrap();
    assert_eq!(
        (regions.width(), regions.height() as usize),
        (6 * 96 + 5 * 4, listed * 96 + (listed - 1) * 4)
    );
    // Each panel is image | truth | prediction side by side with 4-px gaps.
    let img = image::open(out.join("segment_000.png")).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 240 + 8, 180));
    // Same seed, same numbers.
    let (_, again, _) = protoclust(&args);
    assert_eq!(stdout.lines().nth(1), again.lines().nth(1));
}

#[test]
fn a_missing_mask_is_a_one_line_error_naming_it() {
    let d = common::scratch("segment-missing-mask");
    std::fs::create_dir_all(d.join("images")).unwrap();
    std::fs::create_dir_all(d.join("masks")).unwrap();
    image::RgbImage::new(16, 16)
        .save(d.join("images/a.png"))
        .unwrap();
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let (ok, _, stderr) = protoclust(&[
        "eval",
        "segment",
        cfg.to_str().unwrap(),
        "--random-init",
        "--images",
        d.join("images").to_str().unwrap(),
        "--masks",
        d.join("masks").to_str().unwrap(),
        "--panels",
        "0",
    ]);
    assert!(!ok);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(line.contains("a.png") && line.contains("mask"), "{stderr}");
}

/// Two 16 × 16 frames (left half class 0, right half class 1) and their masks.
fn tiny_frames(d: &Path) -> (String, String) {
    let (images, masks) = (d.join("images"), d.join("masks"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    for (i, name) in ["a.png", "b.png"].iter().enumerate() {
        image::RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 16) as u8, (i * 100) as u8])
        })
        .save(images.join(name))
        .unwrap();
        image::GrayImage::from_fn(16, 16, |x, _| image::Luma([u8::from(x >= 8)]))
            .save(masks.join(name))
            .unwrap();
    }
    (
        images.to_str().unwrap().to_string(),
        masks.to_str().unwrap().to_string(),
    )
}

/// `eval segment MODEL` on the tiny frames (2 classes, no ignored class, no panels or region
/// sheet) with `extra`.
fn segment_tiny(model: &Path, images: &str, masks: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "eval",
        "segment",
        model.to_str().unwrap(),
        "--images",
        images,
        "--masks",
        masks,
        "--classes",
        "2",
        "--ignore",
        "255",
        "--panels",
        "0",
        "--regions",
        "0",
    ];
    args.extend_from_slice(extra);
    protoclust(&args)
}

#[test]
fn prototype_mode_scores_slotcon_and_swav_prototypes_and_refuses_models_without_them() {
    let d = common::scratch("segment-prototypes");
    let (images, masks) = tiny_frames(&d);
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let run_on = |cfg: &Path, images: &str, extra: &[&str]| {
        segment_tiny(cfg, images, &masks, &[&["--random-init"], extra].concat())
    };
    let run = |cfg: &Path, extra: &[&str]| run_on(cfg, &images, extra);
    for matching in ["hungarian", "majority"] {
        let (ok, stdout, stderr) = run(&cfg, &["--mode", "prototypes", "--matching", matching]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("prototypes: argmax of 4"), "{stdout}");
        assert!(!stdout.contains("k-means"), "{stdout}");
        assert!(stdout.contains("2 images, 512 labelled pixels"), "{stdout}");
    }
    // SwAV's head, applied to every pixel.
    let swav = d.join("swav.toml");
    std::fs::write(
        &swav,
        "method = \"swav\"\n[swav]\nprototypes = 16\n[swav.backbone]\ndepth = 18\nwidth = 4\nsmall_stem = true\n\
         [[swav.views.crops]]\ncount = 2\nsize = 32\nscale = [0.2, 1.0]\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run(&swav, &["--mode", "prototypes"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("prototypes: argmax of 16"), "{stdout}");
    // A list file of images takes only the listed ones.
    std::fs::write(d.join("part.txt"), "images/b.png\n").unwrap();
    let list = d.join("part.txt");
    let (ok, stdout, stderr) = run_on(&swav, list.to_str().unwrap(), &["--mode", "prototypes"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 images, 256 labelled pixels"), "{stdout}");
    // JigClu has no prototypes.
    let jigclu = d.join("jigclu.toml");
    std::fs::write(
        &jigclu,
        "method = \"jigclu\"\n[jigclu.backbone]\ndepth = 18\nwidth = 4\nsmall_stem = true\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&jigclu, &["--mode", "prototypes"]);
    assert!(!ok && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("--mode prototypes needs"), "{stderr}");
    // The default mode falls back to k-means alone for it.
    let (ok, stdout, stderr) = run(&jigclu, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("k-means") && !stdout.contains("prototypes:"),
        "{stdout}"
    );
}

#[test]
fn centred_prototype_scores_need_a_trained_centre() {
    let d = common::scratch("segment-centred");
    let (images, masks) = tiny_frames(&d);
    let cfg = d.join("tiny.toml");
    let run_dir = d.join("run");
    std::fs::write(
        &cfg,
        format!(
            "{TINY}[data]\nkind = \"synthetic\"\nlen = 8\nsize = 40\n[loader]\nbatch_size = 4\n\
             [train]\nepochs = 1\nrun_dir = \"{}\"\n[schedule]\nwarmup_epochs = 0\n",
            run_dir.display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = protoclust(&["train", cfg.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{stderr}");
    let ck = run_dir.join("checkpoints/last.safetensors");
    let eval = |model: &Path, extra: &[&str]| {
        segment_tiny(
            model,
            &images,
            &masks,
            &[&["--mode", "prototypes"], extra].concat(),
        )
    };
    let (ok, raw, stderr) = eval(&ck, &[]);
    assert!(ok, "{stderr}");
    assert!(!raw.contains("centred"), "{raw}");
    let (ok, centred, stderr) = eval(&ck, &["--scores", "centered"]);
    assert!(ok, "{stderr}");
    assert!(
        centred.contains("argmax of 4 (centred scores)"),
        "{centred}"
    );
    // The untrained model has no centre yet: one line naming the option.
    let (ok, _, stderr) = eval(&cfg, &["--random-init", "--scores", "centered"]);
    assert!(!ok);
    assert!(stderr.contains("--scores centered needs"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
