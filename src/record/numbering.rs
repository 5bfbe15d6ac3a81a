//! The frame numbers of one stream as the capture thread sees them: a jump is a gap, and the
//! gap is blamed where the frames were lost - on the host, as far as the source counted such
//! losses since the stream's previous frame ([`crate::source::Source::losses`]: its buffer
//! overflowed, or the driver handed over a frame that could not be read), in the camera, USB
//! or driver for the rest. A step back is a restart (a camera that came back).
//!
//! Why: a host-side loss and a camera-side one need different fixes (CPU and disk against
//! cabling and USB bandwidth), and counting every missing number as "skipped by the camera"
//! sent users to the wrong one.

use crate::container::GapReason;
use crate::source::{SourceLosses, Timing};

/// Frames missing between two frames of one stream, by where they were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Missing {
    /// Frame numbers `first..first + bad + host_dropped + source_skipped`, in that order.
    pub first: u64,
    pub bad: u64,
    pub host_dropped: u64,
    pub source_skipped: u64,
}

impl Missing {
    /// The gaps to record, one per cause: `(first, last, reason, detail)`.
    pub fn gaps(&self) -> Vec<(u64, u64, GapReason, &'static str)> {
        let mut out = Vec::new();
        let mut next = self.first;
        for (n, reason, detail) in [
            (
                self.bad,
                GapReason::BadFrame,
                "frames the driver delivered could not be read",
            ),
            (
                self.host_dropped,
                GapReason::HostDropped,
                "dropped on the host: the source's buffer was full (rsrec fell behind)",
            ),
            (
                self.source_skipped,
                GapReason::SourceSkipped,
                "frame numbers skipped by the source (camera, USB or driver)",
            ),
        ] {
            if n > 0 {
                out.push((next, next + n - 1, reason, detail));
                next += n;
            }
        }
        out
    }
}

/// What a frame's number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The next number (or the stream's first frame).
    InOrder,
    /// Numbers were skipped.
    Gap(Missing),
    /// The number went back (or repeated): the source restarted its numbering.
    Restarted { from: u64 },
}

/// One stream's numbering.
#[derive(Clone, Debug, Default)]
pub(super) struct Numbering {
    last: Option<u64>,
    /// The source's losses of this stream when its previous frame arrived.
    seen: SourceLosses,
}

impl Numbering {
    /// Starts following a stream whose source has lost `losses` already (before the
    /// recording: not the recording's losses).
    pub fn new(losses: SourceLosses) -> Self {
        Self {
            last: None,
            seen: losses,
        }
    }

    /// The frame `t` arrived; `losses` is the source's count now.
    pub fn frame(&mut self, t: &Timing, losses: SourceLosses) -> Step {
        let n = t.frame_number;
        let bad = losses.bad.saturating_sub(self.seen.bad);
        let dropped = losses.host_dropped.saturating_sub(self.seen.host_dropped);
        self.seen = losses;
        let last = self.last.replace(n);
        match last {
            None => Step::InOrder,
            Some(l) if n == l.wrapping_add(1) => Step::InOrder,
            Some(l) if n > l => {
                let missing = n - l - 1;
                let bad = bad.min(missing);
                let host_dropped = dropped.min(missing - bad);
                Step::Gap(Missing {
                    first: l + 1,
                    bad,
                    host_dropped,
                    source_skipped: missing - bad - host_dropped,
                })
            }
            Some(l) => Step::Restarted { from: l },
        }
    }

    /// The number of the stream's last frame.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// The stream's numbering starts again (after a reconnect): the next frame is a first.
    pub fn restart(&mut self, losses: SourceLosses) {
        *self = Self::new(losses);
    }

    /// Losses the source counted after the stream's last frame: lost at the end, with no
    /// later frame to place them (counted, without a gap record).
    pub fn unplaced(&self, losses: SourceLosses) -> SourceLosses {
        SourceLosses {
            host_dropped: losses.host_dropped.saturating_sub(self.seen.host_dropped),
            bad: losses.bad.saturating_sub(self.seen.bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Timing {
        Timing {
            frame_number: n,
            device_ts_ms: 0.0,
            ts_domain: 0,
            host_ts_us: 0,
        }
    }

    fn l(host_dropped: u64, bad: u64) -> SourceLosses {
        SourceLosses { host_dropped, bad }
    }

    #[test]
    fn a_jump_is_blamed_on_the_host_as_far_as_the_source_counted_losses() {
        let mut n = Numbering::new(l(5, 0));
        assert_eq!(n.frame(&t(10), l(5, 0)), Step::InOrder);
        assert_eq!(n.frame(&t(11), l(5, 0)), Step::InOrder);
        // 4 missing; the source dropped 1 and had 1 bad frame since frame 11.
        let Step::Gap(m) = n.frame(&t(16), l(6, 1)) else {
            panic!()
        };
        assert_eq!(
            m,
            Missing {
                first: 12,
                bad: 1,
                host_dropped: 1,
                source_skipped: 2
            }
        );
        assert_eq!(
            m.gaps(),
            vec![
                (12, 12, GapReason::BadFrame, m.gaps()[0].3),
                (13, 13, GapReason::HostDropped, m.gaps()[1].3),
                (14, 15, GapReason::SourceSkipped, m.gaps()[2].3),
            ]
        );
    }

    #[test]
    fn more_losses_than_missing_numbers_blame_only_the_missing_ones() {
        let mut n = Numbering::new(l(0, 0));
        n.frame(&t(1), l(0, 0));
        let Step::Gap(m) = n.frame(&t(3), l(9, 0)) else {
            panic!()
        };
        assert_eq!((m.host_dropped, m.source_skipped, m.bad), (1, 0, 0));
        // Later losses are counted from the newest figure, not again.
        assert_eq!(n.frame(&t(4), l(9, 0)), Step::InOrder);
        assert_eq!(n.unplaced(l(11, 1)), l(2, 1));
    }

    #[test]
    fn a_step_back_is_a_restart_and_restart_forgets_the_last_number() {
        let mut n = Numbering::new(l(0, 0));
        n.frame(&t(100), l(0, 0));
        assert_eq!(n.frame(&t(3), l(0, 0)), Step::Restarted { from: 100 });
        assert_eq!(n.frame(&t(3), l(0, 0)), Step::Restarted { from: 3 });
        n.restart(l(4, 0));
        assert_eq!(n.frame(&t(50), l(4, 0)), Step::InOrder);
        assert_eq!(
            n.frame(&t(u64::MAX), l(4, 0)),
            Step::Gap(Missing {
                first: 51,
                bad: 0,
                host_dropped: 0,
                source_skipped: u64::MAX - 51,
            })
        );
    }
}
