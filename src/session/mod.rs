//! The read side of a recording: a session folder, a folder of `.rsrec` files or one file
//! opened as cameras with depth and colour streams ([`Recording`], [`Camera`], [`Stream`])
//! and their IMU samples ([`ImuReading`], read one batch at a time by [`ImuReadings`]),
//! the session manifest (`session.json`, [`SessionManifest`]) and colour frames decoded from
//! the videos ([`ColorFrames`]). Export, the viewer, `info` and library users read through
//! this layer; it never writes.

pub mod color;
pub mod error;
pub mod manifest;
pub mod recording;

pub use color::ColorFrames;
pub use error::SessionError;
pub use manifest::{
    CameraManifest, DeviceManifest, Losses, ManifestError, RecordSettings, SessionManifest,
    SessionStatus, StatsSnapshot, MANIFEST_FILE, MANIFEST_VERSION,
};
pub use recording::{Camera, CameraFile, ImuReading, ImuReadings, Recording, Stream};
