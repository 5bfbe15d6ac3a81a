//! Depth codecs: pure functions from a Z16 frame to bytes and back, with no I/O.
//!
//! Every compressed frame is stored with its [`CodecId`], so a reader picks the decoder per
//! frame and adding a codec never changes the container. Decoders are given the frame size
//! by the caller (from the stream descriptor), write into a caller-provided buffer of exactly
//! `width * height` values, and never allocate more than the declared frame: a corrupt or
//! hostile payload yields a [`CodecError`], never a panic.

pub mod bound;
#[cfg(target_arch = "x86_64")]
mod grad_x86;
// Calls into the AVX2 passes after checking the CPU has AVX2.
#[allow(unsafe_code)]
mod family;
// Its tests compare the AVX2 passes with the scalar ones.
#[allow(unsafe_code)]
mod grad;
mod med;
mod planes;
// Calls into the AVX2 passes after checking the CPU has AVX2.
#[allow(unsafe_code)]
mod rans;
#[cfg(target_arch = "x86_64")]
mod rans_x86;
pub mod spec;

pub use bound::{ErrorBound, MaxError};

use std::fmt;
use std::str::FromStr;

/// Identifies the codec of one record's payload (record header offset 10; `format-spec.md` §8).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodecId(pub u8);

impl CodecId {
    /// The payload is not an image (gaps, events, index records, ...).
    pub const NONE: CodecId = CodecId(0);
    /// §8.1 Little-endian u16 samples, row-major.
    pub const RAW: CodecId = CodecId(1);
    /// §8.2 High-byte plane and low-byte plane, each an LZ4 block.
    pub const LZ4_PLANES: CodecId = CodecId(2);
    /// §8.3 High-byte plane and low-byte plane, each a zstd frame.
    pub const ZSTD_PLANES: CodecId = CodecId(3);
    /// §8.4 Palette, hole runs, MED prediction and rANS; lossless or with an error bound.
    pub const MED_RANS: CodecId = CodecId(4);
    /// §8.5 Like `med-rans` with a gradient prediction decoded as a running sum; faster.
    pub const GRAD_RANS: CodecId = CodecId(5);
    /// §8.6 `grad-rans` with 32 rANS states: the same ratio, SIMD decoding.
    pub const GRAD_RANS32: CodecId = CodecId(6);

    /// The codec's name as the CLI and `rsrec info` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::NONE => "none",
            Self::RAW => "raw",
            Self::LZ4_PLANES => "lz4-planes",
            Self::ZSTD_PLANES => "zstd-planes",
            Self::MED_RANS => "med-rans",
            Self::GRAD_RANS => "grad-rans",
            Self::GRAD_RANS32 => "grad-rans32",
            _ => "unknown",
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "unknown" => write!(f, "unknown codec {}", self.0),
            n => f.write_str(n),
        }
    }
}

/// Errors from decoding (or, for impossible sizes, encoding) a depth frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    #[error("unknown depth codec id {0}")]
    UnknownCodec(u8),
    #[error("frame size {width}x{height} is invalid")]
    BadDimensions { width: u32, height: u32 },
    #[error("output buffer holds {actual} samples, the frame has {expected}")]
    BadOutputLen { expected: usize, actual: usize },
    #[error("{codec}: payload is {actual} bytes, expected {expected}")]
    BadPayloadLen {
        codec: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{codec}: corrupt payload: {detail}")]
    Corrupt { codec: &'static str, detail: String },
    #[error("{codec}: decoded {actual} bytes, the frame needs {expected}")]
    WrongDecodedLen {
        codec: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("zstd level {0} is out of range 1..=22")]
    BadLevel(i32),
    #[error("sample {value} at pixel {pixel} does not fit an 8-bit image")]
    NotEightBit { pixel: usize, value: u16 },
}

/// A depth codec with its encoder settings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DepthCodec {
    Raw,
    Lz4Planes,
    ZstdPlanes {
        level: i32,
    },
    /// `bound` is [`ErrorBound::Lossless`] for bit-exact coding.
    MedRans {
        bound: ErrorBound,
    },
    /// `bound` is [`ErrorBound::Lossless`] for bit-exact coding.
    GradRans {
        bound: ErrorBound,
    },
    /// `bound` is [`ErrorBound::Lossless`] for bit-exact coding.
    GradRans32 {
        bound: ErrorBound,
    },
}

impl Default for DepthCodec {
    /// What `rsrec record` uses unless told otherwise.
    fn default() -> Self {
        DepthCodec::Lz4Planes
    }
}

impl DepthCodec {
    /// Every codec name that [`FromStr`] accepts, for help texts.
    pub const NAMES: &'static str =
        "raw, lz4-planes, zstd-planes, zstd-planes:LEVEL (1-22), med-rans, med-rans:BOUND, grad-rans, grad-rans:BOUND, grad-rans32, grad-rans32:BOUND (BOUND: N depth units or P%)";
    /// The lossless `med-rans` codec.
    pub const MED_RANS: DepthCodec = DepthCodec::MedRans {
        bound: ErrorBound::Lossless,
    };
    /// The lossless `grad-rans` codec.
    pub const GRAD_RANS: DepthCodec = DepthCodec::GradRans {
        bound: ErrorBound::Lossless,
    };
    /// The lossless `grad-rans32` codec.
    pub const GRAD_RANS32: DepthCodec = DepthCodec::GradRans32 {
        bound: ErrorBound::Lossless,
    };
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    pub fn id(self) -> CodecId {
        match self {
            Self::Raw => CodecId::RAW,
            Self::Lz4Planes => CodecId::LZ4_PLANES,
            Self::ZstdPlanes { .. } => CodecId::ZSTD_PLANES,
            Self::MedRans { .. } => CodecId::MED_RANS,
            Self::GradRans { .. } => CodecId::GRAD_RANS,
            Self::GradRans32 { .. } => CodecId::GRAD_RANS32,
        }
    }

    /// The same codec without an error bound (bit-exact): what infrared frames use whatever
    /// bound the depth has.
    pub fn lossless(self) -> Self {
        match self {
            Self::MedRans { .. } => Self::MED_RANS,
            Self::GradRans { .. } => Self::GRAD_RANS,
            Self::GradRans32 { .. } => Self::GRAD_RANS32,
            other => other,
        }
    }

    /// The error bound of the decoded depth (lossless for every codec but the lossy rANS
    /// codecs: `med-rans`, `grad-rans` and `grad-rans32` with a bound).
    pub fn bound(self) -> ErrorBound {
        match self {
            Self::MedRans { bound } | Self::GradRans { bound } | Self::GradRans32 { bound } => {
                bound
            }
            _ => ErrorBound::Lossless,
        }
    }

    /// Compresses one frame of `width * height` samples, replacing the contents of `out`.
    pub fn encode(
        self,
        depth: &[u16],
        width: u32,
        height: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let n = frame_len(width, height)?;
        if depth.len() != n {
            return Err(CodecError::BadOutputLen {
                expected: n,
                actual: depth.len(),
            });
        }
        out.clear();
        match self {
            Self::Raw => {
                out.reserve(n * 2);
                for v in depth {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            Self::Lz4Planes => planes::encode_lz4(depth, out),
            Self::ZstdPlanes { level } => planes::encode_zstd(depth, level, out),
            Self::MedRans { bound } => {
                family::encode(family::Kind::Med, depth, width, height, bound, out)
            }
            Self::GradRans { bound } => {
                family::encode(family::Kind::Grad, depth, width, height, bound, out)
            }
            Self::GradRans32 { bound } => {
                family::encode(family::Kind::Grad32, depth, width, height, bound, out)
            }
        }
    }
}

impl fmt::Display for DepthCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZstdPlanes { level } => write!(f, "zstd-planes:{level}"),
            Self::MedRans { bound } if !bound.is_lossless() => write!(f, "med-rans:{bound}"),
            Self::GradRans { bound } if !bound.is_lossless() => write!(f, "grad-rans:{bound}"),
            Self::GradRans32 { bound } if !bound.is_lossless() => {
                write!(f, "grad-rans32:{bound}")
            }
            other => f.write_str(other.id().name()),
        }
    }
}

impl FromStr for DepthCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let codec = match (name, level) {
            ("raw", None) => Self::Raw,
            ("lz4-planes", None) => Self::Lz4Planes,
            ("zstd-planes", None) => Self::ZstdPlanes {
                level: Self::DEFAULT_ZSTD_LEVEL,
            },
            ("zstd-planes", Some(l)) => {
                let level: i32 = l
                    .parse()
                    .map_err(|_| format!("zstd level '{l}' is not a number"))?;
                if !(1..=22).contains(&level) {
                    return Err(format!("zstd level {level} is out of range 1..=22"));
                }
                Self::ZstdPlanes { level }
            }
            ("med-rans", None) => Self::MED_RANS,
            ("med-rans", Some(b)) => Self::MedRans { bound: b.parse()? },
            ("grad-rans", None) => Self::GRAD_RANS,
            ("grad-rans", Some(b)) => Self::GradRans { bound: b.parse()? },
            ("grad-rans32", None) => Self::GRAD_RANS32,
            ("grad-rans32", Some(b)) => Self::GradRans32 { bound: b.parse()? },
            _ => {
                return Err(format!(
                    "unknown depth codec '{s}' (known: {})",
                    Self::NAMES
                ))
            }
        };
        Ok(codec)
    }
}

/// Applies `--depth-max-error` to the chosen codec: a bound needs `med-rans`, `grad-rans` or
/// `grad-rans32`, which keep their kind and take the bound; the default `lz4-planes` is
/// switched to `grad-rans32` (a better ratio than `med-rans` and faster); `raw` and
/// `zstd-planes` are an error.
pub fn with_max_error(
    codec: DepthCodec,
    max_error: Option<MaxError>,
    metres_per_unit: f32,
) -> Result<DepthCodec, String> {
    let Some(m) = max_error else {
        return Ok(codec);
    };
    check_lossy_codec(codec, max_error)?;
    let bound = m.to_bound(metres_per_unit)?;
    Ok(match codec {
        DepthCodec::MedRans { .. } => DepthCodec::MedRans { bound },
        DepthCodec::GradRans { .. } => DepthCodec::GradRans { bound },
        // grad-rans32 itself and the default lz4-planes (the others were rejected above).
        _ => DepthCodec::GradRans32 { bound },
    })
}

/// Whether `codec` can take an error bound: med-rans, grad-rans(32), or the default lz4-planes
/// (which a bound turns into grad-rans32); raw and zstd-planes are lossless only.
pub fn check_lossy_codec(codec: DepthCodec, max_error: Option<MaxError>) -> Result<(), String> {
    match (codec, max_error) {
        (_, None)
        | (
            DepthCodec::Lz4Planes
            | DepthCodec::MedRans { .. }
            | DepthCodec::GradRans { .. }
            | DepthCodec::GradRans32 { .. },
            _,
        ) => Ok(()),
        (other, Some(_)) => Err(format!(
            "--depth-max-error needs --depth-codec med-rans, grad-rans or grad-rans32, not {other}"
        )),
    }
}

thread_local! {
    static SCALAR_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the encoders and decoders on this thread use their portable scalar code even where
/// the CPU has SIMD (AVX2) code paths, or allows SIMD again. Both produce identical output;
/// this is for tests that compare them and for benchmarks of the portable code.
pub fn set_scalar_only(on: bool) {
    SCALAR_ONLY.with(|c| c.set(on));
}

/// Whether this thread may use SIMD code paths (see [`set_scalar_only`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn simd_allowed() -> bool {
    !SCALAR_ONLY.with(|c| c.get())
}

/// Number of samples in a `width x height` frame, rejecting empty and oversized frames.
pub fn frame_len(width: u32, height: u32) -> Result<usize, CodecError> {
    const MAX_DIM: u32 = spec::MAX_DIMENSION;
    if width == 0 || height == 0 || width > MAX_DIM || height > MAX_DIM {
        return Err(CodecError::BadDimensions { width, height });
    }
    Ok(width as usize * height as usize)
}

/// Checks, without decoding and without allocating, that `payload` can be a frame of
/// `width x height` for this codec. Readers call it before allocating the output buffer, so
/// a few corrupt bytes cannot make them allocate a huge declared frame.
pub fn precheck(codec: CodecId, payload: &[u8], width: u32, height: u32) -> Result<(), CodecError> {
    let n = frame_len(width, height)?;
    match codec {
        CodecId::RAW if payload.len() == n * 2 => Ok(()),
        CodecId::RAW => Err(CodecError::BadPayloadLen {
            codec: "raw",
            expected: n * 2,
            actual: payload.len(),
        }),
        CodecId::LZ4_PLANES => planes::precheck_lz4(payload, n),
        CodecId::ZSTD_PLANES => planes::precheck_zstd(payload, n),
        other => match rans_kind(other) {
            Some(kind) => family::parse_header(kind, payload, width, height).map(|_| ()),
            None => Err(CodecError::UnknownCodec(other.0)),
        },
    }
}

/// The error bound a frame's payload declares: lossless for every codec but `med-rans`,
/// `grad-rans` and `grad-rans32` frames coded with a bound (§8.4.6). Errors if the payload
/// header is not valid.
pub fn payload_bound(
    codec: CodecId,
    payload: &[u8],
    width: u32,
    height: u32,
) -> Result<ErrorBound, CodecError> {
    precheck(codec, payload, width, height)?;
    match rans_kind(codec) {
        Some(kind) => Ok(family::parse_header(kind, payload, width, height)?.bound),
        None => Ok(ErrorBound::Lossless),
    }
}

/// The member of the rANS codec family (§8.4-§8.6) that `codec` is, if any.
fn rans_kind(codec: CodecId) -> Option<family::Kind> {
    match codec {
        CodecId::MED_RANS => Some(family::Kind::Med),
        CodecId::GRAD_RANS => Some(family::Kind::Grad),
        CodecId::GRAD_RANS32 => Some(family::Kind::Grad32),
        _ => None,
    }
}

/// Decodes one frame into `out`, which must hold exactly `width * height` samples.
pub fn decode(
    codec: CodecId,
    payload: &[u8],
    width: u32,
    height: u32,
    out: &mut [u16],
) -> Result<(), CodecError> {
    let n = frame_len(width, height)?;
    if out.len() != n {
        return Err(CodecError::BadOutputLen {
            expected: n,
            actual: out.len(),
        });
    }
    precheck(codec, payload, width, height)?;
    match codec {
        CodecId::RAW => {
            if payload.len() != n * 2 {
                return Err(CodecError::BadPayloadLen {
                    codec: "raw",
                    expected: n * 2,
                    actual: payload.len(),
                });
            }
            for (o, b) in out.iter_mut().zip(payload.chunks_exact(2)) {
                *o = u16::from_le_bytes([b[0], b[1]]);
            }
            Ok(())
        }
        CodecId::LZ4_PLANES => planes::decode_lz4(payload, out),
        CodecId::ZSTD_PLANES => planes::decode_zstd(payload, out),
        other => match rans_kind(other) {
            Some(kind) => family::decode(kind, payload, width, height, out),
            None => Err(CodecError::UnknownCodec(other.0)),
        },
    }
}

/// 8-bit images (infrared, `format-spec.md` §5.9) go through the depth codecs as 16-bit
/// samples of the same values: `pixels` widened, for [`DepthCodec::encode`].
pub fn widen_y8(pixels: &[u8]) -> Vec<u16> {
    pixels.iter().map(|&p| p as u16).collect()
}

/// Decodes an 8-bit image (§5.9) into `out` (`width * height` bytes), using `scratch` for the
/// 16-bit samples; a sample above 255 is [`CodecError::NotEightBit`].
pub fn decode_y8(
    codec: CodecId,
    payload: &[u8],
    width: u32,
    height: u32,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let n = frame_len(width, height)?;
    if out.len() != n {
        return Err(CodecError::BadOutputLen {
            expected: n,
            actual: out.len(),
        });
    }
    // `decode` checks the payload (before any work) and the sizes.
    scratch.clear();
    scratch.resize(n, 0);
    decode(codec, payload, width, height, scratch)?;
    for (pixel, (o, &v)) in out.iter_mut().zip(scratch.iter()).enumerate() {
        *o = u8::try_from(v).map_err(|_| CodecError::NotEightBit { pixel, value: v })?;
    }
    Ok(())
}

/// Decodes one frame into a new vector.
pub fn decode_to_vec(
    codec: CodecId,
    payload: &[u8],
    width: u32,
    height: u32,
) -> Result<Vec<u16>, CodecError> {
    precheck(codec, payload, width, height)?;
    let mut out = vec![0u16; frame_len(width, height)?];
    decode(codec, payload, width, height, &mut out)?;
    Ok(out)
}

/// A xorshift64 generator for the codec tests (deterministic, no dependency).
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [DepthCodec; 7] = [
        DepthCodec::Raw,
        DepthCodec::Lz4Planes,
        DepthCodec::ZstdPlanes { level: 1 },
        DepthCodec::ZstdPlanes { level: 19 },
        DepthCodec::MED_RANS,
        DepthCodec::GRAD_RANS,
        DepthCodec::GRAD_RANS32,
    ];

    fn round_trip(codec: DepthCodec, depth: &[u16], w: u32, h: u32) {
        let mut enc = Vec::new();
        codec.encode(depth, w, h, &mut enc).unwrap();
        let back = decode_to_vec(codec.id(), &enc, w, h).unwrap();
        assert_eq!(back, depth, "{codec} round trip {w}x{h}");
    }

    #[test]
    fn edge_frames_round_trip() {
        for codec in ALL {
            round_trip(codec, &[0], 1, 1);
            round_trip(codec, &[65535], 1, 1);
            round_trip(codec, &[0; 7 * 3], 7, 3);
            round_trip(codec, &[65535; 641 * 3], 641, 3);
            let ramp: Vec<u16> = (0..=65535u32).map(|v| v as u16).collect();
            round_trip(codec, &ramp, 256, 256);
        }
    }

    #[test]
    fn eight_bit_images_round_trip_and_wide_samples_are_refused() {
        let mut next = xorshift(11);
        let (w, h) = (37u32, 11u32);
        let pixels: Vec<u8> = (0..w * h).map(|_| next() as u8).collect();
        let mut scratch = Vec::new();
        for codec in ALL {
            let mut enc = Vec::new();
            codec.encode(&widen_y8(&pixels), w, h, &mut enc).unwrap();
            let mut back = vec![0u8; pixels.len()];
            decode_y8(codec.id(), &enc, w, h, &mut scratch, &mut back).unwrap();
            assert_eq!(back, pixels, "{codec}");
        }
        // A valid 16-bit frame that is not an 8-bit image: refused, at its first wide pixel.
        let mut wide = widen_y8(&pixels);
        wide[5] = 256;
        let mut enc = Vec::new();
        DepthCodec::Lz4Planes.encode(&wide, w, h, &mut enc).unwrap();
        let mut out = vec![0u8; pixels.len()];
        assert_eq!(
            decode_y8(CodecId::LZ4_PLANES, &enc, w, h, &mut scratch, &mut out),
            Err(CodecError::NotEightBit {
                pixel: 5,
                value: 256
            })
        );
        assert!(matches!(
            decode_y8(CodecId::LZ4_PLANES, &enc, w, h, &mut scratch, &mut out[1..]),
            Err(CodecError::BadOutputLen { .. })
        ));
    }

    #[test]
    fn names_parse_and_print() {
        for codec in ALL {
            assert_eq!(codec.to_string().parse::<DepthCodec>().unwrap(), codec);
        }
        assert_eq!(
            "zstd-planes".parse::<DepthCodec>().unwrap(),
            DepthCodec::ZstdPlanes { level: 3 }
        );
        assert!("zstd-planes:0".parse::<DepthCodec>().is_err());
        assert!("zstd-planes:x".parse::<DepthCodec>().is_err());
        assert!("lz5".parse::<DepthCodec>().is_err());
    }

    #[test]
    fn unknown_codec_and_bad_sizes_are_errors() {
        let mut out = vec![0u16; 4];
        assert_eq!(
            decode(CodecId(200), &[], 2, 2, &mut out),
            Err(CodecError::UnknownCodec(200))
        );
        assert!(matches!(
            decode(CodecId::RAW, &[0; 8], 0, 2, &mut out),
            Err(CodecError::BadDimensions { .. })
        ));
        assert!(matches!(
            decode(CodecId::RAW, &[0; 8], 3, 2, &mut out),
            Err(CodecError::BadOutputLen { .. })
        ));
        assert!(matches!(
            decode(CodecId::RAW, &[0; 7], 2, 2, &mut out),
            Err(CodecError::BadPayloadLen { .. })
        ));
    }

    #[test]
    fn truncated_and_garbage_payloads_are_errors() {
        let depth: Vec<u16> = (0..64 * 48).map(|i| (i * 37 % 5000) as u16).collect();
        for codec in ALL {
            let mut enc = Vec::new();
            codec.encode(&depth, 64, 48, &mut enc).unwrap();
            let mut out = vec![0u16; depth.len()];
            for cut in [0, 1, 3, enc.len() / 2, enc.len() - 1] {
                assert!(
                    decode(codec.id(), &enc[..cut], 64, 48, &mut out).is_err(),
                    "{codec} accepted a payload cut at {cut}"
                );
            }
            // Declared frame bigger than what the payload holds.
            let mut big = vec![0u16; 128 * 48];
            assert!(decode(codec.id(), &enc, 128, 48, &mut big).is_err());
        }
    }

    fn frames() -> impl Strategy<Value = (u32, u32, Vec<u16>)> {
        (1u32..70, 1u32..40).prop_flat_map(|(w, h)| {
            let n = (w * h) as usize;
            let noise = proptest::collection::vec(any::<u16>(), n);
            let smooth =
                (0u16..60000, proptest::collection::vec(0u16..4, n)).prop_map(|(base, steps)| {
                    let mut v = base;
                    steps
                        .into_iter()
                        .map(|s| match s {
                            0 => 0,
                            1 => 65535,
                            _ => {
                                v = v.wrapping_add(s);
                                v
                            }
                        })
                        .collect()
                });
            (Just(w), Just(h), prop_oneof![noise, smooth])
        })
    }

    #[test]
    fn max_error_selects_grad_rans32_for_the_default_and_keeps_a_rans_codec() {
        let mm: MaxError = "2mm".parse().unwrap();
        let two = ErrorBound::Absolute { units: 2 };
        let pct: MaxError = "0.5%".parse().unwrap();
        let half = pct.to_bound(0.001).unwrap();
        for (chosen, want) in [
            (DepthCodec::Lz4Planes, DepthCodec::GradRans32 { bound: two }),
            (DepthCodec::MED_RANS, DepthCodec::MedRans { bound: two }),
            (DepthCodec::GRAD_RANS, DepthCodec::GradRans { bound: two }),
            (
                DepthCodec::GRAD_RANS32,
                DepthCodec::GradRans32 { bound: two },
            ),
            // An explicit bound in the codec name is replaced by --depth-max-error.
            (
                "med-rans:7".parse().unwrap(),
                DepthCodec::MedRans { bound: two },
            ),
        ] {
            assert_eq!(
                with_max_error(chosen, Some(mm), 0.001),
                Ok(want),
                "{chosen}"
            );
        }
        assert_eq!(
            with_max_error(DepthCodec::Lz4Planes, Some(pct), 0.001),
            Ok(DepthCodec::GradRans32 { bound: half })
        );
        assert!(!half.is_lossless());
        // No bound: every codec stays as it is.
        for codec in ALL {
            assert_eq!(with_max_error(codec, None, 0.001), Ok(codec));
        }
        // Lossless-only codecs are an error, naming the codecs that take a bound.
        for codec in [DepthCodec::Raw, DepthCodec::ZstdPlanes { level: 3 }] {
            let e = with_max_error(codec, Some(mm), 0.001).unwrap_err();
            assert!(
                e.contains("grad-rans32") && e.contains(&codec.to_string()),
                "{e}"
            );
        }
    }

    proptest! {
        #[test]
        fn every_codec_round_trips((w, h, depth) in frames()) {
            for codec in ALL {
                let mut enc = Vec::new();
                codec.encode(&depth, w, h, &mut enc).unwrap();
                let back = decode_to_vec(codec.id(), &enc, w, h).unwrap();
                prop_assert_eq!(&back, &depth);
            }
        }

        /// The SIMD encoders and decoders (where the CPU has them) and the scalar ones agree
        /// on every frame: the same bytes, and for valid or corrupted payloads the same
        /// samples or the same error.
        #[test]
        fn simd_and_scalar_decoders_agree(
            (w, h, depth) in frames(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            for codec in [DepthCodec::GRAD_RANS32, DepthCodec::GRAD_RANS, DepthCodec::MED_RANS] {
                let mut enc = Vec::new();
                codec.encode(&depth, w, h, &mut enc).unwrap();
                let mut enc_scalar = Vec::new();
                set_scalar_only(true);
                codec.encode(&depth, w, h, &mut enc_scalar).unwrap();
                set_scalar_only(false);
                prop_assert_eq!(&enc, &enc_scalar);
                for &(at, x) in &flips {
                    let i = at % enc.len();
                    enc[i] ^= x;
                }
                let simd = decode_to_vec(codec.id(), &enc, w, h);
                set_scalar_only(true);
                let scalar = decode_to_vec(codec.id(), &enc, w, h);
                set_scalar_only(false);
                prop_assert_eq!(format!("{simd:?}"), format!("{scalar:?}"));
            }
        }

        #[test]
        fn random_payloads_never_panic(
            id in 0u8..8, w in 1u32..64, h in 1u32..64,
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut out = vec![0u16; (w * h) as usize];
            let _ = decode(CodecId(id), &payload, w, h, &mut out);
        }
    }
}
