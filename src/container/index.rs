//! Index structures (`format-spec.md` §6): periodic index blocks and the final index.
//! Pure encode/decode, no I/O.

use super::bytes::{le_f64, le_i64, le_u32, le_u64, Builder};
use super::error::{ContainerError, Result};
use super::format::*;

/// Where one record is and what it holds: enough to seek without reading the record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexEntry {
    pub offset: u64,
    pub frame_number: u64,
    pub device_ts_ms: f64,
    pub host_ts_us: i64,
}

/// All §6.2 sort flags: what a section starts with before any entry contradicts them.
pub const ALL_SORTED: u8 =
    SECTION_SORTED_BY_FRAME | SECTION_SORTED_BY_DEVICE_TS | SECTION_SORTED_BY_HOST_TS;

/// Clears the sort flags that entry `e`, following `last`, contradicts. A NaN device
/// timestamp counts as unsorted.
pub fn update_sort_flags(flags: &mut u8, last: Option<&IndexEntry>, e: &IndexEntry) {
    let Some(last) = last else {
        return;
    };
    if e.frame_number < last.frame_number {
        *flags &= !SECTION_SORTED_BY_FRAME;
    }
    if !matches!(
        e.device_ts_ms.partial_cmp(&last.device_ts_ms),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    ) {
        *flags &= !SECTION_SORTED_BY_DEVICE_TS;
    }
    if e.host_ts_us < last.host_ts_us {
        *flags &= !SECTION_SORTED_BY_HOST_TS;
    }
}

/// An index-block entry: an [`IndexEntry`] with its stream, record type and payload length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockEntry {
    pub stream: u8,
    pub record_type: u8,
    pub payload_len: u32,
    pub entry: IndexEntry,
}

/// §6.1 Index block payload: records written since the previous block.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexBlock {
    /// Offset of the previous index block, 0 for the first.
    pub prev_block: u64,
    pub entries: Vec<BlockEntry>,
}

impl IndexBlock {
    pub fn encode(prev_block: u64, entries: &[BlockEntry]) -> Vec<u8> {
        let mut b = Builder::new();
        b.buf
            .reserve(INDEX_BLOCK_HEADER_LEN + entries.len() * INDEX_BLOCK_ENTRY_LEN);
        b.u64(prev_block).u32(entries.len() as u32).u32(0);
        for be in entries {
            let e = &be.entry;
            b.u64(e.offset)
                .u64(e.frame_number)
                .f64(e.device_ts_ms)
                .i64(e.host_ts_us)
                .u8(be.stream)
                .u8(be.record_type)
                .u16(0)
                .u32(be.payload_len);
        }
        b.buf
    }

    /// Reads the previous-block pointer only.
    pub fn prev_of(payload: &[u8]) -> Result<u64> {
        if payload.len() < INDEX_BLOCK_HEADER_LEN {
            return Err(ContainerError::BadIndex("index block too short".into()));
        }
        Ok(le_u64(payload, 0))
    }

    pub fn decode(payload: &[u8]) -> Result<Self> {
        let prev_block = Self::prev_of(payload)?;
        let n = le_u32(payload, 8);
        if n > MAX_INDEX_BLOCK_ENTRIES
            || payload.len() != INDEX_BLOCK_HEADER_LEN + n as usize * INDEX_BLOCK_ENTRY_LEN
        {
            return Err(ContainerError::BadIndex(format!(
                "index block of {} bytes cannot hold {n} entries",
                payload.len()
            )));
        }
        let entries = payload[INDEX_BLOCK_HEADER_LEN..]
            .chunks_exact(INDEX_BLOCK_ENTRY_LEN)
            .map(|e| BlockEntry {
                stream: e[32],
                record_type: e[33],
                payload_len: le_u32(e, 36),
                entry: IndexEntry {
                    offset: le_u64(e, 0),
                    frame_number: le_u64(e, 8),
                    device_ts_ms: le_f64(e, 16),
                    host_ts_us: le_i64(e, 24),
                },
            })
            .collect();
        Ok(Self {
            prev_block,
            entries,
        })
    }
}

/// §6.2 One section of the final index: all records of one (stream, record type).
#[derive(Clone, Debug, PartialEq)]
pub struct SectionInfo {
    pub stream: u8,
    pub record_type: u8,
    pub flags: u8,
    pub entry_count: u64,
    /// Offset of the section's entries from the start of the final index payload.
    pub entries_start: u64,
    /// Sum of the payload lengths of the section's records.
    pub payload_bytes: u64,
}

impl SectionInfo {
    pub fn encode(&self, b: &mut Builder) {
        b.u8(self.stream)
            .u8(self.record_type)
            .u8(self.flags)
            .u8(0)
            .u32(0)
            .u64(self.entry_count)
            .u64(self.entries_start)
            .u64(self.payload_bytes);
    }
}

/// Encodes one 32-byte final-index entry.
pub fn encode_final_entry(e: &IndexEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.frame_number.to_le_bytes());
    out.extend_from_slice(&e.device_ts_ms.to_le_bytes());
    out.extend_from_slice(&e.host_ts_us.to_le_bytes());
}

/// Decodes the final-index entry at the start of `b` (at least 32 bytes).
pub fn decode_final_entry(b: &[u8]) -> IndexEntry {
    IndexEntry {
        offset: le_u64(b, 0),
        frame_number: le_u64(b, 8),
        device_ts_ms: le_f64(b, 16),
        host_ts_us: le_i64(b, 24),
    }
}

/// Parses the section table of a final index payload, checking that every section's entries
/// lie inside the payload. The entries themselves are read lazily.
pub fn decode_final_sections(payload: &[u8]) -> Result<Vec<SectionInfo>> {
    let bad = |m: String| ContainerError::BadIndex(m);
    if payload.len() < FINAL_INDEX_HEADER_LEN {
        return Err(bad("final index too short".into()));
    }
    let n = le_u32(payload, 0) as usize;
    let table_end = FINAL_INDEX_HEADER_LEN as u64 + n as u64 * FINAL_SECTION_LEN as u64;
    if n > MAX_STREAMS * 256 || table_end > payload.len() as u64 {
        return Err(bad(format!("final index section count {n} does not fit")));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = &payload[FINAL_INDEX_HEADER_LEN + i * FINAL_SECTION_LEN..][..FINAL_SECTION_LEN];
        let info = SectionInfo {
            stream: s[0],
            record_type: s[1],
            flags: s[2],
            entry_count: le_u64(s, 8),
            entries_start: le_u64(s, 16),
            payload_bytes: le_u64(s, 24),
        };
        let end = info
            .entry_count
            .checked_mul(FINAL_ENTRY_LEN as u64)
            .and_then(|l| l.checked_add(info.entries_start));
        match end {
            Some(end) if info.entries_start >= table_end && end <= payload.len() as u64 => {}
            _ => {
                return Err(bad(format!(
                    "section {i} ({} entries at {}) lies outside the index",
                    info.entry_count, info.entries_start
                )))
            }
        }
        if out
            .iter()
            .any(|o: &SectionInfo| o.stream == info.stream && o.record_type == info.record_type)
        {
            return Err(bad(format!("section {i} is a duplicate")));
        }
        out.push(info);
    }
    Ok(out)
}

/// §7 Encodes the 32-byte footer that ends a closed file.
pub fn encode_footer(final_index_offset: u64, record_count: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&final_index_offset.to_le_bytes());
    f[8..16].copy_from_slice(&record_count.to_le_bytes());
    let crc = crc32c::crc32c(&f[..16]);
    f[16..20].copy_from_slice(&crc.to_le_bytes());
    f[24..].copy_from_slice(&FOOTER_MAGIC);
    f
}

/// §7 Decodes a footer: (final index offset, record count), or `None` if it is not one.
pub fn decode_footer(f: &[u8]) -> Option<(u64, u64)> {
    if f.len() != FOOTER_LEN || f[24..] != FOOTER_MAGIC {
        return None;
    }
    (crc32c::crc32c(&f[..16]) == le_u32(f, 16)).then(|| (le_u64(f, 0), le_u64(f, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_block_round_trips() {
        let e = IndexEntry {
            offset: 1234,
            frame_number: 5,
            device_ts_ms: 33.3,
            host_ts_us: -1,
        };
        let entries = vec![
            BlockEntry {
                stream: 0,
                record_type: 1,
                payload_len: 7,
                entry: e,
            },
            BlockEntry {
                stream: 1,
                record_type: 2,
                payload_len: 0,
                entry: e,
            },
        ];
        let p = IndexBlock::encode(99, &entries);
        let b = IndexBlock::decode(&p).unwrap();
        assert_eq!(b.prev_block, 99);
        assert_eq!(b.entries, entries);
        assert!(IndexBlock::decode(&p[..p.len() - 1]).is_err());
    }

    #[test]
    fn footer_round_trips() {
        let f = encode_footer(4096, 12);
        assert_eq!(decode_footer(&f), Some((4096, 12)));
        let mut bad = f;
        bad[3] ^= 1;
        assert_eq!(decode_footer(&bad), None);
    }

    #[test]
    fn section_outside_payload_is_rejected() {
        let mut b = Builder::new();
        b.u32(1).u32(0);
        SectionInfo {
            stream: 0,
            record_type: 1,
            flags: 0,
            entry_count: u64::MAX / 16,
            entries_start: 40,
            payload_bytes: 0,
        }
        .encode(&mut b);
        assert!(decode_final_sections(&b.buf).is_err());
    }
}
