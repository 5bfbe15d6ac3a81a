//! The compression workers shared by all cameras: depth frames from every camera's queue,
//! encoded with the session's depth codec, handed to that camera's writer.
//!
//! A worker only takes a frame of a camera whose writer has room ([`WRITER_QUEUE`]), so a
//! writer that stalls (a slow disk, a full one) never blocks a worker: its camera's frames
//! wait in its capture queue, which then drops and counts them, while the other cameras go
//! on at full speed.

use std::time::Duration;

use crossbeam_channel::{Receiver, Select, Sender};

use super::outbox::WRITER_QUEUE;
use crate::codec::DepthCodec;

use super::pipeline::*;

/// How often a worker looks again at writers that had no room.
const RECHECK: Duration = Duration::from_millis(5);

pub(super) fn compress_loop(
    codec: DepthCodec,
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
            Ok(job) => {
                let mut payload = Vec::with_capacity(payload_cap);
                let msg = match codec.encode(&job.data, job.width, job.height, &mut payload) {
                    Ok(()) => {
                        payload_cap = payload_cap.max(payload.len());
                        ToWriter::Depth {
                            seq: job.seq,
                            header: job.header,
                            raw_bytes: job.data.len() as u64 * 2,
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
