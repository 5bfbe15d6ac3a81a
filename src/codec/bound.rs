//! Error bounds of the lossy `med-rans` mode (`format-spec.md` §8.4.6): every non-zero depth
//! value is replaced by a representative within the bound before lossless coding; zero (no
//! data) stays zero. The representatives depend only on the bound, so the mapping is a
//! 65536-entry lookup table.

use std::fmt;
use std::str::FromStr;

/// Parts per million in 100 %.
const PPM: u64 = 1_000_000;
/// Largest relative bound accepted: 10 %.
pub const MAX_RELATIVE_PPM: u32 = 100_000;

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

#[cfg(test)]
mod tests {
    use super::*;

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
