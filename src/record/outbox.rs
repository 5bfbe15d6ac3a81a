//! The capture thread's way to its writer. Capture must never wait on the disk, and the
//! records that say what happened (gaps, events, video segments, flushes, the end of
//! capture) must never be lost. So records go through a local backlog in front of the
//! writer's bounded channel:
//!
//! - every record joins the backlog, which is moved into the channel as far as the channel
//!   has room ([`WRITER_QUEUE`]), at every sample;
//! - data records (colour entries, IMU batches) are only made while
//!   [`Outbox::room_for_data`]: when the writer is [`DATA_BACKLOG`] records behind, the
//!   caller drops the sample *before* encoding it, counts it and records a gap (a control
//!   record), so the video and the file never disagree;
//! - gap runs are not cut into pieces while the writer is behind ([`Outbox::behind`]), so a
//!   stall of hours adds a handful of records, not thousands;
//! - a backlog of [`CONTROL_BACKLOG`] records (a writer stuck for a very long time) is the
//!   memory bound: records beyond it are counted in the camera's `records_lost` (in
//!   `session.json` and the summary), never silently dropped.
//!
//! Conversions (`lossless`) wait for the writer instead.

use std::collections::VecDeque;

use crossbeam_channel::Sender;

use super::pipeline::ToWriter;
use super::stats::CameraStats;

/// Records a writer channel holds before producers stop adding to it (capture's backlog
/// waits, compression workers pick other cameras' frames). The channel's capacity is this
/// plus one slot per compression worker, so that a worker's send never blocks.
/// (Smaller under test, so that a stall test fills it in a second.)
pub(super) const WRITER_QUEUE: usize = if cfg!(test) { 64 } else { 4096 };

/// Backlog length from which data records are refused (the samples are dropped and counted).
pub(super) const DATA_BACKLOG: usize = 1024;

/// Backlog length from which records are lost (counted in `records_lost`): a memory bound
/// that only a writer stuck for a very long time reaches.
pub(super) const CONTROL_BACKLOG: usize = 65_536;

pub(super) struct Outbox<'a> {
    tx: Sender<ToWriter>,
    backlog: VecDeque<ToWriter>,
    lossless: bool,
    stats: &'a CameraStats,
}

impl<'a> Outbox<'a> {
    pub(super) fn new(tx: Sender<ToWriter>, lossless: bool, stats: &'a CameraStats) -> Self {
        Outbox {
            tx,
            backlog: VecDeque::new(),
            lossless,
            stats,
        }
    }

    /// Queues a record for the writer (see the module docs for when it can be lost).
    pub(super) fn push(&mut self, m: ToWriter) {
        if self.lossless {
            // A conversion waits for its writer; a dead writer drains its channel.
            let _ = self.tx.send(m);
            return;
        }
        if self.backlog.len() >= CONTROL_BACKLOG {
            CameraStats::add(&self.stats.records_lost, 1);
            return;
        }
        self.backlog.push_back(m);
        self.pump();
    }

    /// Whether a data record (colour entry, IMU batch) may be made now.
    pub(super) fn room_for_data(&self) -> bool {
        self.lossless || self.backlog.len() < DATA_BACKLOG
    }

    /// Whether records are waiting for the writer.
    pub(super) fn behind(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Moves waiting records into the writer's channel as far as it has room.
    pub(super) fn pump(&mut self) {
        while !self.backlog.is_empty() && self.tx.len() < WRITER_QUEUE {
            let Some(m) = self.backlog.pop_front() else {
                break;
            };
            if self.tx.try_send(m).is_err() {
                // Disconnected: the writer is gone (it only ends after `close`).
                self.backlog.clear();
                return;
            }
        }
    }

    /// Capture has ended: hands every waiting record to the writer, waiting as long as it
    /// takes (a failed writer drains its channel, so this ends).
    pub(super) fn close(mut self) {
        for m in self.backlog.drain(..) {
            if self.tx.send(m).is_err() {
                break;
            }
        }
    }
}
