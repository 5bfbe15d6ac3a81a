//! Recording: the capture -> compression -> writer pipeline, live statistics, the session
//! folder, and the [`Recorder`] that runs a validated [`RecordPlan`] (disk preflight and
//! watchdog, duration, `session.json`).

mod capture;
pub mod color;
mod compress;
pub mod encoding;
pub mod import;
pub mod limits;
mod numbering;
mod outbox;
pub mod pipeline;
pub mod recorder;
pub mod repair;
mod segment;
pub mod session;
pub mod stats;

pub use encoding::DepthEncoding;
pub use limits::{format_duration, format_size, parse_duration, parse_size, SegmentLimit};
pub use pipeline::{
    ColorError, ColorPush, ColorRequest, ColorSink, ColorSinkFactory, OpenedColor, Pipeline,
    PipelineConfig,
};
pub use recorder::{
    check_plain_name, stop_on_signals, CameraPlan, DiskForecast, PlanField, RecordError,
    RecordOutcome, RecordPlan, Recorder, RecorderStatus, ValidPlan, DEFAULT_MIN_FREE,
    MAX_QUEUE_FRAMES, MAX_WORKERS,
};
pub use stats::{CameraStats, StatsSnapshot};
