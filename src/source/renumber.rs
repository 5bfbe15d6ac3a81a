//! Frame numbers for video streams whose frame numbers are not the camera's.
//!
//! A RealSense camera without UVC metadata (no kernel patch, some USB hubs) has no hardware
//! frame counter: librealsense then numbers the frames it received, so a frame the camera or
//! USB lost leaves no gap in the numbers and the loss is invisible. [`Renumber`] numbers such
//! frames from their timestamps instead: a frame more than [`LOST_AFTER_PERIODS`] frame
//! periods after the previous one skips the numbers of the frames that should have come
//! between, so that the recorder records the gap as it does for a camera with a counter.
//! An estimate: host timestamps jitter; the threshold keeps jitter of up to half a period
//! from counting as a loss.

/// The gap to the previous frame, in frame periods, from which frames count as lost.
pub const LOST_AFTER_PERIODS: f64 = 1.5;

/// The most numbers one gap may skip (a clock jump must not skip billions).
const MAX_SKIP: u64 = 1_000_000;

/// The metadata key (as [`crate::container::FrameMetadata::key_of`] makes it) of a camera's
/// own frame counter: frames that have it, equal to their frame number, keep their numbers
/// (librealsense numbers frames by the counter; its playback of a recording without one
/// reports a counter of 0).
pub const COUNTER_KEY: &str = "frame_counter";

/// The metadata key under which a renumbered frame keeps the number it came with.
pub const ORIGINAL_NUMBER_KEY: &str = "librealsense_frame_number";

/// Numbering of one stream from timestamps.
#[derive(Clone, Debug, Default)]
pub struct Renumber {
    last: Option<(f64, u64)>,
}

impl Renumber {
    /// The number of the frame at `ts_ms` of a stream of `fps`; the first frame keeps
    /// `number`.
    pub fn next(&mut self, number: u64, ts_ms: f64, fps: f64) -> u64 {
        let n = match self.last {
            None => number,
            Some((t, n)) => {
                let periods = (ts_ms - t) * fps.max(1e-3) / 1000.0;
                if periods.is_finite() && periods > LOST_AFTER_PERIODS {
                    n + (periods.round() as u64).min(MAX_SKIP)
                } else {
                    n + 1
                }
            }
        };
        self.last = Some((ts_ms, n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_on_time_count_up_and_late_ones_skip_the_frames_between() {
        let mut r = Renumber::default();
        let p = 1000.0 / 30.0;
        // Jitter of up to half a period is not a loss; two periods are one lost frame, three
        // are two.
        let ts = [0.0, p * 1.4, p * 2.0, p * 4.0, p * 7.1, p * 7.9];
        let got: Vec<u64> = ts.iter().map(|&t| r.next(100, t, 30.0)).collect();
        assert_eq!(got, [100, 101, 102, 104, 107, 108]);
    }

    #[test]
    fn clocks_that_jump_or_go_back_do_not_run_away() {
        let mut r = Renumber::default();
        assert_eq!(r.next(5, 1000.0, 30.0), 5);
        assert_eq!(r.next(6, 900.0, 30.0), 6);
        assert_eq!(r.next(7, 1e300, 30.0), 6 + MAX_SKIP);
        assert_eq!(r.next(8, f64::NAN, 30.0), 7 + MAX_SKIP);
    }
}
