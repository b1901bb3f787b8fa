//! `protoclust import SRC --out DST [--release R]`: a released checkpoint as a protoclust
//! checkpoint (or, for a trunk alone, a backbone export), with its provenance.

use crate::import::{self, Release};
use anyhow::Result;
use std::path::Path;

/// Reads `src`, writes `out`, and says what was read.
pub fn run(src: &Path, out: &Path, release: Option<Release>) -> Result<()> {
    import::check_out(src, out)?;
    let imported = import::import(src, release)?;
    imported.save(out)?;
    let b = &imported.backbone;
    let what = match &imported.config {
        Some(c) => format!("{} model", c.method),
        None => "backbone".to_string(),
    };
    println!(
        "imported {} ({} container, layout {}, prefix `{}`): ResNet-{} width {}, {} tensors as a {what}; sha256 {}",
        imported.provenance.file,
        imported.provenance.container,
        imported.provenance.layout,
        imported.provenance.prefix,
        b.depth,
        b.width,
        imported.model.len() + imported.state.len(),
        imported.provenance.sha256
    );
    println!("wrote {}", out.display());
    Ok(())
}
