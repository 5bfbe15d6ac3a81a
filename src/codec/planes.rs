//! Byte-plane codecs (`lz4-planes`, `zstd-planes`; `format-spec.md` §8.2-8.3).
//!
//! A Z16 frame is split into a plane of high bytes and a plane of low bytes: the high plane
//! of real depth is nearly constant and compresses very well, which plain LZ4 on interleaved
//! bytes cannot exploit. Payload: `u32` length of the compressed high plane, the compressed
//! high plane, then the compressed low plane (to the end of the payload).

use std::cell::RefCell;

use super::CodecError;

thread_local! {
    /// Scratch for the two planes, reused across frames on the same thread.
    static PLANES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static ZSTD_ENC: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static ZSTD_DEC: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Splits `depth` into `planes[..n]` = high bytes and `planes[n..]` = low bytes.
fn split(depth: &[u16], planes: &mut Vec<u8>) {
    let n = depth.len();
    planes.clear();
    planes.resize(2 * n, 0);
    let (hi, lo) = planes.split_at_mut(n);
    for ((h, l), v) in hi.iter_mut().zip(lo.iter_mut()).zip(depth) {
        *h = (v >> 8) as u8;
        *l = *v as u8;
    }
}

fn join(hi: &[u8], lo: &[u8], out: &mut [u16]) {
    for ((o, h), l) in out.iter_mut().zip(hi).zip(lo) {
        *o = u16::from_le_bytes([*l, *h]);
    }
}

/// Splits the payload into its two compressed planes.
fn parts<'a>(codec: &'static str, payload: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), CodecError> {
    if payload.len() < 4 {
        return Err(CodecError::Corrupt {
            codec,
            detail: format!("payload of {} bytes has no plane length", payload.len()),
        });
    }
    let hi_len = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
    let rest = &payload[4..];
    if hi_len > rest.len() {
        return Err(CodecError::Corrupt {
            codec,
            detail: format!(
                "high plane of {hi_len} bytes exceeds the {} bytes left",
                rest.len()
            ),
        });
    }
    Ok(rest.split_at(hi_len))
}

/// LZ4's largest expansion: one token byte plus length bytes can stand for at most about
/// 255 output bytes per input byte.
const LZ4_MAX_RATIO: u64 = 255;

/// Cheap check, before any buffer of the frame's size exists, that the payload can hold a
/// frame of `n` samples: a tiny payload may not declare a huge frame.
pub(super) fn precheck_lz4(payload: &[u8], n: usize) -> Result<(), CodecError> {
    const C: &str = "lz4-planes";
    let (hi, lo) = parts(C, payload)?;
    for plane in [hi, lo] {
        if (plane.len() as u64) * LZ4_MAX_RATIO + 64 < n as u64 {
            return Err(CodecError::Corrupt {
                codec: C,
                detail: format!(
                    "a {}-byte plane cannot hold the {n} bytes of the frame",
                    plane.len()
                ),
            });
        }
    }
    Ok(())
}

/// §8.3: each plane is a zstd frame whose declared content size is exactly `n`.
pub(super) fn precheck_zstd(payload: &[u8], n: usize) -> Result<(), CodecError> {
    const C: &str = "zstd-planes";
    let (hi, lo) = parts(C, payload)?;
    for plane in [hi, lo] {
        match zstd::zstd_safe::get_frame_content_size(plane) {
            Ok(Some(size)) if size == n as u64 => {}
            Ok(Some(size)) => {
                return Err(CodecError::Corrupt {
                    codec: C,
                    detail: format!("plane declares {size} bytes, the frame has {n}"),
                })
            }
            _ => {
                return Err(CodecError::Corrupt {
                    codec: C,
                    detail: "plane is not a zstd frame with a declared content size".into(),
                })
            }
        }
    }
    Ok(())
}

pub(super) fn encode_lz4(depth: &[u16], out: &mut Vec<u8>) -> Result<(), CodecError> {
    PLANES.with_borrow_mut(|planes| {
        split(depth, planes);
        let n = depth.len();
        let max = lz4_flex::block::get_maximum_output_size(n);
        out.resize(4 + 2 * max, 0);
        let hi_len =
            lz4_flex::block::compress_into(&planes[..n], &mut out[4..4 + max]).map_err(|e| {
                CodecError::Corrupt {
                    codec: "lz4-planes",
                    detail: e.to_string(),
                }
            })?;
        let lo_len =
            lz4_flex::block::compress_into(&planes[n..], &mut out[4 + hi_len..]).map_err(|e| {
                CodecError::Corrupt {
                    codec: "lz4-planes",
                    detail: e.to_string(),
                }
            })?;
        out[..4].copy_from_slice(&(hi_len as u32).to_le_bytes());
        out.truncate(4 + hi_len + lo_len);
        Ok(())
    })
}

pub(super) fn decode_lz4(payload: &[u8], out: &mut [u16]) -> Result<(), CodecError> {
    const C: &str = "lz4-planes";
    let (hi_c, lo_c) = parts(C, payload)?;
    let n = out.len();
    PLANES.with_borrow_mut(|planes| {
        planes.clear();
        planes.resize(2 * n, 0);
        let (hi, lo) = planes.split_at_mut(n);
        for (src, dst) in [(hi_c, hi), (lo_c, lo)] {
            let got =
                lz4_flex::block::decompress_into(src, dst).map_err(|e| CodecError::Corrupt {
                    codec: C,
                    detail: e.to_string(),
                })?;
            if got != n {
                return Err(CodecError::WrongDecodedLen {
                    codec: C,
                    expected: n,
                    actual: got,
                });
            }
        }
        join(&planes[..n], &planes[n..], out);
        Ok(())
    })
}

pub(super) fn encode_zstd(depth: &[u16], level: i32, out: &mut Vec<u8>) -> Result<(), CodecError> {
    const C: &str = "zstd-planes";
    if !(1..=22).contains(&level) {
        return Err(CodecError::BadLevel(level));
    }
    let err = |e: std::io::Error| CodecError::Corrupt {
        codec: C,
        detail: e.to_string(),
    };
    PLANES.with_borrow_mut(|planes| {
        split(depth, planes);
        let n = depth.len();
        ZSTD_ENC.with_borrow_mut(|slot| {
            if slot.as_ref().map(|(l, _)| *l) != Some(level) {
                *slot = Some((level, zstd::bulk::Compressor::new(level).map_err(err)?));
            }
            let (_, enc) = slot.as_mut().expect("compressor was just set");
            let max = zstd::zstd_safe::compress_bound(n);
            out.resize(4 + 2 * max, 0);
            let hi_len = enc
                .compress_to_buffer(&planes[..n], &mut out[4..4 + max])
                .map_err(err)?;
            let lo_len = enc
                .compress_to_buffer(&planes[n..], &mut out[4 + hi_len..])
                .map_err(err)?;
            out[..4].copy_from_slice(&(hi_len as u32).to_le_bytes());
            out.truncate(4 + hi_len + lo_len);
            Ok(())
        })
    })
}

pub(super) fn decode_zstd(payload: &[u8], out: &mut [u16]) -> Result<(), CodecError> {
    const C: &str = "zstd-planes";
    let (hi_c, lo_c) = parts(C, payload)?;
    let n = out.len();
    let err = |e: std::io::Error| CodecError::Corrupt {
        codec: C,
        detail: e.to_string(),
    };
    PLANES.with_borrow_mut(|planes| {
        ZSTD_DEC.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(err)?);
            }
            let dec = slot.as_mut().expect("decompressor was just set");
            planes.clear();
            planes.resize(2 * n, 0);
            let (hi, lo) = planes.split_at_mut(n);
            for (src, dst) in [(hi_c, hi), (lo_c, lo)] {
                let got = dec.decompress_to_buffer(src, dst).map_err(err)?;
                if got != n {
                    return Err(CodecError::WrongDecodedLen {
                        codec: C,
                        expected: n,
                        actual: got,
                    });
                }
            }
            Ok(())
        })?;
        join(&planes[..n], &planes[n..], out);
        Ok(())
    })
}
