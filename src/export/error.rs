//! Errors of the export layer. Each displays as one line; `source()` chains carry the detail
//! (an I/O error, a container error), so `crate::error::chain` or anyhow's `{:#}` print the whole
//! cause on one line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The input is not something export can read (no session, unknown camera, ...).
    #[error("{0}")]
    Input(String),
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
    /// The recording could not be read.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    /// A colour video could not be decoded.
    #[error(transparent)]
    Decode(#[from] crate::video::VideoError),
    /// A depth frame does not decode (without `skip_damaged`).
    #[error(
        "a damaged frame; `rsrec recover {file}` repairs the file (its damaged frames become \
         gaps), or --skip-damaged exports the rest (damaged frames listed as gaps)"
    )]
    Damaged {
        file: String,
        #[source]
        source: Box<crate::session::SessionError>,
    },
    /// An IMU batch does not decode (also with `skip_damaged`, which skips depth frames).
    #[error(
        "a damaged IMU batch; `rsrec recover {file}` repairs the file (its damaged records \
         are left out)"
    )]
    DamagedImu {
        file: String,
        #[source]
        source: Box<crate::session::SessionError>,
    },
    /// The stop flag was set (Ctrl+C): the unfinished camera's output was removed.
    #[error("interrupted: the unfinished output ({}) was removed", partial.display())]
    Interrupted { partial: PathBuf },
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
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
