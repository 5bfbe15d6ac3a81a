//! Crash safety: a file cut anywhere yields exactly the complete frames before the cut and
//! recovers to a file that verifies; flipped bytes are reported at the damaged record.

use crate::common;

use std::path::Path;

use rsrec::codec::DepthCodec;
use rsrec::container::format::{record_type, ts_domain, FOOTER_LEN};
use rsrec::container::record::parse_header;
use rsrec::container::recover::{recover, verify};
use rsrec::container::{
    Event, FileHeader, Gap, GapReason, OpenedVia, Reader, RecordHeader, StreamDescriptor, Writer,
    WriterOptions,
};

struct Sample {
    bytes: Vec<u8>,
    frames: Vec<Vec<u16>>,
    /// (offset, end) of every record and of the footer, in file order.
    spans: Vec<(u64, u64)>,
    /// End offset of each depth frame record.
    frame_ends: Vec<u64>,
    first_record: u64,
}

const W: u32 = 96;
const H: u32 = 64;

/// Small frames cut from real data when present (else synthetic), a gap and an event, with
/// an index block every 7 records.
fn sample(dir: &Path) -> Sample {
    let source: Vec<Vec<u16>> = match common::data_dir() {
        Some(data) => {
            let files =
                rsrec::source::pngdir::list_pngs(&data.join("d4xx-848x480-desk-holes/depth"))
                    .unwrap();
            files
                .iter()
                .map(|f| {
                    let img = rsrec::source::pngdir::read_depth_png(f).unwrap();
                    (0..H as usize)
                        .flat_map(|y| {
                            let row = (y + 200) * img.width as usize + 300;
                            img.data[row..row + W as usize].to_vec()
                        })
                        .collect()
                })
                .collect()
        }
        None => (0..25).map(|i| common::synthetic_frame(W, H, i)).collect(),
    };
    let path = dir.join("sample.rsrec");
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0)],
    );
    let mut w = Writer::create(&path, &header, WriterOptions::deterministic(7)).unwrap();
    let mut payload = Vec::new();
    let mut frames = Vec::new();
    for i in 0..60u64 {
        let f = &source[i as usize % source.len()];
        DepthCodec::Lz4Planes.encode(f, W, H, &mut payload).unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: DepthCodec::Lz4Planes.id(),
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: i,
            device_ts_ms: i as f64 * 33.3,
            host_ts_us: 1_000_000 + i as i64 * 33_333,
        };
        w.write_record(&h, &payload).unwrap();
        frames.push(f.clone());
        if i == 20 {
            let mut g = h;
            g.record_type = record_type::GAP;
            g.codec = rsrec::codec::CodecId::NONE;
            let gap = Gap {
                first_frame: 21,
                last_frame: 21,
                count: 1,
                reason: GapReason::QueueFull,
                detail: "test".into(),
            };
            w.write_record(&g, &gap.encode().unwrap()).unwrap();
        }
        if i == 40 {
            let e = Event {
                kind: "note".into(),
                message: "halfway".into(),
            };
            w.write_record(
                &RecordHeader::bare(record_type::EVENT),
                &e.encode().unwrap(),
            )
            .unwrap();
        }
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, first_record, _) = FileHeader::decode(&bytes).unwrap();
    let mut spans = Vec::new();
    let mut frame_ends = Vec::new();
    let mut at = first_record;
    while at < bytes.len() as u64 - FOOTER_LEN as u64 {
        let r = parse_header(&bytes, at).unwrap();
        if r.header.record_type == record_type::DEPTH_FRAME {
            frame_ends.push(r.end());
        }
        spans.push((r.offset, r.end()));
        at = r.end();
    }
    spans.push((at, bytes.len() as u64));
    assert_eq!(frame_ends.len(), 60);
    Sample {
        bytes,
        frames,
        spans,
        frame_ends,
        first_record,
    }
}

/// Checks one cut: not closed, exactly the complete frames, recovery verifies.
/// Returns how the reader opened the cut file.
fn check_cut(s: &Sample, cut: usize, dir: &Path) -> Option<OpenedVia> {
    let prefix = s.bytes[..cut].to_vec();
    if (cut as u64) < s.first_record {
        assert!(
            Reader::from_bytes(prefix).is_err(),
            "cut {cut} inside the header"
        );
        return None;
    }
    let reader = Reader::from_bytes(prefix.clone()).unwrap();
    assert!(!reader.is_closed(), "cut at {cut} reported as closed");
    let expected = s.frame_ends.iter().filter(|&&e| e <= cut as u64).count();
    assert_eq!(reader.frame_count(0), expected, "cut at {cut}");
    for i in 0..expected {
        let f = reader.read_depth(0, i).unwrap();
        assert_eq!(f.header.frame_number, i as u64);
        assert!(f.data == s.frames[i], "cut {cut}: frame {i} differs");
    }

    let input = dir.join(format!("cut-{cut}.rsrec"));
    let output = dir.join(format!("cut-{cut}.recovered.rsrec"));
    std::fs::write(&input, &prefix).unwrap();
    let report = recover(&input, &output, false).unwrap();
    assert!(!report.lost_data_in_middle(), "cut {cut}: {report:?}");
    assert_eq!(report.recovered_depth_frames as usize, expected);
    let rec = Reader::open(&output).unwrap();
    assert!(rec.is_closed());
    let v = verify(&rec);
    assert!(
        v.ok(),
        "cut {cut}: recovered file does not verify: {:?}",
        v.problems
    );
    assert_eq!(rec.frame_count(0), expected);
    if expected > 0 {
        assert!(rec.read_depth(0, expected - 1).unwrap().data == s.frames[expected - 1]);
    }
    std::fs::remove_file(input).unwrap();
    std::fs::remove_file(output).unwrap();
    Some(reader.opened_via())
}

#[test]
fn truncation_at_every_record_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample(dir.path());
    assert!(verify(&Reader::from_bytes(s.bytes.clone()).unwrap()).ok());
    let mut via_blocks = 0;
    for &(start, _) in &s.spans {
        if check_cut(&s, start as usize, dir.path()) == Some(OpenedVia::IndexBlocks) {
            via_blocks += 1;
        }
    }
    // Past the first index block, unclosed files open through the chain of index blocks.
    assert!(
        via_blocks > s.spans.len() / 2,
        "only {via_blocks} cuts used index blocks"
    );
    // One byte into and one byte before the end of each record.
    for &(start, end) in &s.spans {
        check_cut(&s, start as usize + 1, dir.path());
        check_cut(&s, end as usize - 1, dir.path());
    }
}

/// A tiny deterministic generator so the test needs no RNG crate.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncation_at_200_random_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample(dir.path());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..200 {
        let cut = (xorshift(&mut rng) % s.bytes.len() as u64) as usize;
        check_cut(&s, cut, dir.path());
    }
}

#[test]
fn flipped_bytes_are_reported_at_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample(dir.path());
    let mut rng = 0x1234_5678_9ABC_DEF1u64;
    for round in 0..300 {
        let pos = s.first_record + xorshift(&mut rng) % (s.bytes.len() as u64 - s.first_record);
        let mut bad = s.bytes.clone();
        bad[pos as usize] ^= 1 << (xorshift(&mut rng) % 8);
        let (start, _) = *s
            .spans
            .iter()
            .find(|(a, b)| (*a..*b).contains(&pos))
            .unwrap();
        let reader = Reader::from_bytes(bad.clone()).unwrap();
        let report = verify(&reader);
        assert!(!report.ok(), "round {round}: flip at {pos} went unnoticed");
        assert!(
            report.problems.iter().any(|p| p.offset == start),
            "round {round}: flip at {pos} (record at {start}) reported as {:?}",
            report.problems
        );
        // Every intact frame still reads; the damaged one is an error, not a panic.
        for i in 0..reader.frame_count(0) {
            if let Ok(f) = reader.read_depth(0, i) {
                assert!(f.data == s.frames[i]);
            }
        }
        // Recovery gives a file that verifies.
        let input = dir.path().join("flip.rsrec");
        let output = dir.path().join("flip.recovered.rsrec");
        std::fs::write(&input, &bad).unwrap();
        let _ = std::fs::remove_file(&output);
        let rep = recover(&input, &output, false).unwrap();
        let rec = Reader::open(&output).unwrap();
        let v = verify(&rec);
        assert!(
            v.ok(),
            "round {round}: recovered file fails: {:?}",
            v.problems
        );
        let data_record = s
            .frame_ends
            .iter()
            .any(|&e| e == s.spans.iter().find(|(a, _)| *a == start).unwrap().1);
        if data_record {
            assert!(
                rep.lost_data_in_middle() || rep.torn_tail_bytes > 0,
                "round {round}: {rep:?}"
            );
            assert!(rec.frame_count(0) < 60);
        }
    }
}

/// Regression: `recover` copied records whose checksums held but whose payload did not
/// decode (a frame header whose width was changed before the CRCs were computed), called
/// the result good with exit 0, and the output then failed `verify`. Recovery now decodes
/// what it keeps and turns the rest into gap records.
#[test]
fn recover_turns_records_that_do_not_decode_into_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("undecodable.rsrec");
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0)],
    );
    let mut w = Writer::create(&input, &header, WriterOptions::deterministic(7)).unwrap();
    let mut payload = Vec::new();
    for i in 0..10u64 {
        // Frame 5 is coded for a frame one row short: valid CRCs, wrong size.
        let rows = if i == 5 { H - 1 } else { H };
        let f = common::synthetic_frame(W, rows, i);
        DepthCodec::Lz4Planes
            .encode(&f, W, rows, &mut payload)
            .unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: DepthCodec::Lz4Planes.id(),
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: i,
            device_ts_ms: i as f64 * 33.3,
            host_ts_us: 1_000_000 + i as i64 * 33_333,
        };
        w.write_record(&h, &payload).unwrap();
    }
    w.finish().unwrap();
    assert!(!verify(&Reader::open(&input).unwrap()).ok());
    let output = dir.path().join("out.rsrec");
    let rep = recover(&input, &output, false).unwrap();
    assert_eq!(rep.undecodable_records, 1, "{rep:?}");
    assert!(rep.lost_data_in_middle());
    let rec = Reader::open(&output).unwrap();
    let v = verify(&rec);
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(rec.frame_count(0), 9);
    let gaps = rec.gaps().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let g = &gaps[0].1;
    assert_eq!((g.first_frame, g.reason), (5, GapReason::Corrupted));
    assert!(g.detail.contains("does not decode"), "{}", g.detail);
    // The CLI says so with the lossy-recovery exit code.
    let out2 = dir.path().join("out2.rsrec");
    let o = common::rsrec(&["recover", common::p(&input), "-o", common::p(&out2)]);
    assert_eq!(o.status.code(), Some(3), "{}", common::stdout(&o));
    assert!(common::stdout(&o).contains("did not decode"));
}

/// Regression: one flipped header bit lost the whole file (recover refused it). Every file
/// now carries header copies (§5.7): the first record, and the last data record of a closed
/// file; recovery uses them.
#[test]
fn a_damaged_header_is_recovered_from_its_copy() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample(dir.path());
    let input = dir.path().join("bad-header.rsrec");
    let output = dir.path().join("bad-header.recovered.rsrec");
    let check = |bad: &[u8], what: &str, all_frames: bool| {
        std::fs::write(&input, bad).unwrap();
        assert!(Reader::open(&input).is_err(), "{what}: still opens");
        let _ = std::fs::remove_file(&output);
        let rep = recover(&input, &output, false).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(rep.header_restored, "{what}: {rep:?}");
        let rec = Reader::open(&output).unwrap();
        assert!(verify(&rec).ok(), "{what}");
        let n = rec.frame_count(0);
        if all_frames {
            assert_eq!(n, 60, "{what}");
        } else {
            assert!(n > 0 && n < 60, "{what}: {n} frames");
        }
        // The frames that are there are the original ones, in order.
        let first = 60 - n;
        for i in 0..n {
            assert!(
                rec.read_depth(0, i).unwrap().data == s.frames[first + i],
                "{what}: frame {i}"
            );
        }
    };
    // Single bit flips in the magic, the version, the header length and the stream table.
    for pos in [
        0usize,
        8,
        12,
        60,
        s.first_record as usize - 40,
        s.first_record as usize - 2,
    ] {
        let mut bad = s.bytes.clone();
        bad[pos] ^= 0x10;
        check(&bad, &format!("bit flip at {pos}"), true);
    }
    // The first 4 KiB zeroed: the first copy is gone, the closing copy is not.
    let mut bad = s.bytes.clone();
    bad[..4096].fill(0);
    check(&bad, "first 4 KiB zeroed", false);
}
