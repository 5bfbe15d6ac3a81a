//! Recovery and verification: the reader's strict scan mode put to work.
//!
//! `verify` checks every record checksum, decodes every frame and, for a closed file, checks
//! that the final index matches the records. `recover` copies every intact record into a new,
//! closed and indexed file, records what it had to discard as gaps and events, and says
//! whether anything but a torn tail was lost.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::error::{ContainerError, Result};
use super::format::*;
use super::header::StreamKind;
use super::index::IndexBlock;
use super::reader::Reader;
use super::record::{Event, Gap, GapReason, Record, RecordHeader, RecordKind};
use super::scan::{scan, ScanMode, Tail};
use super::writer::{FsyncPolicy, Writer, WriterOptions};
use crate::codec;
use crate::error::chain as error_chain;

/// One thing wrong with a file.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub offset: u64,
    pub message: String,
}

/// Outcome of [`verify`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub depth_frames: u64,
    /// §5.9, format version 3.
    pub infrared_frames: u64,
    pub unknown_records: u64,
    pub closed: bool,
    /// The first problems found (at most [`VerifyReport::MAX_LISTED`]).
    pub problems: Vec<Problem>,
    pub problem_count: u64,
}

impl VerifyReport {
    pub const MAX_LISTED: usize = 100;
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
    fn problem(&mut self, offset: u64, message: String) {
        self.problem_count += 1;
        if self.problems.len() < Self::MAX_LISTED {
            self.problems.push(Problem { offset, message });
        }
    }
}

/// Checks the payload of one data record: depth frames decode, other payloads parse.
fn check_record(reader: &Reader, h: &RecordHeader, p: &[u8], scratch: &mut Vec<u16>) -> Result<()> {
    let bad = |m: String| ContainerError::BadRecord {
        offset: 0,
        message: m,
    };
    match Record::decode(h, p)? {
        Record::DepthFrame { codec, payload } => {
            let s = reader
                .header()
                .stream(h.stream)
                .ok_or_else(|| bad(format!("depth frame of unknown stream {}", h.stream)))?;
            if s.kind != StreamKind::Depth {
                return Err(bad(format!(
                    "depth frame in {} stream {}",
                    s.kind.name(),
                    s.id
                )));
            }
            let n = reader.limits().frame_pixels(s)?;
            codec::precheck(codec, payload, s.width, s.height)
                .map_err(|e| bad(format!("frame {} does not decode: {e}", h.frame_number)))?;
            scratch.resize(n, 0);
            codec::decode(codec, payload, s.width, s.height, scratch)
                .map_err(|e| bad(format!("frame {} does not decode: {e}", h.frame_number)))
        }
        Record::InfraredFrame { codec, payload } => {
            let s = reader
                .infrared_descriptor(h.stream)
                .map_err(|e| bad(format!("infrared frame {}: {e}", h.frame_number)))?;
            let n = reader.limits().frame_pixels(s)?;
            codec::precheck(codec, payload, s.width, s.height)
                .map_err(|e| bad(format!("frame {} does not decode: {e}", h.frame_number)))?;
            let mut pixels = vec![0u8; n];
            codec::decode_y8(codec, payload, s.width, s.height, scratch, &mut pixels)
                .map_err(|e| bad(format!("frame {} does not decode: {e}", h.frame_number)))
        }
        // §5.7: a header copy must be the file's header.
        Record::HeaderCopy(copy) => {
            if copy.encode()? != reader.header().encode()? {
                return Err(bad("header copy differs from the file header".into()));
            }
            Ok(())
        }
        // The other payloads parsed (above); unknown types are skipped (§2).
        _ => Ok(()),
    }
}

/// Checks every record checksum, decodes every depth frame and parses every payload; for a
/// closed file also checks the final index against the records.
pub fn verify(reader: &Reader) -> VerifyReport {
    verify_with_progress(reader, &mut |_| {})
}

/// [`verify`], calling `progress` with the file offset reached after each record (for a
/// progress bar over [`Reader::file_len`] bytes).
pub fn verify_with_progress(reader: &Reader, progress: &mut dyn FnMut(u64)) -> VerifyReport {
    let mut report = VerifyReport {
        closed: reader.is_closed(),
        ..Default::default()
    };
    let mut scratch = Vec::new();
    let mut since_block: Vec<u64> = Vec::new();
    let mut seen: BTreeMap<(u8, u8), Vec<u64>> = BTreeMap::new();
    let mut problems: Vec<Problem> = Vec::new();
    // Records whose checksums hold but whose payload does not decode: reported, and the
    // scan goes on (they are records of the file, not damaged bytes).
    let mut undecodable: Vec<Problem> = Vec::new();
    // Depth streams above the reader's limits (§3, frame-size limit): their frames are
    // counted, not decoded, and reported once per stream. stream -> (why, first offset,
    // frames).
    let mut unchecked: BTreeMap<u8, (String, u64, u64)> = BTreeMap::new();
    for s in &reader.header().streams {
        if matches!(s.kind, StreamKind::Depth | StreamKind::Infrared) {
            if let Err(e) = reader.limits().frame_pixels(s) {
                unchecked.insert(s.id, (e.to_string(), 0, 0));
            }
        }
    }
    let summary = scan(
        reader.bytes(),
        reader.first_record(),
        ScanMode::STRICT,
        |r, p| {
            progress(r.offset);
            let h = &r.header;
            match h.record_type {
                record_type::INDEX_BLOCK => {
                    let block = IndexBlock::decode(p)?;
                    let listed: Vec<u64> = block.entries.iter().map(|e| e.entry.offset).collect();
                    if listed != since_block {
                        problems.push(Problem {
                        offset: r.offset,
                        message: format!(
                            "index block lists {} records, {} were written since the previous block",
                            listed.len(),
                            since_block.len()
                        ),
                    });
                    }
                    since_block.clear();
                }
                record_type::FINAL_INDEX => {}
                t => {
                    let over = matches!(t, record_type::DEPTH_FRAME | record_type::INFRARED_FRAME)
                        .then(|| unchecked.get_mut(&h.stream))
                        .flatten();
                    if let Some((_, first, frames)) = over {
                        if *frames == 0 {
                            *first = r.offset;
                        }
                        *frames += 1;
                    } else if let Err(e) = check_record(reader, h, p, &mut scratch) {
                        let message = match e {
                            ContainerError::BadRecord { message, .. } => message,
                            e => error_chain(&e),
                        };
                        undecodable.push(Problem {
                            offset: r.offset,
                            message,
                        });
                    }
                    if t == record_type::DEPTH_FRAME {
                        report.depth_frames += 1;
                    }
                    if t == record_type::INFRARED_FRAME {
                        report.infrared_frames += 1;
                    }
                    // Regression: header copies and frame metadata were counted as unknown.
                    if matches!(RecordKind::from_code(t), RecordKind::Unknown(_)) {
                        report.unknown_records += 1;
                    }
                    since_block.push(r.offset);
                    seen.entry((h.stream, t)).or_default().push(r.offset);
                }
            }
            report.records += 1;
            Ok(())
        },
    );
    for d in &summary.damage {
        report.problem(
            d.offset,
            format!(
                "damaged record ({} bytes skipped): {}",
                d.len,
                error_chain(&d.error)
            ),
        );
    }
    for p in undecodable {
        report.problem(p.offset, p.message);
    }
    for (why, first, frames) in unchecked.into_values() {
        if frames > 0 {
            report.problem(first, format!("{frames} image frame(s) not checked: {why}"));
        }
    }
    // After damage, index blocks legitimately list records the scan could not read.
    if summary.damage.is_empty() {
        for p in problems {
            report.problem(p.offset, p.message);
        }
    }
    match &summary.tail {
        Tail::Torn { offset, error } => report.problem(
            *offset,
            format!(
                "file ends in an incomplete record ({} bytes): {}",
                reader.file_len() - offset,
                error_chain(error)
            ),
        ),
        Tail::Clean if !reader.is_closed() => report.problem(
            reader.file_len(),
            "file was not closed (no final index); run `rsrec recover`".into(),
        ),
        _ => {}
    }
    if !reader.is_closed() && matches!(summary.tail, Tail::Torn { .. } | Tail::Footer { .. }) {
        report.problem(
            reader.file_len(),
            "file was not closed (no valid final index); run `rsrec recover`".into(),
        );
    }
    if reader.is_closed() {
        let damaged = |o: u64| {
            summary
                .damage
                .iter()
                .any(|d| (d.offset..d.offset + d.len).contains(&o))
        };
        for s in reader.sections() {
            let indexed: Vec<u64> = reader
                .entries(s.stream, s.record_type)
                .map(|e| e.offset)
                .collect();
            let found = seen.remove(&(s.stream, s.record_type)).unwrap_or_default();
            check_index_section(
                &mut report,
                s.stream,
                s.record_type,
                &indexed,
                &found,
                damaged,
            );
        }
        for ((stream, t), found) in seen {
            check_index_section(&mut report, stream, t, &[], &found, damaged);
        }
    }
    report.problems.sort_by_key(|p| p.offset);
    report
}

/// Compares the final index of one section with the records found by the scan (both in file
/// order) and reports the first disagreement that damage does not already explain.
fn check_index_section(
    report: &mut VerifyReport,
    stream: u8,
    rtype: u8,
    indexed: &[u64],
    found: &[u64],
    damaged: impl Fn(u64) -> bool,
) {
    let (mut i, mut j) = (0, 0);
    while i < indexed.len() || j < found.len() {
        match (indexed.get(i), found.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), b) if b.is_none_or(|b| a < b) => {
                if !damaged(*a) {
                    report.problem(
                        *a,
                        format!("final index lists a record of stream {stream} type {rtype:#04x} at offset {a} that the file does not hold"),
                    );
                    return;
                }
                i += 1;
            }
            (_, Some(b)) => {
                report.problem(
                    *b,
                    format!("record of stream {stream} type {rtype:#04x} at offset {b} is missing from the final index"),
                );
                return;
            }
            (Some(_), None) | (None, None) => unreachable!("covered by the arms above"),
        }
    }
}

/// Outcome of [`recover`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoverReport {
    /// Whether the input was already closed cleanly.
    pub input_closed: bool,
    pub recovered_records: u64,
    pub recovered_depth_frames: u64,
    /// Damaged stretches in the middle of the file that held data.
    pub damaged_regions: u64,
    /// Damaged index records (no data lost: the output's index is rebuilt).
    pub damaged_index_records: u64,
    /// Records with an intact header but damaged payload, and unparseable stretches.
    pub discarded_records: u64,
    pub discarded_bytes: u64,
    /// Records with valid checksums whose payload does not decode (a depth frame whose
    /// codec rejects it, a gap that does not parse): not copied, each replaced by a gap.
    pub undecodable_records: u64,
    /// Bytes of an incomplete last record (a torn write), expected after a crash.
    pub torn_tail_bytes: u64,
    /// The file header was damaged and was restored from its copy (§5.7).
    pub header_restored: bool,
    pub output_bytes: u64,
}

impl RecoverReport {
    /// Whether anything other than a torn tail was lost.
    pub fn lost_data_in_middle(&self) -> bool {
        self.damaged_regions > 0 || self.undecodable_records > 0
    }
}

/// Writes the `corrupted` gap (§10.6) of discarded record `h`: its stream, frame number and
/// times.
fn write_corrupted_gap(writer: &mut Writer, h: &RecordHeader, detail: String) -> Result<()> {
    let gap = Gap {
        first_frame: h.frame_number,
        last_frame: h.frame_number,
        count: 1,
        reason: GapReason::Corrupted,
        detail,
    };
    let mut gh = RecordHeader::bare(record_type::GAP);
    gh.stream = h.stream;
    gh.frame_number = h.frame_number;
    gh.device_ts_ms = h.device_ts_ms;
    gh.ts_domain = h.ts_domain;
    gh.host_ts_us = h.host_ts_us;
    writer.write_record(&gh, &gap.encode()?)?;
    Ok(())
}

/// Copies every intact data record of `input` into a new closed, indexed file `output`.
/// A record is intact when its checksums hold **and** its payload decodes (as `verify`
/// checks it), so the output always verifies. Discarded records become gap records (reason
/// `corrupted`) where their stream and frame number are known, and a `recovery` event
/// summarises what was done.
pub fn recover(input: &Path, output: &Path, overwrite: bool) -> Result<RecoverReport> {
    recover_with_progress(input, output, overwrite, &mut |_, _| {})
}

/// [`recover`], calling `progress(offset, file_len)` with the input offset reached after
/// each record.
pub fn recover_with_progress(
    input: &Path,
    output: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RecoverReport> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(ContainerError::InvalidArgument(
                "the output file must differ from the input file".into(),
            ));
        }
    }
    // A damaged header: recovery goes on with the header's copy (§5.7), if one is intact.
    let (reader, header_restored) = match Reader::open(input) {
        Ok(r) => (r, false),
        Err(e @ ContainerError::Io { .. }) => return Err(e),
        Err(e) => (Reader::open_with_header_copy(input).map_err(|_| e)?, true),
    };
    // A stream above the reader's limits cannot be checked, and its frames must not become
    // gaps because of a setting: refuse before anything is written (§3, frame-size limit),
    // with the check the writer makes.
    reader.limits().check_header(reader.header())?;
    let opts = WriterOptions {
        fsync: FsyncPolicy::OnClose,
        overwrite,
        ..WriterOptions::default()
    };
    let mut writer = Writer::create(output, reader.header(), opts)?;
    let total_len = reader.file_len();
    let mut report = RecoverReport {
        input_closed: reader.is_closed(),
        header_restored,
        ..Default::default()
    };
    let mut write_err = None;
    let mut scratch = Vec::new();
    let mut undecodable: Vec<(RecordHeader, u64, String)> = Vec::new();
    let summary = scan(
        reader.bytes(),
        reader.first_record(),
        ScanMode::STRICT,
        |r, p| {
            progress(r.offset, total_len);
            // Index records and header copies are the writer's own: it writes new ones.
            if write_err.is_some()
                || matches!(
                    r.header.record_type,
                    record_type::INDEX_BLOCK | record_type::FINAL_INDEX | record_type::HEADER_COPY
                )
            {
                return Ok(());
            }
            if let Err(e) = check_record(&reader, &r.header, p, &mut scratch) {
                // Valid checksums, but it does not decode (a header field changed before
                // the CRCs were computed, a codec bug): a gap, never a copy.
                let why = match e {
                    ContainerError::BadRecord { message, .. } => message,
                    e => error_chain(&e),
                };
                undecodable.push((r.header, r.offset, why));
                return Ok(());
            }
            match writer.write_record(&r.header, p) {
                Ok(_) => {
                    report.recovered_records += 1;
                    if r.header.record_type == record_type::DEPTH_FRAME {
                        report.recovered_depth_frames += 1;
                    }
                }
                Err(e) => write_err = Some(e),
            }
            Ok(())
        },
    );
    if let Some(e) = write_err {
        return Err(e);
    }
    for d in &summary.damage {
        // A stretch made only of index records with intact headers loses no data: the
        // output's index is rebuilt anyway.
        let covered: u64 = d.damaged_records.iter().map(|r| r.end() - r.offset).sum();
        let only_index = covered == d.len
            && d.damaged_records.iter().all(|r| {
                matches!(
                    r.header.record_type,
                    record_type::INDEX_BLOCK | record_type::FINAL_INDEX
                )
            });
        if only_index {
            report.damaged_index_records += d.damaged_records.len() as u64;
            continue;
        }
        report.damaged_regions += 1;
        report.discarded_bytes += d.len;
        report.discarded_records += d.damaged_records.len().max(1) as u64;
        for r in &d.damaged_records {
            let h = &r.header;
            if matches!(
                h.record_type,
                record_type::INDEX_BLOCK | record_type::FINAL_INDEX
            ) {
                continue;
            }
            let detail = format!(
                "record type {:#04x} at offset {} discarded by recovery",
                h.record_type, r.offset
            );
            write_corrupted_gap(&mut writer, h, detail)?;
        }
    }
    report.undecodable_records = undecodable.len() as u64;
    for (h, offset, why) in &undecodable {
        if h.record_type == record_type::GAP {
            continue;
        }
        let detail = format!(
            "record type {:#04x} at offset {offset} does not decode: {why}",
            h.record_type
        );
        write_corrupted_gap(&mut writer, h, detail)?;
    }
    if let Tail::Torn { offset, .. } = summary.tail {
        report.torn_tail_bytes = reader.file_len() - offset;
    }
    if !report.input_closed
        || report.header_restored
        || report.damaged_regions > 0
        || report.damaged_index_records > 0
        || report.undecodable_records > 0
    {
        let event = Event {
            kind: "recovery".into(),
            message: serde_json::json!({
                "source": input.display().to_string(),
                "recovered_records": report.recovered_records,
                "damaged_regions": report.damaged_regions,
                "damaged_index_records": report.damaged_index_records,
                "discarded_records": report.discarded_records,
                "discarded_bytes": report.discarded_bytes,
                "undecodable_records": report.undecodable_records,
                "header_restored": report.header_restored,
                "torn_tail_bytes": report.torn_tail_bytes,
            })
            .to_string(),
        };
        let mut eh = RecordHeader::bare(record_type::EVENT);
        eh.host_ts_us = super::now_utc_us();
        writer.write_record(&eh, &event.encode()?)?;
    }
    report.output_bytes = writer.finish()?.bytes;
    Ok(report)
}
