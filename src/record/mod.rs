//! Recording: the capture -> compression -> writer pipeline, live statistics and the
//! session folder.

pub mod color;
pub mod pipeline;
pub mod session;
pub mod stats;

pub use pipeline::{
    parse_duration, ColorPush, ColorSink, ColorSinkFactory, Pipeline, PipelineConfig, SegmentLimit,
};
pub use stats::{CameraStats, StatsSnapshot};
