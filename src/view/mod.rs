//! `rsrec view`: replays a recording in a window.
//!
//! Layers: [`model`] (session, time axis, frame lookup, gaps; no UI), [`colormap`] (turbo,
//! automatic range), [`worker`] (depth decoding off the UI thread, prefetch around the
//! playhead, latest request wins), [`color`] (colour frames through FFmpeg on a background
//! thread per camera) and, with the `viewer` feature, `app` (the egui window, thin glue).

pub mod color;
pub mod colormap;
pub mod error;
pub mod model;
pub mod worker;

#[cfg(feature = "viewer")]
pub mod app;

pub use error::{Result, ViewError};
pub use model::Session;
