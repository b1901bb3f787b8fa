//! `protoclust import SRC --out DST [--release R]`: a released checkpoint as a protoclust
//! checkpoint (or, for a trunk alone, a backbone export), with its provenance.

use crate::import::{self, Release};
use anyhow::Result;
use std::path::Path;

/// Reads `src`, writes `out`, and says what was read.
pub fn run(src: &Path, out: &Path, release: Option<Release>) -> Result<()> {
    import::check_out(src, out)?;
    let imported = import::import(src, release)?;
    let b = imported.backbone.clone();
    let what = match &imported.config {
        Some(c) => format!("{} model", c.method),
        None => "backbone".to_string(),
    };
    let tensors = imported.model.len() + imported.state.len();
    let provenance = imported.provenance.clone();
    imported.save(out)?;
    println!(
        "imported {} ({} container, layout {}, prefix `{}`): ResNet-{} width {}, {} tensors as a {what}; sha256 {}",
        provenance.file,
        provenance.container,
        provenance.layout,
        provenance.prefix,
        b.depth,
        b.width,
        tensors,
        provenance.sha256
    );
    println!("wrote {}", out.display());
    Ok(())
}
