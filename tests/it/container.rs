//! Writer and reader behaviour: flushing, poisoning, seeking, unsorted sections, property
//! round trips of whole files.

use crate::common;

use proptest::prelude::*;
use rsrec::codec::{CodecId, DepthCodec};
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::recover::verify;
use rsrec::container::{
    ContainerError, FileHeader, OpenedVia, Reader, RecordHeader, StreamDescriptor, Writer,
    WriterOptions,
};

fn depth_header(w: u32, h: u32) -> FileHeader {
    FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, w, h, 30.0)],
    )
}

fn frame_header(n: u64, codec: CodecId) -> RecordHeader {
    RecordHeader {
        record_type: record_type::DEPTH_FRAME,
        stream: 0,
        codec,
        ts_domain: ts_domain::HARDWARE_CLOCK,
        flags: 0,
        frame_number: n,
        device_ts_ms: n as f64 * 10.0,
        host_ts_us: 5_000 + n as i64 * 10_000,
    }
}

#[test]
fn flushed_records_are_readable_before_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.rsrec");
    let mut w = Writer::create(&path, &depth_header(8, 4), WriterOptions::default()).unwrap();
    let frame = common::synthetic_frame(8, 4, 1);
    let mut payload = Vec::new();
    DepthCodec::Lz4Planes
        .encode(&frame, 8, 4, &mut payload)
        .unwrap();
    for n in 0..5 {
        w.write_record(&frame_header(n, CodecId::LZ4_PLANES), &payload)
            .unwrap();
    }
    // Buffered, not yet flushed: a reader sees the header only.
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.frame_count(0), 0);
    w.flush().unwrap();
    // After a flush another process sees every frame, through the index block just written.
    let r = Reader::open(&path).unwrap();
    assert!(!r.is_closed());
    assert_eq!(r.opened_via(), OpenedVia::IndexBlocks);
    assert_eq!(r.frame_count(0), 5);
    assert_eq!(r.read_depth(0, 4).unwrap().data, frame);
    w.finish().unwrap();
    let r = Reader::open(&path).unwrap();
    assert!(r.is_closed());
    assert_eq!(r.frame_count(0), 5);
    let numbers: Vec<u64> = r
        .depth_frames(0)
        .map(|f| f.unwrap().header.frame_number)
        .collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
}

#[test]
fn creating_a_file_on_a_full_disk_is_an_error() {
    // /dev/full accepts the open and fails every write with ENOSPC, like a full disk.
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("WARNING: no /dev/full here: skipping");
        return;
    }
    let opts = WriterOptions {
        overwrite: true,
        ..WriterOptions::default()
    };
    let err = Writer::create("/dev/full", &depth_header(64, 64), opts)
        .err()
        .unwrap();
    assert!(
        matches!(&err, ContainerError::Io { source, .. } if source.raw_os_error() == Some(28)),
        "{err:?}"
    );
}

#[test]
fn existing_files_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.rsrec");
    std::fs::write(&path, b"precious").unwrap();
    let e = Writer::create(&path, &depth_header(2, 2), WriterOptions::default());
    assert!(matches!(e, Err(ContainerError::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn index_records_cannot_be_written_by_callers() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::create(
        dir.path().join("a.rsrec"),
        &depth_header(2, 2),
        WriterOptions::default(),
    )
    .unwrap();
    let h = RecordHeader::bare(record_type::FINAL_INDEX);
    assert!(matches!(
        w.write_record(&h, &[]),
        Err(ContainerError::InvalidArgument(_))
    ));
}

#[test]
fn seeking_in_unsorted_sections_falls_back_to_a_scan() {
    // A camera that reconnects restarts its frame numbers; timestamps go back too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reconnect.rsrec");
    let mut w =
        Writer::create(&path, &depth_header(2, 2), WriterOptions::deterministic(3)).unwrap();
    let payload = [0u8; 8];
    let numbers = [10u64, 11, 12, 0, 1, 2];
    for (i, n) in numbers.iter().enumerate() {
        let mut h = frame_header(*n, CodecId::RAW);
        h.host_ts_us = i as i64;
        w.write_record(&h, &payload).unwrap();
    }
    w.finish().unwrap();
    {
        let r = Reader::open(&path).unwrap();
        assert_eq!(r.find_frame_number(0, record_type::DEPTH_FRAME, 1), Some(4));
        assert_eq!(
            r.find_frame_number(0, record_type::DEPTH_FRAME, 12),
            Some(2)
        );
        assert_eq!(r.find_frame_number(0, record_type::DEPTH_FRAME, 13), None);
        assert_eq!(r.seek_device_ts(0, record_type::DEPTH_FRAME, 15.0), 0);
        assert_eq!(r.seek_host_ts(0, record_type::DEPTH_FRAME, 3), 3);
    }
}

#[test]
fn reading_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.rsrec");
    let mut w = Writer::create(&path, &depth_header(2, 2), WriterOptions::default()).unwrap();
    w.write_record(&frame_header(0, CodecId::RAW), &[1, 0, 2, 0, 3, 0, 4, 0])
        .unwrap();
    w.finish().unwrap();
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.read_depth(0, 0).unwrap().data, [1, 2, 3, 4]);
    assert!(matches!(
        r.read_depth(0, 1),
        Err(ContainerError::FrameOutOfRange { count: 1, .. })
    ));
    assert!(matches!(
        r.read_depth(9, 0),
        Err(ContainerError::NoSuchStream(9))
    ));
}

#[derive(Debug, Clone)]
struct Rec {
    stream: u8,
    rtype: u8,
    frame: u64,
    payload: Vec<u8>,
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    proptest::collection::vec(
        (
            0u8..3,
            prop_oneof![Just(0x40u8), Just(0x41u8), Just(0x7Fu8)],
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(stream, rtype, frame, payload)| Rec {
                stream,
                rtype,
                frame,
                payload,
            }),
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of records (known and unknown types) reads back identically, whether
    /// the file was closed or not, and every prefix of it yields exactly its complete records.
    #[test]
    fn files_round_trip(recs in records(), per_block in 1usize..10) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.rsrec");
        let header = FileHeader::new(Default::default(), vec![]);
        let mut w = Writer::create(&path, &header, WriterOptions::deterministic(per_block)).unwrap();
        let mut ends = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            let h = RecordHeader {
                record_type: r.rtype,
                stream: r.stream,
                codec: CodecId::NONE,
                ts_domain: ts_domain::NONE,
                flags: 0,
                frame_number: r.frame,
                device_ts_ms: i as f64,
                host_ts_us: i as i64,
            };
            let off = w.write_record(&h, &r.payload).unwrap();
            ends.push(off + 48 + r.payload.len() as u64);
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let reader = Reader::from_bytes(bytes.clone()).unwrap();
        prop_assert!(reader.is_closed());
        prop_assert!(verify(&reader).ok(), "{:?}", verify(&reader).problems);
        let check = |reader: &Reader, n: usize| -> Result<(), TestCaseError> {
            let mut seen = std::collections::HashMap::new();
            for r in recs.iter().take(n) {
                let k = seen.entry((r.stream, r.rtype)).or_insert(0usize);
                let (rr, p) = reader.read_record(r.stream, r.rtype, *k).unwrap();
                prop_assert_eq!(p, &r.payload[..]);
                prop_assert_eq!(rr.header.frame_number, r.frame);
                *k += 1;
            }
            // The writer's own header copies (§5.7) are not among the records written.
            let total: usize = reader
                .sections()
                .iter()
                .filter(|s| s.record_type != record_type::HEADER_COPY)
                .map(|s| s.len())
                .sum();
            prop_assert_eq!(total, n);
            Ok(())
        };
        check(&reader, recs.len())?;
        for (n, end) in ends.iter().enumerate() {
            let prefix = Reader::from_bytes(bytes[..*end as usize].to_vec()).unwrap();
            prop_assert!(!prefix.is_closed());
            check(&prefix, n + 1)?;
        }
    }
}
