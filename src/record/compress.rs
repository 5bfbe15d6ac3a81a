//! The compression workers shared by all cameras: depth (and infrared) frames from every
//! camera's queue, encoded with the session's depth codec (for `auto`, chosen per frame from
//! the camera's queue: [`DepthEncoding::choose`]; infrared always bit-exact), handed to that
//! camera's writer.
//!
//! A worker only takes a frame of a camera whose writer has room ([`WRITER_QUEUE`]), so a
//! writer that stalls (a slow disk, a full one) never blocks a worker: its camera's frames
//! wait in its capture queue, which then drops and counts them, while the other cameras go
//! on at full speed.

use std::time::Duration;

use crossbeam_channel::{Receiver, Select, Sender};

use super::encoding::DepthEncoding;
use super::outbox::WRITER_QUEUE;
use crate::container::format::record_type;

use super::pipeline::*;

/// Records waiting for a camera's writer from which its disk, not the CPU, is the bottleneck:
/// `auto` then keeps its strongest codec (a cheaper one would only write more). About a
/// second of frames and IMU batches of one camera.
const WRITER_BEHIND: usize = 48;

/// How often a worker looks again at writers that had no room.
const RECHECK: Duration = Duration::from_millis(5);

pub(super) fn compress_loop(
    depth: DepthEncoding,
    capacity: usize,
    rxs: Vec<Receiver<Job>>,
    txs: Vec<Sender<ToWriter>>,
) {
    let mut live: Vec<usize> = (0..rxs.len()).collect();
    let mut payload_cap = 0;
    while !live.is_empty() {
        let open: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| txs[i].len() < WRITER_QUEUE)
            .collect();
        if open.is_empty() {
            std::thread::sleep(RECHECK);
            continue;
        }
        let mut sel = Select::new();
        for &i in &open {
            sel.recv(&rxs[i]);
        }
        // A timeout, so that a writer that has room again is seen.
        let Ok(op) = sel.select_timeout(RECHECK * 20) else {
            continue;
        };
        let cam = open[op.index()];
        match op.recv(&rxs[cam]) {
            Ok(mut job) => {
                let queues: Vec<usize> = live.iter().map(|&i| rxs[i].len()).collect();
                let own = rxs[cam].len();
                let writer_behind = txs[cam].len() >= WRITER_BEHIND;
                let mut codec = codec_for(depth, own, &queues, capacity, writer_behind);
                // Infrared (§5.9) is always bit-exact, and its raw size is a byte a pixel.
                let infrared = job.header.record_type == record_type::INFRARED_FRAME;
                if infrared {
                    codec = codec.lossless();
                }
                job.header.codec = codec.id();
                #[cfg(test)]
                slow::pause(job.width, codec == depth.best());
                let mut payload = Vec::with_capacity(payload_cap);
                let msg = match codec.encode(&job.data, job.width, job.height, &mut payload) {
                    Ok(()) => {
                        payload_cap = payload_cap.max(payload.len());
                        ToWriter::Depth {
                            seq: job.seq,
                            header: job.header,
                            raw_bytes: job.data.len() as u64 * if infrared { 1 } else { 2 },
                            payload,
                        }
                    }
                    Err(e) => ToWriter::EncodeFailed {
                        seq: job.seq,
                        header: job.header,
                        error: e.to_string(),
                    },
                };
                // Never blocks: the channel has a slot per worker beyond WRITER_QUEUE.
                let _ = txs[cam].send(msg);
            }
            Err(_) => live.retain(|&i| i != cam),
        }
    }
}

/// The codec of a frame taken from a camera whose queue still holds `own` frames, while the
/// live cameras' queues hold `queues`. `auto`: the fast codec for a camera whose queue is
/// filling up - or for every camera while the workers are behind overall (the frames waiting
/// over all cameras count as this camera's: with 8 cameras each queue can stay short while
/// together they outrun the CPU) - unless the camera's writer has a backlog
/// (`writer_behind`; a healthy one has a few records waiting): a slow disk.
fn codec_for(
    depth: DepthEncoding,
    own: usize,
    queues: &[usize],
    capacity: usize,
    writer_behind: bool,
) -> crate::codec::DepthCodec {
    let backlog: usize = queues.iter().sum();
    depth.choose(own.max(backlog), capacity, writer_behind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DepthCodec;

    /// Regression: with 8 x 1280x720 cameras every queue stayed below the high-water mark
    /// while together they outran 2 cores, so `auto` kept the strong codec and dropped 21
    /// frames. The frames waiting over all cameras now count as each camera's.
    #[test]
    fn auto_takes_the_fast_codec_when_all_cameras_together_are_behind() {
        let auto = DepthEncoding::AUTO;
        // High-water mark of a 60-frame queue: 15.
        let short = [1usize; 8];
        assert_eq!(
            codec_for(auto, 1, &short, 60, false),
            DepthCodec::GRAD_RANS32
        );
        let together_behind = [2usize; 8];
        assert_eq!(
            codec_for(auto, 2, &together_behind, 60, false),
            DepthCodec::Lz4Planes
        );
        // One camera alone behind: its frames go fast, the others' stay strong while the
        // total is below the mark.
        let one_behind = [15, 0, 0, 0];
        assert_eq!(
            codec_for(auto, 15, &one_behind, 60, false),
            DepthCodec::Lz4Planes
        );
        let light = [3, 0, 0, 0];
        assert_eq!(
            codec_for(auto, 0, &light, 60, false),
            DepthCodec::GRAD_RANS32
        );
        // A slow disk, not the CPU: the smallest output, however long the queues.
        assert_eq!(
            codec_for(auto, 2, &together_behind, 60, true),
            DepthCodec::GRAD_RANS32
        );
        // A fixed codec is fixed.
        let fixed = DepthEncoding::Fixed(DepthCodec::MED_RANS);
        assert_eq!(
            codec_for(fixed, 60, &[60; 8], 60, false),
            DepthCodec::MED_RANS
        );
    }
}

/// Tests make the strong codec slow for frames of one width (a CPU too slow for it), to check
/// that `auto` falls back instead of dropping frames.
#[cfg(test)]
pub(super) mod slow {
    use std::sync::Mutex;
    use std::time::Duration;

    static SLOW: Mutex<Vec<(u32, Duration)>> = Mutex::new(Vec::new());

    /// Encoding a frame `width` wide with the strong codec takes `extra` longer.
    pub(in crate::record) fn slow_best(width: u32, extra: Duration) {
        SLOW.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((width, extra));
    }

    pub(super) fn pause(width: u32, best: bool) {
        if !best {
            return;
        }
        let extra = SLOW
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(w, _)| *w == width)
            .map(|(_, d)| *d);
        if let Some(d) = extra {
            std::thread::sleep(d);
        }
    }
}
