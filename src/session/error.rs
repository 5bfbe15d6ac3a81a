//! Errors of the read side. Each displays as one line; `source()` chains carry the detail
//! (an I/O error, a container error), so [`crate::error::chain`] or anyhow's `{:#}` print the
//! whole cause on one line.

use std::path::{Path, PathBuf};

use super::manifest::ManifestError;
use crate::container::ContainerError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The input is not a recording (no session, unknown camera, inconsistent files, ...).
    #[error("{0}")]
    Input(String),
    /// `session.json` could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A file could not be opened or read as an rsrec file.
    #[error("{}", path.display())]
    Container {
        path: PathBuf,
        #[source]
        source: ContainerError,
    },
    /// A frame could not be read or decoded.
    #[error("{camera}: {what} {position} ({file})")]
    Frame {
        camera: String,
        what: &'static str,
        position: usize,
        file: String,
        #[source]
        source: ContainerError,
    },
    /// An IMU batch (§5.3) could not be read or decoded. `batch` is its position among the
    /// stream's batches in `file`. (The source is boxed to keep the error small.)
    #[error("{camera}: {stream} IMU batch {batch} ({file})")]
    ImuBatch {
        camera: String,
        stream: &'static str,
        batch: usize,
        file: String,
        #[source]
        source: Box<ContainerError>,
    },
    /// A frame position past the end of the camera's frames.
    #[error("{camera}: {what} {position} is out of range ({count} frames)")]
    OutOfRange {
        camera: String,
        what: &'static str,
        position: usize,
        count: usize,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A colour video could not be decoded.
    #[error(transparent)]
    Video(#[from] crate::video::VideoError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SessionError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A container error while opening `path`. I/O errors already name the path.
    pub fn container(path: impl AsRef<Path>, source: ContainerError) -> Self {
        match source {
            ContainerError::Io { path, source } => Self::Io { path, source },
            source => Self::Container {
                path: path.as_ref().to_path_buf(),
                source,
            },
        }
    }
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;
