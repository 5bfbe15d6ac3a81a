//! Conversion of finished data (a folder of depth PNGs, a librealsense `.bag`) into one
//! `.rsrec` file (and its colour video) through the recording [`Pipeline`], losslessly: the
//! capture waits for the compression workers instead of dropping frames. What `rsrec import`
//! runs.
//!
//! Everything is written into a staging folder inside the output folder and moved into
//! place at the end, so a failed import leaves nothing that looks complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encoding::DepthEncoding;
use super::pipeline::{ColorSinkFactory, Pipeline, PipelineConfig};
use super::recorder::check_plain_name;
use super::stats::StatsSnapshot;
use crate::container::{FsyncPolicy, StreamKind, WriterOptions};
use crate::source::{Sample, Source, SourceError, SourceInfo};

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("output name '{name}' is not a usable file name: it {why}")]
    BadName { name: String, why: &'static str },
    #[error("{} already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the import")]
    Pipeline(#[source] std::io::Error),
    /// The source or the writer failed; nothing was moved into place.
    #[error("{0}")]
    Failed(String),
    /// The stop flag was set (Ctrl+C): the import stopped cleanly and its staging folder
    /// was removed; nothing was moved into place.
    #[error("interrupted: nothing was imported (the partial output was removed)")]
    Interrupted,
}

/// What to import and where.
pub struct ImportPlan {
    pub source: Box<dyn Source>,
    /// Output file name without extension (`NAME.rsrec`, `NAME.color.000.mkv`).
    pub name: String,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Depth codec, or `auto`: a conversion waits for the workers, so `auto` is its strong
    /// codec for every frame ([`DepthEncoding::offline`]).
    pub depth_codec: DepthEncoding,
    /// The colour encoder, if the source's colour is imported (`None`: depth only; the
    /// file then declares no colour stream).
    pub color: Option<ColorSinkFactory>,
    /// Replace existing output files.
    pub force: bool,
    /// JSON merged into the file's metadata (where the data came from).
    pub metadata: serde_json::Value,
    /// Compression workers [default: number of cores].
    pub workers: Option<usize>,
    /// Set (by Ctrl+C) to stop the import cleanly; nothing is kept.
    pub stop: Option<Arc<AtomicBool>>,
}

/// A finished import.
#[derive(Debug)]
pub struct ImportOutcome {
    /// The `.rsrec` file.
    pub path: PathBuf,
    /// The colour videos, if any.
    pub videos: Vec<PathBuf>,
    pub stats: StatsSnapshot,
    pub elapsed: Duration,
}

/// A source under another name (the output file's).
struct Renamed(Box<dyn Source>, SourceInfo);

impl Source for Renamed {
    fn info(&self) -> &SourceInfo {
        &self.1
    }
    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        self.0.next()
    }
}

/// Runs the import; `progress` is called about five times a second with the counters.
pub fn import(
    plan: ImportPlan,
    mut progress: impl FnMut(&StatsSnapshot),
) -> Result<ImportOutcome, ImportError> {
    let name = plan.name;
    check_plain_name(&name).map_err(|why| ImportError::BadName {
        name: name.clone(),
        why,
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    std::fs::create_dir_all(&plan.out).map_err(io(&plan.out))?;
    let target = plan.out.join(format!("{name}.rsrec"));
    if target.exists() && !plan.force {
        return Err(ImportError::Exists { path: target });
    }
    let staging = plan.out.join(format!(".{name}.import.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    let mut info = plan.source.info().clone();
    info.name = name.clone();
    if plan.color.is_none() {
        // Depth only: the file declares no colour stream it would never fill.
        info.streams.retain(|s| s.kind != StreamKind::Color);
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = PipelineConfig {
        session_dir: staging.clone(),
        depth: plan.depth_codec.offline(),
        queue_frames: 16,
        workers: plan.workers.unwrap_or(cores).max(1),
        writer: WriterOptions {
            fsync: FsyncPolicy::OnClose,
            ..WriterOptions::default()
        },
        segment: None,
        lossless: true,
        color: plan.color,
        metadata: plan.metadata,
        reconnect: None,
    };
    let stop = plan
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let t0 = Instant::now();
    let pipeline = Pipeline::start(
        vec![Box::new(Renamed(plan.source, info))],
        cfg,
        stop.clone(),
    )
    .map_err(ImportError::Pipeline)?;
    while !pipeline.all_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if let Some((_, s)) = pipeline.stats().first() {
            progress(s);
        }
    }
    // Read before `finish`, which sets the flag itself.
    let interrupted = plan.stop.is_some() && stop.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = pipeline
        .finish()
        .pop()
        .ok_or_else(|| ImportError::Failed("the pipeline returned no camera".into()))?;
    if let Some(e) = &outcome.stats.error {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ImportError::Failed(e.clone()));
    }
    // Stopped before the source ended (a writer failure also sets the flag, but it then
    // has an error, above).
    if interrupted {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ImportError::Interrupted);
    }
    let mut moved = Vec::new();
    for f in outcome
        .files
        .iter()
        .cloned()
        .chain(outcome.videos.iter().map(|v| staging.join(v)))
    {
        let Some(file_name) = f.file_name() else {
            continue;
        };
        let dest = plan.out.join(file_name);
        std::fs::rename(&f, &dest).map_err(io(&dest))?;
        moved.push(dest);
    }
    let _ = std::fs::remove_dir_all(&staging);
    let (path, videos): (Vec<_>, Vec<_>) = moved
        .into_iter()
        .partition(|p| p.extension().is_some_and(|e| e == "rsrec"));
    Ok(ImportOutcome {
        path: path.into_iter().next().unwrap_or(target),
        videos,
        stats: outcome.stats,
        elapsed: t0.elapsed(),
    })
}
