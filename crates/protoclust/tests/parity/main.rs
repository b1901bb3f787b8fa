//! The parity runner: every JSON fixture under `$PROTOCLUST_FIXTURES` (default
//! `../shared/fixtures` from the workspace root, and the project's own fixtures in
//! `crates/protoclust/tests/fixtures`, made by `scripts/fixtures/*.py` from the official code),
//! dispatched on its `method` and `source.function`, compared in float32 with the fixtures
//! README's tolerances.
//!
//! Runs on the device `PROTOCLUST_DEVICE` names (as the CLI does; flex by default).
//! Prints one line per case and `N passed, M failed` (plus skips). A file it cannot run is a
//! failure. Cases of methods not implemented yet fail too, unless `--skip-unimplemented` (or
//! `PROTOCLUST_SKIP_UNIMPLEMENTED=1`) is given, which reports them as skipped.

mod deepclusterv2;
mod fixture;
mod jigclu;
mod odc;
mod slotcon;
mod swav;

use burn::tensor::Device;
use fixture::{Compared, Fixture};
use std::path::{Path, PathBuf};

enum Outcome {
    Pass(Vec<Compared>),
    Fail(String),
    Unimplemented(String),
}

fn fixtures_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PROTOCLUST_FIXTURES") {
        return PathBuf::from(p);
    }
    // Tests run from the package directory; the fixtures sit beside the workspace root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("../shared/fixtures")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn run_case(path: &Path, device: &Device) -> Outcome {
    let f = match Fixture::load(path) {
        Ok(f) => f,
        Err(e) => return Outcome::Fail(e),
    };
    let method = f.str("/method");
    let function = f.str("/source/function");
    let result = match method.as_str() {
        "swav" if function == "distributed_sinkhorn" => swav::sinkhorn_case(&f, device),
        "swav" if function.starts_with("train") => swav::loss_case(&f, device),
        "odc" if function.starts_with("ODCMemory.init_memory") => odc::pipeline_case(&f, device),
        "odc" if function.starts_with("ODC.set_reweight") => odc::reweight_case(&f, device),
        "jigclu" if function == "JigClu._batch_gather_ddp" => jigclu::montage_case(&f, device),
        "jigclu" if function.starts_with("ResNet.forward tail") => {
            jigclu::decouple_case(&f, device)
        }
        "jigclu" if function.starts_with("JigClu.forward (label") => {
            jigclu::loss_heads_case(&f, device)
        }
        "jigclu" if function == "JigClu.forward" => jigclu::full_forward_case(&f, device),
        "slotcon" if function == "SemanticGrouping.forward" => slotcon::grouping_case(&f, device),
        "slotcon" if function.starts_with("SlotCon.invaug") => slotcon::invaug_case(&f, device),
        "slotcon" if function == "SlotCon.self_distill" => slotcon::self_distill_case(&f, device),
        "slotcon" if function == "SlotCon.update_center" => slotcon::update_center_case(&f, device),
        "slotcon" if function.starts_with("SlotCon.forward grouping-loss") => {
            slotcon::group_loss_case(&f, device)
        }
        "slotcon" if function.starts_with("SlotCon.ctr_loss_filtered") => {
            slotcon::ctr_loss_case(&f, device)
        }
        "slotcon" if function.starts_with("SlotCon.forward (encoders") => {
            slotcon::forward_case(&f, device)
        }
        "deepclusterv2" if function.starts_with("train") => deepclusterv2::step_case(&f, device),
        "deepclusterv2" if function.starts_with("init_memory") => {
            deepclusterv2::init_case(&f, device)
        }
        "deepclusterv2" if function.starts_with("ResNet.forward_head") => {
            deepclusterv2::head_case(&f, device)
        }
        "slotcon" => {
            return Outcome::Unimplemented(format!("{method} is not implemented yet ({function})"))
        }
        _ => Err(format!(
            "no runner for method `{method}`, function `{function}`"
        )),
    };
    match result {
        Ok(c) if c.iter().all(|c| c.ok()) => Outcome::Pass(c),
        Ok(c) => Outcome::Fail(
            c.iter()
                .filter(|c| !c.ok())
                .map(|c| format!("{} max|err| {:.3e} > {:.3e}", c.name, c.max_abs, c.bound))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => Outcome::Fail(e),
    }
}

fn main() {
    let skip_unimplemented = std::env::args().any(|a| a == "--skip-unimplemented")
        || std::env::var("PROTOCLUST_SKIP_UNIMPLEMENTED").is_ok_and(|v| v == "1");
    let dir = fixtures_dir();
    let explicit = std::env::var("PROTOCLUST_FIXTURES").is_ok();
    if !dir.is_dir() && !explicit {
        // A user's checkout has no ../shared: say so rather than fail.
        println!(
            "parity: skipped, no fixtures folder at {} (set PROTOCLUST_FIXTURES to run them)",
            dir.display()
        );
        println!("0 passed, 0 failed, 1 skipped");
        return;
    }
    let mut files = Vec::new();
    collect(&dir, &mut files);
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if !explicit {
        collect(&own, &mut files);
    }
    if files.is_empty() {
        println!(
            "parity: no fixtures under {} (set PROTOCLUST_FIXTURES)",
            dir.display()
        );
        println!("0 passed, 1 failed");
        std::process::exit(1);
    }
    // PROTOCLUST_DEVICE as the CLI (flex by default; cuda in a cuda build).
    let device = match protoclust::device::select() {
        Ok(d) => d,
        Err(e) => {
            println!("error: {e:#}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    println!("parity: {} fixtures on {device:?}", files.len());
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in &files {
        let name = path
            .strip_prefix(&dir)
            .or_else(|_| path.strip_prefix(&own))
            .unwrap_or(path)
            .display()
            .to_string();
        match run_case(path, &device) {
            Outcome::Pass(c) => {
                passed += 1;
                let worst = c
                    .iter()
                    .filter(|c| c.bound > 0.0)
                    .map(|c| c.max_abs / c.bound)
                    .fold(0f64, f64::max);
                println!(
                    "PASS {name} ({} tensors, worst err/bound {worst:.3})",
                    c.len()
                );
            }
            Outcome::Fail(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
            Outcome::Unimplemented(why) if skip_unimplemented => {
                skipped += 1;
                println!("SKIP {name}: {why}");
            }
            Outcome::Unimplemented(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        std::process::exit(1);
    }
}
