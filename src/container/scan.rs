//! Forward scan over the records of a file: the parser behind opening an unclosed file,
//! `verify` and `recover` (`format-spec.md` §10).
//!
//! The same parser runs in every mode; the modes only decide whether payload checksums are
//! checked and whether the scan looks for the next intact record after a damaged one.

use super::error::ContainerError;
use super::format::*;
use super::index::decode_footer;
use super::record::{check_payload, parse_header, RecordRef};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ScanMode {
    /// Check every payload CRC (otherwise only record headers are checked).
    pub check_payloads: bool,
    /// After a damaged record, look for the next intact one instead of stopping.
    pub resync: bool,
}

impl ScanMode {
    /// Opening an unclosed file: headers only, stop at the first bad record.
    pub const OPEN: ScanMode = ScanMode {
        check_payloads: false,
        resync: false,
    };
    /// Verify and recover: every checksum, continue past damage.
    pub const STRICT: ScanMode = ScanMode {
        check_payloads: true,
        resync: true,
    };
}

/// A stretch of bytes that did not parse, followed by an intact record.
#[derive(Debug)]
pub struct Damage {
    pub offset: u64,
    pub len: u64,
    /// Records in the stretch whose header was intact (their payload was not), with the
    /// stream and frame number of each, so that recovery can record them as gaps.
    pub damaged_records: Vec<RecordRef>,
    pub error: ContainerError,
}

/// How the file ends.
#[derive(Debug)]
pub enum Tail {
    /// The last record ends exactly at the end of the file.
    Clean,
    /// A valid footer follows the last record.
    Footer { final_index: u64 },
    /// The bytes from `offset` on are not a complete record (a torn write).
    Torn { offset: u64, error: ContainerError },
}

#[derive(Debug)]
pub struct ScanSummary {
    pub records: u64,
    pub damage: Vec<Damage>,
    pub tail: Tail,
}

/// Finds the next offset after `from` where an intact record starts (header, and payload if
/// `check_payloads`), or `None`.
fn resync(file: &[u8], from: u64, check_payloads: bool) -> Option<RecordRef> {
    let mut at = from as usize;
    while at + RECORD_HEADER_LEN <= file.len() {
        let hay = &file[at..];
        let pos = hay.windows(4).position(|w| w == RECORD_SYNC)?;
        let off = (at + pos) as u64;
        if let Ok(r) = parse_header(file, off) {
            if !check_payloads || check_payload(file, &r).is_ok() {
                return Some(r);
            }
        }
        at += pos + 1;
    }
    None
}

/// Walks the records from `start`, calling `visit` with each intact record and its payload.
/// `visit` returning an error counts the record as damaged (e.g. a frame that fails to
/// decode in `verify`).
pub fn scan(
    file: &[u8],
    start: u64,
    mode: ScanMode,
    mut visit: impl FnMut(&RecordRef, &[u8]) -> Result<(), ContainerError>,
) -> ScanSummary {
    let len = file.len() as u64;
    let mut at = start;
    let mut records = 0;
    let mut damage = Vec::new();
    loop {
        if at == len {
            return ScanSummary {
                records,
                damage,
                tail: Tail::Clean,
            };
        }
        if len - at == FOOTER_LEN as u64 {
            if let Some((final_index, _)) = decode_footer(&file[at as usize..]) {
                return ScanSummary {
                    records,
                    damage,
                    tail: Tail::Footer { final_index },
                };
            }
        }
        let step = (|| {
            let r = parse_header(file, at)?;
            let p = if mode.check_payloads {
                check_payload(file, &r)?
            } else {
                super::record::payload(file, &r)
            };
            visit(&r, p)?;
            Ok::<_, ContainerError>(r)
        })();
        match step {
            Ok(r) => {
                records += 1;
                at = r.end();
            }
            Err(error) => {
                let next = if mode.resync {
                    resync(file, at + 1, mode.check_payloads)
                } else {
                    None
                };
                let Some(next) = next else {
                    return ScanSummary {
                        records,
                        damage,
                        tail: Tail::Torn { offset: at, error },
                    };
                };
                // Records with an intact header inside the damaged stretch.
                let mut damaged_records = Vec::new();
                let mut p = at;
                while p < next.offset {
                    match parse_header(file, p) {
                        Ok(r) if r.end() <= next.offset => {
                            damaged_records.push(r);
                            p = r.end();
                        }
                        _ => break,
                    }
                }
                damage.push(Damage {
                    offset: at,
                    len: next.offset - at,
                    damaged_records,
                    error,
                });
                at = next.offset;
            }
        }
    }
}
