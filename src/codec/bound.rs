//! Error bounds of the lossy `med-rans` mode (`format-spec.md` §8.4.6): every non-zero depth
//! value is replaced by a representative within the bound before lossless coding; zero (no
//! data) stays zero. The representatives depend only on the bound, so the mapping is a
//! 65536-entry lookup table.

use std::fmt;
use std::str::FromStr;

/// Parts per million in 100 %.
const PPM: u64 = 1_000_000;
pub use super::spec::med_rans::MAX_RELATIVE_PPM;

/// How far a decoded depth value may be from the original.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum ErrorBound {
    /// Bit-exact.
    #[default]
    Lossless,
    /// `|decoded - original| <= units` (depth units; 1 mm with the usual 0.001 m units).
    Absolute { units: u16 },
    /// `|decoded - original| <= floor(original * ppm / 10^6)`.
    Relative { ppm: u32 },
}

impl ErrorBound {
    /// The largest error allowed for original value `v`.
    pub fn allowed(self, v: u16) -> u32 {
        match self {
            Self::Lossless => 0,
            Self::Absolute { units } => units as u32,
            Self::Relative { ppm } => (v as u64 * ppm as u64 / PPM) as u32,
        }
    }

    /// Value -> representative, built greedily from 1 upwards (§8.4.6): a bucket starts at
    /// `lo`, its representative is `r = min(lo + e(lo), 65535)` and it takes every following
    /// `v` with `v - e(v) <= r`.
    pub fn lut(self) -> Vec<u16> {
        let mut lut = vec![0u16; 65536];
        let mut lo = 1u32;
        while lo <= 65535 {
            let r = (lo + self.allowed(lo as u16)).min(65535);
            let mut v = lo;
            while v <= 65535 && v.saturating_sub(self.allowed(v as u16)) <= r {
                lut[v as usize] = r as u16;
                v += 1;
            }
            lo = v;
        }
        lut
    }

    /// (kind, value) as stored in the `med-rans` header (§8.4.1).
    pub fn to_header(self) -> (u8, u32) {
        match self {
            Self::Lossless => (0, 0),
            Self::Absolute { units } => (1, units as u32),
            Self::Relative { ppm } => (2, ppm),
        }
    }

    pub fn from_header(kind: u8, value: u32) -> Option<Self> {
        match (kind, value) {
            (0, 0) => Some(Self::Lossless),
            (1, 1..=65535) => Some(Self::Absolute {
                units: value as u16,
            }),
            (2, 1..=MAX_RELATIVE_PPM) => Some(Self::Relative { ppm: value }),
            _ => None,
        }
    }

    pub fn is_lossless(self) -> bool {
        self == Self::Lossless
    }
}

impl fmt::Display for ErrorBound {
    /// `0`, `N` (depth units) or `P%`; [`FromStr`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lossless => f.write_str("0"),
            Self::Absolute { units } => write!(f, "{units}"),
            Self::Relative { ppm } => {
                let s = format!("{:.4}", *ppm as f64 / 1e4);
                write!(f, "{}%", s.trim_end_matches('0').trim_end_matches('.'))
            }
        }
    }
}

impl FromStr for ErrorBound {
    type Err = String;
    /// `N` in depth units, or `P%` relative (up to 10 %, at most 4 decimals).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_suffix('%') {
            let pct: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("'{s}' is not a percentage"))?;
            let ppm = (pct * 1e4).round();
            if !(pct > 0.0 && ppm >= 1.0 && ppm <= MAX_RELATIVE_PPM as f64) {
                return Err(format!("relative error bound {s} is not in (0 %, 10 %]"));
            }
            return Ok(Self::Relative { ppm: ppm as u32 });
        }
        let units: u32 = s
            .trim()
            .parse()
            .map_err(|_| format!("error bound '{s}' is not N (depth units) or P%"))?;
        match units {
            0 => Ok(Self::Lossless),
            1..=65535 => Ok(Self::Absolute {
                units: units as u16,
            }),
            _ => Err(format!("error bound {units} is above 65535")),
        }
    }
}

/// A bound as users give it (`--depth-max-error`): `Nmm` (millimetres, converted to depth
/// units per stream), `P%` relative, or `0` for lossless.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum MaxError {
    Millimetres(f64),
    Bound(ErrorBound),
}

impl MaxError {
    /// The bound in depth units of `metres_per_unit`: the largest whole number of units not
    /// above the millimetres asked for (so the bound is never exceeded).
    pub fn to_bound(self, metres_per_unit: f32) -> Result<ErrorBound, String> {
        match self {
            Self::Bound(b) => Ok(b),
            Self::Millimetres(mm) => {
                if metres_per_unit.is_nan() || metres_per_unit <= 0.0 {
                    return Err(format!("depth units {metres_per_unit} m are not usable"));
                }
                // f32 units are inexact (0.001 is 1.00000005 mm): allow for that, no more.
                let units = (mm / (metres_per_unit as f64 * 1000.0) * (1.0 + 1e-6)).floor();
                if units < 1.0 {
                    return Err(format!(
                        "{mm} mm is less than one depth unit ({} mm)",
                        metres_per_unit as f64 * 1000.0
                    ));
                }
                Ok(ErrorBound::Absolute {
                    units: units.min(65535.0) as u16,
                })
            }
        }
    }
}

impl FromStr for MaxError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(mm) = s.strip_suffix("mm") {
            let mm: f64 = mm
                .trim()
                .parse()
                .map_err(|_| format!("'{s}' is not a number of millimetres"))?;
            if !(mm > 0.0 && mm <= 65535.0) {
                return Err(format!("{s} is not in (0, 65535] mm"));
            }
            return Ok(Self::Millimetres(mm));
        }
        if s.ends_with('%') || s == "0" {
            return Ok(Self::Bound(s.parse()?));
        }
        Err(format!(
            "error bound '{s}' is not Nmm (e.g. 1mm), P% (e.g. 0.5%) or 0"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_error_converts_to_units() {
        let m: MaxError = "1mm".parse().unwrap();
        assert_eq!(m.to_bound(0.001), Ok(ErrorBound::Absolute { units: 1 }));
        assert_eq!(m.to_bound(0.0001), Ok(ErrorBound::Absolute { units: 10 }));
        assert!(m.to_bound(0.002).is_err());
        let r: MaxError = "0.5%".parse().unwrap();
        assert_eq!(r.to_bound(0.001), Ok(ErrorBound::Relative { ppm: 5000 }));
        assert!("1".parse::<MaxError>().is_err());
        assert!("-1mm".parse::<MaxError>().is_err());
    }

    #[test]
    fn luts_respect_the_bound_and_keep_zero() {
        for b in [
            ErrorBound::Absolute { units: 1 },
            ErrorBound::Absolute { units: 5 },
            ErrorBound::Absolute { units: 65535 },
            ErrorBound::Relative { ppm: 1 },
            ErrorBound::Relative { ppm: 5000 },
            ErrorBound::Relative {
                ppm: MAX_RELATIVE_PPM,
            },
        ] {
            let lut = b.lut();
            assert_eq!(lut[0], 0);
            for v in 1..=65535u16 {
                let r = lut[v as usize];
                assert!(r >= 1, "{b} maps {v} to a hole");
                assert!(r.abs_diff(v) as u32 <= b.allowed(v), "{b}: {v} -> {r}");
                assert_eq!(lut[r as usize], r, "{b}: representative {r} is not fixed");
            }
        }
    }

    #[test]
    fn parse_and_print() {
        for s in ["0", "1", "65535", "0.5%", "1%", "10%", "0.0001%"] {
            let b: ErrorBound = s.parse().unwrap();
            assert_eq!(b.to_string(), s);
            assert_eq!(b.to_string().parse::<ErrorBound>().unwrap(), b);
        }
        for s in ["", "x", "-1", "65536", "0%", "11%", "1e-9%"] {
            assert!(s.parse::<ErrorBound>().is_err(), "{s}");
        }
    }
}
