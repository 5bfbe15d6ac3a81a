//! Progress of an export: the [`Progress`] trait the exporter reports to (the command line
//! draws it as a progress bar; library callers get [`Silent`] or their own).

/// Receives progress and warnings from an export.
pub trait Progress {
    /// The whole export: frames and raw bytes (depth, or RGB for colour) to go.
    fn begin(&mut self, _total_frames: u64, _total_bytes: u64) {}
    /// Work on a camera starts.
    fn camera(&mut self, _name: &str) {}
    /// `frames` more frames (`bytes` raw bytes) are done.
    fn advance(&mut self, _frames: u64, _bytes: u64) {}
    /// Something the user should know (frames missing from a video, colour not available).
    fn warn(&mut self, _message: &str) {}
    /// The export has ended (successfully or not).
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}
