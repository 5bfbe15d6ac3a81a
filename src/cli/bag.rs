//! Opening `bag:FILE` sources (pure-Rust reader).

use std::path::Path;

use anyhow::Context;
use rsrec::source::bag::BagSource;
use rsrec::source::sim::Pacing;
use rsrec::source::Source;

pub fn open(file: &Path, pacing: Pacing) -> anyhow::Result<Box<dyn Source>> {
    let src = BagSource::open(file, pacing).with_context(|| format!("{}", file.display()))?;
    Ok(Box::new(src))
}
