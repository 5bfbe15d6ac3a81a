//! How a recording encodes its depth: one codec, or `auto` - the strongest codec while the
//! compression workers keep up, a fast one for the frames of a camera whose queue is
//! filling up. Every depth record names its codec (`format-spec.md` §4), so a file can mix
//! them and readers need nothing new.
//!
//! There is no third, uncompressed tier: tried on the 2-core development machine (8 x
//! 1280x720@30, a 250 MB/s disk), raw frames moved the bottleneck to the disk and lost more
//! frames than lz4-planes alone.
//!
//! Why: grad-rans32 stores real D4xx depth in about a third of the space of lz4-planes but
//! costs about three times the CPU. A fixed strong codec drops frames on a loaded machine; a
//! fixed fast one wastes disk on every idle one. The choice is made per frame from the
//! camera's queue, so a frame is never dropped for want of CPU while a cheaper codec would
//! have kept up. When the queue fills because the *disk* is slow (the camera's writer is
//! behind), cheaper codecs would only write more: then the strongest codec is used.

use std::fmt;
use std::str::FromStr;

use crate::codec::{DepthCodec, MaxError};

/// The depth encoding of a recording.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum DepthEncoding {
    /// Every frame with this codec.
    Fixed(DepthCodec),
    /// `best` while the camera's compression queue is short; `fast` for a frame taken from a
    /// queue at or above [`DepthEncoding::high_water`] - unless the camera's writer is behind.
    Auto { best: DepthCodec, fast: DepthCodec },
}

impl Default for DepthEncoding {
    /// What `rsrec record` and `rsrec import` use unless told otherwise.
    fn default() -> Self {
        Self::AUTO
    }
}

impl DepthEncoding {
    /// `auto`: grad-rans32, and lz4-planes under load.
    pub const AUTO: DepthEncoding = DepthEncoding::Auto {
        best: DepthCodec::GRAD_RANS32,
        fast: DepthCodec::Lz4Planes,
    };

    /// Names [`FromStr`] accepts, for help texts.
    pub const NAMES: &'static str = "auto (grad-rans32; lz4-planes for a camera whose queue fills up), or one codec: raw, lz4-planes, zstd-planes[:LEVEL], med-rans[:BOUND], grad-rans[:BOUND], grad-rans32[:BOUND]";

    /// The codec used when the CPU keeps up (the only one of a fixed encoding).
    pub fn best(self) -> DepthCodec {
        match self {
            Self::Fixed(c) => c,
            Self::Auto { best, .. } => best,
        }
    }

    /// The encoding of a conversion, which waits for the workers instead of dropping frames:
    /// always the best codec (a full queue there means "busy", not "losing frames").
    pub fn offline(self) -> Self {
        Self::Fixed(self.best())
    }

    /// The queue length (frames waiting for compression) from which `auto` switches to its
    /// fast codec: a quarter of the queue, so that three quarters stay for bursts.
    pub fn high_water(capacity: usize) -> usize {
        (capacity / 4).max(1)
    }

    /// The codec of a frame taken from a camera queue that still holds `queued` frames of
    /// `capacity` (the compression workers pass the larger of the camera's queue and the
    /// frames waiting over all cameras); `writer_behind`: the camera's writer has a backlog
    /// (a slow disk).
    pub fn choose(self, queued: usize, capacity: usize, writer_behind: bool) -> DepthCodec {
        match self {
            Self::Fixed(c) => c,
            Self::Auto { best, .. } if writer_behind => best,
            Self::Auto { fast, .. } if queued >= Self::high_water(capacity) => fast,
            Self::Auto { best, .. } => best,
        }
    }

    /// The codec the disk forecast should assume: the fast one of `auto` (the forecast errs
    /// short).
    pub fn planning_codec(self) -> DepthCodec {
        match self {
            Self::Fixed(c) => c,
            Self::Auto { fast, .. } => fast,
        }
    }

    /// Applies `--depth-max-error` (see [`crate::codec::with_max_error`]): `auto` becomes the
    /// bounded grad-rans32 with lz4-planes (exact, so within any bound) under load.
    pub fn with_max_error(
        self,
        max_error: Option<MaxError>,
        metres_per_unit: f32,
    ) -> Result<Self, String> {
        match self {
            Self::Fixed(c) => {
                crate::codec::with_max_error(c, max_error, metres_per_unit).map(Self::Fixed)
            }
            Self::Auto { best, fast } => Ok(Self::Auto {
                best: crate::codec::with_max_error(best, max_error, metres_per_unit)?,
                fast,
            }),
        }
    }

    /// Whether `--depth-max-error` can apply (see [`crate::codec::check_lossy_codec`]).
    pub fn check_lossy(self, max_error: Option<MaxError>) -> Result<(), String> {
        crate::codec::check_lossy_codec(self.best(), max_error)
    }
}

impl fmt::Display for DepthEncoding {
    /// `auto`, `auto(grad-rans32:1, lz4-planes)` for a non-default pair, or the codec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::AUTO => f.write_str("auto"),
            Self::Auto { best, fast } => write!(f, "auto({best}, {fast})"),
            Self::Fixed(c) => write!(f, "{c}"),
        }
    }
}

impl FromStr for DepthEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Self::AUTO);
        }
        s.parse()
            .map(Self::Fixed)
            .map_err(|e| format!("{e} (or auto)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ErrorBound;

    #[test]
    fn auto_switches_at_a_quarter_of_the_queue() {
        let a = DepthEncoding::AUTO;
        assert_eq!(a.choose(0, 60, false), DepthCodec::GRAD_RANS32);
        assert_eq!(a.choose(14, 60, false), DepthCodec::GRAD_RANS32);
        assert_eq!(a.choose(15, 60, false), DepthCodec::Lz4Planes);
        assert_eq!(a.choose(60, 60, false), DepthCodec::Lz4Planes);
        assert_eq!(a.choose(0, 1, false), DepthCodec::GRAD_RANS32);
        assert_eq!(a.choose(1, 1, false), DepthCodec::Lz4Planes);
        // A slow disk, not a slow CPU: the smallest output.
        assert_eq!(a.choose(59, 60, true), DepthCodec::GRAD_RANS32);
        let f = DepthEncoding::Fixed(DepthCodec::MED_RANS);
        assert_eq!(f.choose(60, 60, false), DepthCodec::MED_RANS);
        assert_eq!(a.offline().choose(60, 60, false), DepthCodec::GRAD_RANS32);
    }

    #[test]
    fn parse_and_print() {
        assert_eq!("auto".parse::<DepthEncoding>(), Ok(DepthEncoding::AUTO));
        assert_eq!(DepthEncoding::AUTO.to_string(), "auto");
        let z: DepthEncoding = "zstd-planes:5".parse().unwrap();
        assert_eq!(z, DepthEncoding::Fixed(DepthCodec::ZstdPlanes { level: 5 }));
        assert_eq!(z.to_string(), "zstd-planes:5");
        assert!("fast"
            .parse::<DepthEncoding>()
            .unwrap_err()
            .contains("auto"));
    }

    #[test]
    fn a_bound_applies_to_the_strong_codec_of_auto() {
        let m: MaxError = "1mm".parse().unwrap();
        let a = DepthEncoding::AUTO.with_max_error(Some(m), 0.001).unwrap();
        let bound = ErrorBound::Absolute { units: 1 };
        assert_eq!(
            a,
            DepthEncoding::Auto {
                best: DepthCodec::GradRans32 { bound },
                fast: DepthCodec::Lz4Planes
            }
        );
        assert_eq!(a.to_string(), "auto(grad-rans32:1, lz4-planes)");
        assert!(DepthEncoding::Fixed(DepthCodec::Raw)
            .check_lossy(Some(m))
            .is_err());
    }
}
