//! Which frames to export: `--frames A:B`, `--time T0:T1` and `--every N`.
//!
//! A selection is a half-open range of positions in one camera's stream (depth frames, or
//! colour frames for `--to color`) plus a step, so it takes constant memory however long the
//! recording is.

use std::fmt;
use std::str::FromStr;

/// `--frames A:B`: positions in the stream, counted from 0 across all of a camera's files;
/// `A` included, `B` excluded (as a Python slice). Either side may be omitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRange {
    pub start: Option<u64>,
    pub end: Option<u64>,
}

/// `--time T0:T1`: seconds from the start of the recording, `T0` included, `T1` excluded.
/// Either side may be omitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeRange {
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
}

fn split_range(s: &str, what: &str) -> Result<(String, String), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{what} {s:?} is not of the form A:B (either side may be empty)"))?;
    if b.contains(':') {
        return Err(format!("{what} {s:?} has more than one ':'"));
    }
    Ok((a.trim().to_string(), b.trim().to_string()))
}

impl FromStr for FrameRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = split_range(s, "frame range")?;
        let parse = |v: &str| -> Result<Option<u64>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<u64>().map(Some).map_err(|_| {
                format!("frame range {s:?}: {v:?} is not a frame position (an integer >= 0)")
            })
        };
        let r = FrameRange {
            start: parse(&a)?,
            end: parse(&b)?,
        };
        if let (Some(a), Some(b)) = (r.start, r.end) {
            if b <= a {
                return Err(format!(
                    "frame range {s:?} is empty (B must be greater than A)"
                ));
            }
        }
        Ok(r)
    }
}

impl FromStr for TimeRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = split_range(s, "time range")?;
        let parse = |v: &str| -> Result<Option<f64>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            match v.strip_suffix('s').unwrap_or(v).parse::<f64>() {
                Ok(t) if t.is_finite() && t >= 0.0 => Ok(Some(t)),
                _ => Err(format!(
                    "time range {s:?}: {v:?} is not a number of seconds >= 0"
                )),
            }
        };
        let r = TimeRange {
            start_s: parse(&a)?,
            end_s: parse(&b)?,
        };
        if let (Some(a), Some(b)) = (r.start_s, r.end_s) {
            if b <= a {
                return Err(format!(
                    "time range {s:?} is empty (T1 must be greater than T0)"
                ));
            }
        }
        Ok(r)
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

impl fmt::Display for FrameRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", opt(&self.start), opt(&self.end))
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", opt(&self.start_s), opt(&self.end_s))
    }
}

/// What the user asked for, before it is applied to a camera.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Window {
    #[default]
    All,
    Frames(FrameRange),
    Time(TimeRange),
}

/// Positions `start, start + step, ...` below `end` of one camera's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    pub start: usize,
    pub end: usize,
    pub step: usize,
}

impl Selection {
    /// Number of selected positions.
    pub fn len(&self) -> usize {
        if self.end <= self.start {
            0
        } else {
            (self.end - self.start).div_ceil(self.step)
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `j`-th selected position.
    pub fn position(&self, j: usize) -> usize {
        self.start + j * self.step
    }
    pub fn iter(&self) -> impl Iterator<Item = usize> {
        (self.start..self.end).step_by(self.step)
    }
    /// The last selected position, if any.
    pub fn last(&self) -> Option<usize> {
        let n = self.len();
        (n > 0).then(|| self.position(n - 1))
    }
}

/// Applies `--frames` to a stream of `count` frames. Out-of-range positions are an error
/// (they are not clamped): the message names the camera and the stream's length.
pub fn frames_selection(
    r: FrameRange,
    count: usize,
    every: usize,
    camera: &str,
    what: &str,
) -> Result<Selection, String> {
    let start = r.start.unwrap_or(0);
    let end = r.end.unwrap_or(count as u64);
    if start >= count as u64 || end > count as u64 {
        return Err(format!(
            "--frames {r} is out of range for {camera}: it has {count} {what} (positions 0:{count})"
        ));
    }
    Ok(Selection {
        start: start as usize,
        end: end as usize,
        step: every.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frame_ranges() {
        assert_eq!(
            "3:10".parse::<FrameRange>().unwrap(),
            FrameRange {
                start: Some(3),
                end: Some(10)
            }
        );
        assert_eq!(
            ":10".parse::<FrameRange>().unwrap(),
            FrameRange {
                start: None,
                end: Some(10)
            }
        );
        assert_eq!(
            "5:".parse::<FrameRange>().unwrap(),
            FrameRange {
                start: Some(5),
                end: None
            }
        );
        for bad in ["5", "a:3", "3:3", "4:2", "-1:3", "1:2:3", "1.5:3"] {
            assert!(bad.parse::<FrameRange>().is_err(), "{bad}");
        }
        assert_eq!("2:7".parse::<FrameRange>().unwrap().to_string(), "2:7");
        assert_eq!(":7".parse::<FrameRange>().unwrap().to_string(), ":7");
    }

    #[test]
    fn parses_time_ranges() {
        let r: TimeRange = "1.5:3s".parse().unwrap();
        assert_eq!((r.start_s, r.end_s), (Some(1.5), Some(3.0)));
        let r: TimeRange = ":2".parse().unwrap();
        assert_eq!((r.start_s, r.end_s), (None, Some(2.0)));
        for bad in ["2", "x:1", "3:1", "-1:2", "nan:1", "inf:", "1:1"] {
            assert!(bad.parse::<TimeRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn selections_step_and_count() {
        let s = Selection {
            start: 3,
            end: 10,
            step: 3,
        };
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 6, 9]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.last(), Some(9));
        assert_eq!(s.position(1), 6);
        let e = Selection {
            start: 4,
            end: 4,
            step: 1,
        };
        assert!(e.is_empty());
        assert_eq!(e.last(), None);
    }

    #[test]
    fn frame_selection_bounds() {
        let all = FrameRange {
            start: None,
            end: None,
        };
        assert_eq!(
            frames_selection(all, 10, 1, "c", "depth frames").unwrap(),
            Selection {
                start: 0,
                end: 10,
                step: 1
            }
        );
        let r: FrameRange = "2:10".parse().unwrap();
        assert_eq!(frames_selection(r, 10, 4, "c", "f").unwrap().len(), 2);
        let err =
            frames_selection("5:11".parse().unwrap(), 10, 1, "cam0", "depth frames").unwrap_err();
        assert!(err.contains("out of range for cam0"), "{err}");
        assert!(err.contains("10 depth frames"), "{err}");
        assert!(frames_selection("10:".parse().unwrap(), 10, 1, "c", "f").is_err());
        assert!(frames_selection(all, 0, 1, "c", "f").is_err());
    }
}
