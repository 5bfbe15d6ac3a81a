//! Errors of the viewer layer; each displays as one line, with the cause in `source()`.

use crate::session::SessionError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The session, folder or file could not be opened.
    #[error("cannot open the recording")]
    Open(#[source] SessionError),
    /// The recording opened but has nothing to show.
    #[error("{0}")]
    Empty(String),
    /// A frame could not be read or decoded.
    #[error("{0}")]
    Frame(String),
    /// A background thread could not be started.
    #[error("cannot start the {what} thread")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The window could not be created (no display, no OpenGL).
    #[error("cannot open the viewer window: {0}")]
    Window(String),
}

pub type Result<T> = std::result::Result<T, ViewError>;
