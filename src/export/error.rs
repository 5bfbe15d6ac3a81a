//! Errors of the export layer. Each displays as one line; `source()` chains carry the detail
//! (an I/O error, a container error), so `error_chain` or anyhow's `{:#}` print the whole
//! cause on one line.

use std::path::{Path, PathBuf};

use crate::container::ContainerError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The input is not something export can read (no session, unknown camera, ...).
    #[error("{0}")]
    Input(String),
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
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--frames` / `--time` select nothing or lie outside the recording.
    #[error("{0}")]
    Selection(String),
    #[error("{} already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
    /// FFmpeg could not be run or failed.
    #[error("{0}")]
    Video(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExportError {
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

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
