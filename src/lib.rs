//! rsrec: record Intel RealSense depth cameras into compact, crash-safe, seekable files.
//!
//! Layers, bottom up:
//! - [`codec`]: pure depth codecs (no I/O).
//! - [`container`]: the `.rsrec` file format: constants, header, records, writer, reader,
//!   index and recovery.
//! - [`error`]: helpers shared by every layer's error types.
//! - [`source`]: capture sources behind one trait (synthetic, PNG folder, `.bag`, RealSense).
//! - [`video`]: colour video through FFmpeg subprocesses (encoder and decoder).
//! - [`session`]: the read side of a recording (session folder, cameras, streams, the
//!   typed `session.json` manifest).
//! - [`record`]: the recording pipeline (capture, compression pool, writers), the
//!   [`record::Recorder`] that runs a validated [`record::RecordPlan`], and import.
//! - [`export`]: exports to NumPy, 16-bit PNG, PLY and colour images, one file per format.
//! - [`view`]: the playback viewer's model and decoding workers (the window itself with the
//!   `viewer` feature).
//! - the `rsrec` binary (`src/cli`): thin command-line glue.

#![deny(unsafe_code)]

pub mod codec;
pub mod container;
pub mod error;
pub mod export;
pub mod record;
pub mod session;
pub mod source;
pub mod video;
pub mod view;
