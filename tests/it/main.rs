//! The integration tests: one binary (`cargo test --test it`), one module per area, sharing
//! the helpers and the recorded fixtures of [`common`] (built once per run).
//!
//! Run one area with a filter: `cargo test --test it export::`, `cargo test --test it cli::`.
//! Real RealSense data is read from `../shared/data` (or `$RSREC_DATA_DIR`); without it the
//! tests that need it say so loudly and skip, except under `CI=true` where they fail.

mod common;

mod adversarial;

mod bag_source;
mod cli;
mod container;
mod damage;
mod disk_full;
mod export;
mod fixtures;
mod fuzz_regressions;
mod imu_export;
mod png_source;
mod python_reader;
mod real_data;
#[cfg(feature = "realsense")]
mod realsense;
mod record;
mod truncation;
mod usb;
mod video;
mod view;
