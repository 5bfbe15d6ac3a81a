//! Random access does not depend on file length: opening a closed file and decoding frame
//! 77,777 of a 100,000-frame file costs about the same as frame 7 of a 100-frame file.
//!
//! Run: `cargo bench --bench seek`. The files are written once into a temporary folder
//! (64x48 synthetic depth frames, lz4-planes); the 100,000-frame file takes a few seconds.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use rsrec::codec::DepthCodec;
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::{FileHeader, Reader, RecordHeader, StreamDescriptor, Writer, WriterOptions};

const W: u32 = 64;
const H: u32 = 48;

fn write_file(path: &Path, frames: u64) {
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0)],
    );
    let opts = WriterOptions {
        fsync: rsrec::container::FsyncPolicy::Never,
        ..WriterOptions::default()
    };
    let mut w = Writer::create(path, &header, opts).unwrap();
    let mut depth = vec![0u16; (W * H) as usize];
    let mut payload = Vec::new();
    for i in 0..frames {
        for (j, d) in depth.iter_mut().enumerate() {
            *d = (500 + (j as u64 % 64) * 3 + i % 17) as u16;
        }
        DepthCodec::Lz4Planes
            .encode(&depth, W, H, &mut payload)
            .unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: DepthCodec::Lz4Planes.id(),
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: i,
            device_ts_ms: i as f64 * 1000.0 / 30.0,
            host_ts_us: 1_700_000_000_000_000 + i as i64 * 33_333,
        };
        w.write_record(&h, &payload).unwrap();
    }
    w.finish().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("100.rsrec");
    let large = dir.path().join("100000.rsrec");
    write_file(&small, 100);
    write_file(&large, 100_000);
    let mut out = vec![0u16; (W * H) as usize];

    let mut g = c.benchmark_group("open+decode");
    g.bench_function("frame 7 of 100", |b| {
        b.iter(|| {
            let r = Reader::open(&small).unwrap();
            black_box(r.read_depth_into(0, black_box(7), &mut out).unwrap());
        })
    });
    g.bench_function("frame 77777 of 100000", |b| {
        b.iter(|| {
            let r = Reader::open(&large).unwrap();
            black_box(r.read_depth_into(0, black_box(77_777), &mut out).unwrap());
        })
    });
    g.finish();

    let rs = Reader::open(&small).unwrap();
    let rl = Reader::open(&large).unwrap();
    let mut g = c.benchmark_group("decode (file open)");
    g.bench_function("frame 7 of 100", |b| {
        b.iter(|| black_box(rs.read_depth_into(0, black_box(7), &mut out).unwrap()))
    });
    g.bench_function("frame 77777 of 100000", |b| {
        b.iter(|| black_box(rl.read_depth_into(0, black_box(77_777), &mut out).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("seek by timestamp + decode");
    let t_small = 7.0 * 1000.0 / 30.0;
    let t_large = 77_777.0 * 1000.0 / 30.0;
    g.bench_function("frame 7 of 100", |b| {
        b.iter(|| {
            let i = rs.seek_device_ts(0, record_type::DEPTH_FRAME, black_box(t_small));
            black_box(rs.read_depth_into(0, i, &mut out).unwrap())
        })
    });
    g.bench_function("frame 77777 of 100000", |b| {
        b.iter(|| {
            let i = rl.seek_device_ts(0, record_type::DEPTH_FRAME, black_box(t_large));
            assert_eq!(i, 77_777);
            black_box(rl.read_depth_into(0, i, &mut out).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
