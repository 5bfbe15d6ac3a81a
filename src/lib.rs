//! rsrec: record Intel RealSense depth cameras into compact, crash-safe, seekable files.
//!
//! Layers, bottom up:
//! - [`codec`]: pure depth codecs (no I/O).
//! - [`container`]: the `.rsrec` file format: constants, header, records, writer, reader,
//!   index and recovery.
//! - [`pngdir`]: folders of 16-bit depth PNGs (import and datasets).
//! - [`source`]: capture sources behind one trait (synthetic, PNG folder, `.bag`, RealSense).
//! - [`video`]: colour video through an FFmpeg subprocess.
//! - [`record`]: the recording pipeline (capture, compression pool, writers).
//! - [`import`]: packs a PNG folder into an `.rsrec` file.
//! - [`view`]: the playback viewer's model and decoding workers (the window itself with the
//!   `viewer` feature).
//! - the `rsrec` binary (`src/cli`): thin command-line glue.

pub mod codec;
pub mod container;
pub mod export;
pub mod import;
pub mod pngdir;
pub mod record;
pub mod source;
pub mod video;
pub mod view;
