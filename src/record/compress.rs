//! The compression workers shared by all cameras: depth frames from every camera's queue,
//! encoded with the session's depth codec, handed to that camera's writer.

use crossbeam_channel::{Receiver, Select, Sender};

use crate::codec::DepthCodec;

use super::pipeline::*;

pub(super) fn compress_loop(
    codec: DepthCodec,
    rxs: Vec<Receiver<Job>>,
    txs: Vec<Sender<ToWriter>>,
) {
    let mut live: Vec<usize> = (0..rxs.len()).collect();
    let mut payload_cap = 0;
    while !live.is_empty() {
        let mut sel = Select::new();
        for &i in &live {
            sel.recv(&rxs[i]);
        }
        let op = sel.select();
        let k = op.index();
        let cam = live[k];
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
                let _ = txs[cam].send(msg);
            }
            Err(_) => {
                live.remove(k);
            }
        }
    }
}
