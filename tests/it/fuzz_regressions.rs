//! Regression tests for the fuzz targets in `fuzz/` (see `fuzz/README.md`): hostile inputs
//! fed to the same APIs as the targets, each asserting the error (or the result) the parser
//! must give instead of panicking, overrunning or allocating what the input claims.
//!
//! Inputs found by the fuzzer are kept, minimised, in `tests/fuzz_regressions/`; the others
//! are built here so that every checksum is valid and the check under test is reached.

use rsrec::codec::{self, CodecError, CodecId, DepthCodec};
use rsrec::container::format::*;
use rsrec::container::index::{decode_final_sections, IndexBlock};
use rsrec::container::record::{decode_imu_batch, parse_header, Event, Gap, VideoSegment};
use rsrec::container::recover::verify;
use rsrec::container::scan::{scan, ScanMode, Tail};
use rsrec::container::{
    ContainerError, DeviceInfo, FileHeader, OpenedVia, ReadLimits, Reader, RecordHeader,
    StreamDescriptor, Writer, WriterOptions,
};

/// The fuzz targets' own code (`fuzz/src/lib.rs`): each regression runs exactly what the
/// target that found it runs.
#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
pub(crate) mod harness;

use harness::exercise_reader;

/// A preamble (magic, version 1) declaring a header body of `header_len` bytes.
fn preamble(header_len: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(PREAMBLE_LEN);
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&header_len.to_le_bytes());
    p.resize(PREAMBLE_LEN, 0);
    p
}

/// A valid header with one 4x2 depth stream (id 0).
fn small_header() -> Vec<u8> {
    let mut h = FileHeader::new(
        DeviceInfo::default(),
        vec![StreamDescriptor::depth(0, 4, 2, 30.0)],
    );
    h.created_utc_us = 0;
    h.encode().unwrap()
}

/// 48 record-header bytes with a valid header CRC and any payload length and payload CRC.
fn record_header(record_type: u8, stream: u8, payload_len: u32, payload_crc: u32) -> Vec<u8> {
    let h = RecordHeader {
        record_type,
        stream,
        codec: CodecId::RAW,
        ts_domain: ts_domain::SYNTHETIC,
        flags: 0,
        frame_number: 0,
        device_ts_ms: 0.0,
        host_ts_us: 0,
    };
    let mut b = h.encode(&[]).unwrap().to_vec();
    b[REC_PAYLOAD_LEN..REC_PAYLOAD_LEN + 4].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32c(&b[..REC_HEADER_CRC]);
    b[REC_HEADER_CRC..REC_HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    b[REC_PAYLOAD_CRC..REC_PAYLOAD_CRC + 4].copy_from_slice(&payload_crc.to_le_bytes());
    b
}

/// CRC-32C (Castagnoli), bitwise: the tests need no extra dependency for it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_helper_matches_the_format() {
    // The header encoder's CRC and ours must agree, or every test below tests nothing.
    let rec = record_header(record_type::GAP, 0, 0, crc32c(&[]));
    let r = parse_header(&rec, 0).expect("header with our CRC parses");
    assert_eq!(r.payload_len, 0);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn header_len_above_the_limit_is_an_error_not_an_allocation() {
    let mut file = preamble(u32::MAX);
    file.extend_from_slice(&[0u8; 64]);
    match FileHeader::decode(&file) {
        Err(ContainerError::LimitExceeded { value, limit, .. }) => {
            assert_eq!(value, u32::MAX as u64);
            assert_eq!(limit, MAX_HEADER_LEN as u64);
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert!(Reader::from_bytes(file).is_err());
}

#[test]
fn header_len_past_the_end_of_the_file_is_truncated() {
    let mut file = preamble(MAX_HEADER_LEN);
    file.extend_from_slice(&[0u8; 100]);
    match FileHeader::decode(&file) {
        Err(ContainerError::Truncated {
            needed, available, ..
        }) => {
            assert_eq!(needed, PREAMBLE_LEN as u64 + MAX_HEADER_LEN as u64 + 4);
            assert_eq!(available, file.len() as u64);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn every_prefix_of_a_header_is_an_error() {
    let file = small_header();
    for cut in 0..file.len() {
        assert!(FileHeader::decode(&file[..cut]).is_err(), "cut at {cut}");
        assert!(
            Reader::from_bytes(file[..cut].to_vec()).is_err(),
            "cut at {cut}"
        );
    }
    let (h, first, ptr) = FileHeader::decode(&file).unwrap();
    assert_eq!((first as usize, ptr), (file.len(), None));
    assert_eq!(FileHeader::decode(&h.encode().unwrap()).unwrap().0, h);
}

#[test]
fn record_payload_len_0xffffffff_is_rejected_by_the_length_cap() {
    let rec = record_header(record_type::DEPTH_FRAME, 0, u32::MAX, 0);
    match parse_header(&rec, 0) {
        Err(ContainerError::BadRecord { offset: 0, message }) => {
            assert!(message.contains("exceeds the limit"), "{message}")
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
}

#[test]
fn record_payload_past_the_end_of_the_file_is_an_error() {
    let rec = record_header(record_type::DEPTH_FRAME, 0, MAX_PAYLOAD_LEN, 0);
    assert!(matches!(
        parse_header(&rec, 0),
        Err(ContainerError::RecordPastEnd { offset: 0, len, file_len: 48 }) if len == MAX_PAYLOAD_LEN as u64
    ));
    // An offset near u64::MAX must not overflow.
    assert!(matches!(
        parse_header(&rec, u64::MAX - 10),
        Err(ContainerError::Truncated { .. })
    ));
}

#[test]
fn reader_on_a_file_ending_in_a_record_of_length_0xffffffff_reports_a_torn_tail() {
    let mut file = small_header();
    let first = file.len() as u64;
    file.extend_from_slice(&record_header(record_type::DEPTH_FRAME, 0, u32::MAX, 0));
    file.extend_from_slice(&[0xAB; 20]);
    let len = file.len() as u64;
    let reader = exercise_reader(file).expect("an unclosed file still opens");
    assert!(!reader.is_closed());
    assert_eq!(reader.opened_via(), OpenedVia::Scan);
    assert_eq!(reader.frame_count(0), 0);
    assert_eq!(reader.torn_tail_bytes(), len - first);
    let report = verify(&reader);
    assert!(!report.ok());
    assert!(report
        .problems
        .iter()
        .any(|p| p.offset == first && p.message.contains("incomplete record")));
}

#[test]
fn scan_of_a_record_with_a_bad_payload_crc_reports_damage_in_strict_mode_only() {
    let payload = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let mut file = record_header(record_type::GAP, 0, payload.len() as u32, 0xDEAD_BEEF);
    file.extend_from_slice(&payload);
    let good = {
        let mut g = record_header(record_type::EVENT, 0, 0, crc32c(&[]));
        g.extend_from_slice(&[]);
        g
    };
    file.extend_from_slice(&good);
    let strict = scan(&file, 0, ScanMode::STRICT, |_, _| Ok(()));
    assert_eq!(strict.records, 1);
    assert_eq!(strict.damage.len(), 1);
    assert_eq!(strict.damage[0].offset, 0);
    assert!(matches!(
        strict.damage[0].error,
        ContainerError::BadPayloadCrc { .. }
    ));
    assert!(matches!(strict.tail, Tail::Clean));
    let open = scan(&file, 0, ScanMode::OPEN, |_, _| Ok(()));
    assert_eq!(open.records, 2);
    assert!(open.damage.is_empty());
}

#[test]
fn index_block_claiming_more_entries_than_its_payload_is_rejected() {
    let mut p = Vec::new();
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&[0u8; 40]);
    assert!(matches!(
        IndexBlock::decode(&p),
        Err(ContainerError::BadIndex(_))
    ));
    p[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        IndexBlock::decode(&p),
        Err(ContainerError::BadIndex(_))
    ));
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(IndexBlock::decode(&p).unwrap().entries.len(), 1);
    assert!(IndexBlock::decode(&p[..15]).is_err());
}

#[test]
fn final_index_section_whose_entries_overflow_u64_is_rejected() {
    let mut p = Vec::new();
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    let mut section = [0u8; FINAL_SECTION_LEN];
    section[0] = 0;
    section[1] = record_type::DEPTH_FRAME;
    section[8..16].copy_from_slice(&(u64::MAX / 32 + 1).to_le_bytes()); // count * 32 overflows
    section[16..24].copy_from_slice(&40u64.to_le_bytes());
    p.extend_from_slice(&section);
    assert!(matches!(
        decode_final_sections(&p),
        Err(ContainerError::BadIndex(_))
    ));
    // entries_start near u64::MAX: start + len overflows.
    section[8..16].copy_from_slice(&1u64.to_le_bytes());
    section[16..24].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    p[8..].copy_from_slice(&section);
    assert!(matches!(
        decode_final_sections(&p),
        Err(ContainerError::BadIndex(_))
    ));
    // Section count that does not fit.
    p[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_final_sections(&p),
        Err(ContainerError::BadIndex(_))
    ));
}

#[test]
fn payload_decoders_reject_hostile_lengths() {
    // IMU batch claiming 2^32-1 samples.
    let mut imu = u32::MAX.to_le_bytes().to_vec();
    imu.extend_from_slice(&[0u8; 4 + 40]);
    assert!(matches!(
        decode_imu_batch(&imu),
        Err(ContainerError::InvalidValue { value, .. }) if value == u32::MAX as u64
    ));
    // Event whose message blob claims more than the cap.
    let mut ev = 0u16.to_le_bytes().to_vec();
    ev.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Event::decode(&ev),
        Err(ContainerError::LimitExceeded { .. })
    ));
    // ... and one within the cap but past the end.
    let mut ev = 0u16.to_le_bytes().to_vec();
    ev.extend_from_slice(&Event::MAX_MESSAGE.to_le_bytes());
    assert!(matches!(
        Event::decode(&ev),
        Err(ContainerError::Truncated { .. })
    ));
    // Gap and video segment whose string length runs past the end.
    let mut gap = vec![0u8; 25];
    gap.extend_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        Gap::decode(&gap),
        Err(ContainerError::Truncated { .. })
    ));
    let mut seg = 7u32.to_le_bytes().to_vec();
    seg.extend_from_slice(&2u16.to_le_bytes());
    seg.extend_from_slice(&[0xFF, 0xFE]); // not UTF-8
    seg.extend_from_slice(&0u16.to_le_bytes());
    assert!(matches!(
        VideoSegment::decode(&seg),
        Err(ContainerError::BadUtf8 { .. })
    ));
}

#[test]
fn plane_codecs_reject_a_high_plane_length_past_the_payload() {
    for id in [CodecId::LZ4_PLANES, CodecId::ZSTD_PLANES] {
        let mut payload = u32::MAX.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0u8; 16]);
        let mut out = vec![0u16; 4 * 4];
        assert!(matches!(
            codec::decode(id, &payload, 4, 4, &mut out),
            Err(CodecError::Corrupt { .. })
        ));
        assert!(codec::decode(id, &payload[..3], 4, 4, &mut out).is_err());
    }
}

#[test]
fn plane_codecs_reject_a_frame_of_another_size() {
    // A valid 8x8 frame decoded as 4x4 (too much data) and 16x8 (too little).
    let depth: Vec<u16> = (0..64).map(|i| i * 1000).collect();
    for c in [DepthCodec::Lz4Planes, DepthCodec::ZstdPlanes { level: 1 }] {
        let mut enc = Vec::new();
        c.encode(&depth, 8, 8, &mut enc).unwrap();
        assert!(codec::decode_to_vec(c.id(), &enc, 4, 4).is_err(), "{c}");
        assert!(codec::decode_to_vec(c.id(), &enc, 16, 8).is_err(), "{c}");
        assert_eq!(codec::decode_to_vec(c.id(), &enc, 8, 8).unwrap(), depth);
    }
}

/// Peak resident memory of this process in KiB (Linux), 0 where unknown.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A 160-byte file: one `width x height` depth stream and one depth record whose lz4-planes
/// payload is 4 zero bytes.
fn frame_with_4_byte_payload(width: u32, height: u32) -> Vec<u8> {
    file_with_depth_frame(width, height, CodecId::LZ4_PLANES, &[0u8; 4])
}

/// A file with one `width x height` depth stream and one depth record of `payload`.
fn file_with_depth_frame(width: u32, height: u32, codec: CodecId, payload: &[u8]) -> Vec<u8> {
    let mut h = FileHeader::new(
        DeviceInfo::default(),
        vec![StreamDescriptor::depth(0, width, height, 30.0)],
    );
    h.created_utc_us = 0;
    let mut file = h.encode().unwrap();
    let rh = RecordHeader {
        record_type: record_type::DEPTH_FRAME,
        stream: 0,
        codec,
        ts_domain: ts_domain::SYNTHETIC,
        flags: 0,
        frame_number: 0,
        device_ts_ms: 0.0,
        host_ts_us: 0,
    };
    file.extend_from_slice(&rh.encode(payload).unwrap());
    file.extend_from_slice(payload);
    file
}

#[test]
fn large_frame_with_a_tiny_payload_is_an_error() {
    let reader = Reader::from_bytes(frame_with_4_byte_payload(4096, 4096)).unwrap();
    assert_eq!(reader.frame_count(0), 1);
    assert!(matches!(
        reader.read_depth(0, 0),
        Err(ContainerError::Codec { .. })
    ));
    let report = verify(&reader);
    assert!(report
        .problems
        .iter()
        .any(|p| p.message.contains("does not decode")));
}

/// Found while reviewing the paths of the `reader` target (resource use, not a panic; the
/// fuzzer itself did not hit it within 3 minutes): decoding a frame whose payload
/// is far too small for the declared size still zero-fills a `2 * width * height` byte
/// plane buffer (codec/planes.rs, `planes.resize(2 * n, 0)` before decompressing), and
/// `verify` zero-fills a `width * height` sample scratch buffer: a 160-byte file makes
/// `read_depth` touch 512 MiB and `verify` 1 GiB, ~0.3 s of memset per depth record, and
/// the thread-local plane buffer keeps the 512 MiB afterwards. Fixed by `codec::precheck`,
/// which rejects payloads that cannot hold the frame before anything is allocated.
#[test]
fn max_size_frame_with_a_tiny_payload_does_not_touch_the_declared_frame_size() {
    for (w, h) in [(4096, 4096), (MAX_DIMENSION, MAX_DIMENSION)] {
        let file = frame_with_4_byte_payload(w, h);
        let before = peak_rss_kib();
        let mut reader = Reader::from_bytes(file).unwrap();
        reader.set_limits(ReadLimits::format_maximum());
        assert!(reader.read_depth(0, 0).is_err());
        assert!(!verify(&reader).ok());
        let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
        assert!(
            grown_mib < 64,
            "a 160-byte file made the reader touch {grown_mib} MiB"
        );
    }
}

/// Issue 15: "a 22 KB file declaring one 16384x16384 frame costs `verify` 792 MB and 8-20 s".
/// The payload there is *valid*: a flat or all-hole frame codes in a few hundred bytes with
/// every codec (rANS spends no bits on a certain symbol, zstd has RLE blocks), so the payload
/// cannot bound the work. The reader's frame-size limit (format-spec §3) does: the frame is
/// refused, naming the setting, before anything is allocated; `verify` reports it;
/// `recover` refuses rather than turn good frames into gaps; and with the limit raised the
/// same file decodes bit-exact.
#[test]
fn a_small_valid_file_declaring_a_huge_frame_is_refused_before_decoding() {
    // Just above the default limit (2^25 pixels).
    let (w, h) = (8192u32, 4097u32);
    assert!(w as u64 * h as u64 > DEFAULT_MAX_FRAME_PIXELS);
    let flat = vec![1000u16; w as usize * h as usize];
    let mut payload = Vec::new();
    DepthCodec::GRAD_RANS32
        .encode(&flat, w, h, &mut payload)
        .unwrap();
    assert!(
        payload.len() < 4096,
        "a flat frame is {} bytes",
        payload.len()
    );
    let file = file_with_depth_frame(w, h, CodecId::GRAD_RANS32, &payload);

    let mut reader = Reader::from_bytes(file.clone()).unwrap();
    assert_eq!(reader.limits(), ReadLimits::default());
    let err = reader.read_depth(0, 0).unwrap_err();
    assert!(
        matches!(
            err,
            ContainerError::FrameTooLarge {
                stream: 0,
                width: 8192,
                height: 4097,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(MAX_FRAME_PIXELS_ENV), "{err}");
    let mut out = vec![0u16; 16];
    assert!(matches!(
        reader.read_depth_into(0, 0, &mut out),
        Err(ContainerError::FrameTooLarge { .. })
    ));
    let report = verify(&reader);
    assert!(!report.ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains(MAX_FRAME_PIXELS_ENV)),
        "{:?}",
        report.problems
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("huge.rsrec");
    std::fs::write(&input, &file).unwrap();
    let output = dir.path().join("recovered.rsrec");
    let err = rsrec::container::recover::recover(&input, &output, false).unwrap_err();
    assert!(matches!(err, ContainerError::FrameTooLarge { .. }), "{err}");
    assert!(!output.exists(), "recover wrote {}", output.display());
    // rsrec never writes a file its own reader refuses.
    let refused = dir.path().join("new.rsrec");
    let header = FileHeader::new(
        DeviceInfo::default(),
        vec![StreamDescriptor::depth(0, w, h, 30.0)],
    );
    assert!(matches!(
        Writer::create(&refused, &header, WriterOptions::default()),
        Err(ContainerError::FrameTooLarge { .. })
    ));
    assert!(!refused.exists());

    reader.set_limits(ReadLimits::format_maximum());
    assert_eq!(reader.read_depth(0, 0).unwrap().data, flat);
    // The file was never closed (a writer would refuse the stream); nothing else is wrong.
    let report = verify(&reader);
    assert_eq!(report.depth_frames, 1);
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.message.contains("not closed")),
        "{:?}",
        report.problems
    );
}

/// The shipped commands on the same kind of file: `verify` fails with the limit's message,
/// and passes with `RSREC_MAX_FRAME_PIXELS` raised.
#[test]
fn verify_names_the_frame_limit_and_honours_the_variable() {
    let (w, h) = (64u32, 64u32);
    let flat = vec![0u16; (w * h) as usize];
    let mut payload = Vec::new();
    DepthCodec::GRAD_RANS32
        .encode(&flat, w, h, &mut payload)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.rsrec");
    let header = FileHeader::new(
        DeviceInfo::default(),
        vec![StreamDescriptor::depth(0, w, h, 30.0)],
    );
    let mut writer = Writer::create(&path, &header, WriterOptions::default()).unwrap();
    let rh = RecordHeader {
        record_type: record_type::DEPTH_FRAME,
        stream: 0,
        codec: CodecId::GRAD_RANS32,
        ts_domain: ts_domain::SYNTHETIC,
        flags: 0,
        frame_number: 0,
        device_ts_ms: 0.0,
        host_ts_us: 0,
    };
    writer.write_record(&rh, &payload).unwrap();
    writer.finish().unwrap();
    let run = |limit: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rsrec"))
            .args(["verify", path.to_str().unwrap()])
            .env(MAX_FRAME_PIXELS_ENV, limit)
            .output()
            .unwrap()
    };
    let refused = run("4095");
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(
        msg.contains("above this reader's limit of 4095 pixels"),
        "{msg}"
    );
    let ok = run("4096");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run("lots");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains(MAX_FRAME_PIXELS_ENV));
}

/// Found by the `decode_med_rans` fuzz smoke run in CI on the faster decoder (branch
/// codec-speed): a corrupt payload (7x6 frame) made the decoder panic instead of returning an
/// error. Fed exactly as the target feeds it: bytes 0 and 1 pick the size.
#[test]
fn med_rans_corrupt_payload_from_the_fuzzer_is_an_error_not_a_panic() {
    let data = include_bytes!("fuzz_regressions/med_rans_decoder_panic_codec_speed.bin");
    // What the target runs: decode; a frame that decodes survives a round trip; a buffer of
    // the wrong size is an error.
    harness::exercise_decode(CodecId::MED_RANS, data);
}

/// The `bag` target's code on the real librealsense bag, whole, cut and with flipped bytes:
/// never a panic, and the whole bag replays.
#[test]
fn bag_target_on_the_real_bag_and_damaged_copies() {
    let Some(data) = crate::common::data_dir() else {
        return;
    };
    let dir = data.join("d435-librealsense-bag");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bag"))
        .expect("a .bag in d435-librealsense-bag");
    let bytes = std::fs::read(&path).unwrap();
    harness::exercise_bag(bytes.clone());
    let n = bytes.len();
    for k in 0..40usize {
        let mut b = bytes.clone();
        let at = (k * 2_654_435_761) % n;
        b[at] ^= 0x5A;
        harness::exercise_bag(b);
        harness::exercise_bag(bytes[..(k * n / 40).max(1)].to_vec());
    }
}
