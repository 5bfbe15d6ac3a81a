//! The ROS bag v2 container, the one parser of it: the bag header, the index (connection and
//! chunk-info records), chunks (decompressed here: none, LZ4 frames, bz2) and the message
//! records inside them. Every length is checked against its section before it is used, and
//! a chunk is never inflated past the size it declares (at most [`MAX_CHUNK_SIZE`]).

use super::*;

/// Where the bag's sections are.
pub(super) struct Layout {
    /// First record after the bag header.
    pub(super) start_pos: u64,
    pub(super) index_pos: u64,
    pub(super) conn_count: u32,
    pub(super) chunk_count: u32,
}

/// One raw record: header fields and where its data is.
pub(super) struct RawRecord<'a> {
    pub(super) header: &'a [u8],
    pub(super) data: &'a [u8],
    pub(super) end: u64,
}

/// Reads the record at `pos`, which must end at or before `limit`.
pub(super) fn raw_record(map: &[u8], pos: u64, limit: u64) -> Result<RawRecord<'_>, String> {
    let limit = limit.min(map.len() as u64);
    let u32_at = |p: u64, what: &str| -> Result<u64, String> {
        if p.checked_add(4).is_none_or(|e| e > limit) {
            return Err(format!(
                "record at byte {pos}: {what} length past the end of its section (byte {limit}): truncated or damaged file"
            ));
        }
        let p = p as usize;
        Ok(u32::from_le_bytes([map[p], map[p + 1], map[p + 2], map[p + 3]]) as u64)
    };
    let header_len = u32_at(pos, "header")?;
    let header_start = pos + 4;
    let data_len = u32_at(header_start + header_len, "data")?;
    let data_start = header_start + header_len + 4;
    let end = data_start + data_len;
    if end > limit {
        return Err(format!(
            "record at byte {pos} ends at byte {end}, past the end of its section (byte {limit}): truncated or damaged file"
        ));
    }
    Ok(RawRecord {
        header: &map[header_start as usize..(header_start + header_len) as usize],
        data: &map[data_start as usize..end as usize],
        end,
    })
}

/// `name=value` fields of a record header.
pub(super) type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Splits a record header into its fields.
pub(super) fn fields(mut h: &[u8]) -> Result<Fields<'_>, String> {
    let mut out = Vec::new();
    while !h.is_empty() {
        if h.len() < 4 {
            return Err("record header ends inside a field length".into());
        }
        let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        h = &h[4..];
        if n > h.len() {
            return Err("record header field runs past the header".into());
        }
        let (f, rest) = h.split_at(n);
        h = rest;
        let eq = f
            .iter()
            .position(|&c| c == b'=')
            .ok_or("record header field without '='")?;
        out.push((&f[..eq], &f[eq + 1..]));
    }
    Ok(out)
}

pub(super) fn field<'a>(fields: &[(&[u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| *v)
}

pub(super) fn field_u32(fields: &[(&[u8], &[u8])], name: &str) -> Result<u32, String> {
    match field(fields, name) {
        Some(v) if v.len() == 4 => Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
        _ => Err(format!(
            "record header field '{name}' missing or not 4 bytes"
        )),
    }
}

pub(super) fn field_op(fields: &[(&[u8], &[u8])]) -> Option<u8> {
    match field(fields, "op") {
        Some([op]) => Some(*op),
        _ => None,
    }
}

pub(super) fn parse_bag_header(map: &[u8]) -> Result<Layout, String> {
    if !map.starts_with(MAGIC) {
        let first: Vec<u8> = map
            .iter()
            .take(16)
            .copied()
            .take_while(|&c| c != b'\n')
            .collect();
        return Err(if first.starts_with(b"#ROSBAG V") {
            format!(
                "unsupported ROS bag version '{}' (only V2.0 is read)",
                String::from_utf8_lossy(&first)
            )
        } else {
            "not a ROS bag (the file does not start with '#ROSBAG V2.0')".into()
        });
    }
    let len = map.len() as u64;
    let rec = raw_record(map, MAGIC.len() as u64, len).map_err(|e| format!("bag header: {e}"))?;
    let f = fields(rec.header).map_err(|e| format!("bag header: {e}"))?;
    if field_op(&f) != Some(OP_BAG_HEADER) {
        return Err("the first record is not a bag header".into());
    }
    let index_pos = match field(&f, "index_pos") {
        Some(v) if v.len() == 8 => u64::from_le_bytes(v.try_into().unwrap_or_default()),
        _ => return Err("bag header has no index_pos".into()),
    };
    let conn_count = field_u32(&f, "conn_count").map_err(|e| format!("bag header: {e}"))?;
    let chunk_count = field_u32(&f, "chunk_count").map_err(|e| format!("bag header: {e}"))?;
    let start_pos = rec.end;
    if index_pos == 0 {
        return Err("the bag is not indexed (its recorder did not close it); \
                    reindex it first (`rosbag reindex`)"
            .into());
    }
    if index_pos > len {
        return Err(format!(
            "truncated: the index should start at byte {index_pos} but the file has only {len} bytes"
        ));
    }
    if index_pos < start_pos {
        return Err(format!(
            "damaged bag header: index position {index_pos} lies inside the header"
        ));
    }
    Ok(Layout {
        start_pos,
        index_pos,
        conn_count,
        chunk_count,
    })
}

/// One chunk, from the index.
pub(super) struct ChunkMeta {
    pub(super) pos: u64,
    /// Earliest message of any connection (from the index).
    pub(super) start_time: u64,
    /// Connections with messages in the chunk.
    pub(super) conns: Vec<u32>,
    /// Earliest message of a replayed connection (from the chunk's index data records).
    pub(super) data_start: Option<u64>,
}

pub(super) type Connections = BTreeMap<u32, (String, String)>;

/// A `time` field or value (seconds, nanoseconds) in nanoseconds.
fn time_ns(v: &[u8]) -> Option<u64> {
    let v: [u8; 8] = v.try_into().ok()?;
    let sec = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as u64;
    let nsec = u32::from_le_bytes([v[4], v[5], v[6], v[7]]) as u64;
    Some(sec * 1_000_000_000 + nsec)
}

fn field_u64(fields: &[(&[u8], &[u8])], name: &str) -> Result<u64, String> {
    match field(fields, name) {
        Some(v) if v.len() == 8 => Ok(u64::from_le_bytes(v.try_into().unwrap_or_default())),
        _ => Err(format!(
            "record header field '{name}' missing or not 8 bytes"
        )),
    }
}

fn field_time(fields: &[(&[u8], &[u8])], name: &str) -> Result<u64, String> {
    field(fields, name)
        .and_then(time_ns)
        .ok_or_else(|| format!("record header field '{name}' missing or not a time"))
}

/// Connections (id -> topic, type) and chunks (in file order) from the index section: the
/// connection records (op 0x07) and chunk-info records (op 0x06) from `index_pos` to the end.
pub(super) fn read_index(
    map: &[u8],
    layout: &Layout,
) -> Result<(Connections, Vec<ChunkMeta>), String> {
    let damaged = |pos: u64, e: String| format!("damaged or truncated index at byte {pos}: {e}");
    let mut conns = BTreeMap::new();
    let mut chunks = Vec::new();
    let end = map.len() as u64;
    let mut pos = layout.index_pos;
    while pos < end {
        let rec = raw_record(map, pos, end).map_err(|e| damaged(pos, e))?;
        let f = fields(rec.header).map_err(|e| damaged(pos, e))?;
        match field_op(&f) {
            Some(OP_CONNECTION) => {
                let id = field_u32(&f, "conn").map_err(|e| damaged(pos, e))?;
                let topic = field(&f, "topic").ok_or_else(|| damaged(pos, "no topic".into()))?;
                let h = fields(rec.data).map_err(|e| damaged(pos, e))?;
                let tp = field(&h, "type").unwrap_or_default();
                conns.entry(id).or_insert_with(|| {
                    (
                        String::from_utf8_lossy(topic).into_owned(),
                        String::from_utf8_lossy(tp).into_owned(),
                    )
                });
            }
            Some(OP_CHUNK_INFO) => {
                let chunk_pos = field_u64(&f, "chunk_pos").map_err(|e| damaged(pos, e))?;
                let start_time = field_time(&f, "start_time").map_err(|e| damaged(pos, e))?;
                if chunk_pos < layout.start_pos || chunk_pos >= layout.index_pos {
                    return Err(format!(
                        "damaged index: chunk position {chunk_pos} outside the chunk section"
                    ));
                }
                if rec.data.len() % 8 != 0 {
                    return Err(damaged(
                        pos,
                        "chunk info entries are not 8 bytes each".into(),
                    ));
                }
                chunks.push(ChunkMeta {
                    pos: chunk_pos,
                    start_time,
                    conns: rec
                        .data
                        .chunks_exact(8)
                        .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                        .collect(),
                    data_start: None,
                });
            }
            // Other records after the index position (none are written by librealsense or
            // rosbag) are skipped.
            _ => {}
        }
        pos = rec.end;
    }
    if chunks.len() != layout.chunk_count as usize {
        return Err(format!(
            "incomplete index: it lists {} chunks but the bag header says {} (truncated or damaged)",
            chunks.len(),
            layout.chunk_count
        ));
    }
    if conns.len() != layout.conn_count as usize {
        return Err(format!(
            "incomplete index: it lists {} connections but the bag header says {} (truncated or damaged)",
            conns.len(),
            layout.conn_count
        ));
    }
    chunks.sort_by_key(|c| c.pos);
    chunks.dedup_by_key(|c| c.pos);
    Ok((conns, chunks))
}

/// Checks the chunk record at `pos` (size limits) and returns its end.
pub(super) fn check_chunk(map: &[u8], index_pos: u64, pos: u64) -> Result<u64, String> {
    let rec = raw_record(map, pos, index_pos)?;
    let f = fields(rec.header).map_err(|e| format!("chunk at byte {pos}: {e}"))?;
    if field_op(&f) != Some(OP_CHUNK) {
        return Err(format!("damaged index: no chunk at byte {pos}"));
    }
    let size = field_u32(&f, "size").map_err(|e| format!("chunk at byte {pos}: {e}"))? as u64;
    if size > MAX_CHUNK_SIZE {
        return Err(format!(
            "chunk at byte {pos} claims {size} bytes uncompressed, over the {MAX_CHUNK_SIZE} byte limit"
        ));
    }
    match field(&f, "compression") {
        Some(b"none") if size != rec.data.len() as u64 => Err(format!(
            "chunk at byte {pos}: size {size} differs from its {} stored bytes",
            rec.data.len()
        )),
        Some(b"none" | b"lz4" | b"bz2") => Ok(rec.end),
        Some(c) => Err(format!(
            "chunk at byte {pos}: unsupported compression '{}'",
            String::from_utf8_lossy(c)
        )),
        None => Err(format!("chunk at byte {pos}: no compression field")),
    }
}

/// The earliest bag time of a replayed connection in the chunk, from the index data records
/// that follow it (falls back to the chunk's start time from the index).
pub(super) fn chunk_data_start(
    map: &[u8],
    index_pos: u64,
    chunk: &ChunkMeta,
    feeds: &HashMap<u32, Feed>,
) -> Result<u64, String> {
    let mut pos = check_chunk(map, index_pos, chunk.pos)?;
    let mut earliest: Option<u64> = None;
    while pos < index_pos {
        let rec = raw_record(map, pos, index_pos)?;
        let f = fields(rec.header).map_err(|e| format!("index data at byte {pos}: {e}"))?;
        if field_op(&f) != Some(OP_INDEX_DATA) {
            break;
        }
        let conn = field_u32(&f, "conn").map_err(|e| format!("index data at byte {pos}: {e}"))?;
        if feeds.contains_key(&conn) {
            if rec.data.len() % 12 != 0 {
                return Err(format!(
                    "index data at byte {pos}: length not a multiple of 12"
                ));
            }
            for e in rec.data.chunks_exact(12) {
                let sec = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as u64;
                let nsec = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as u64;
                let t = sec * 1_000_000_000 + nsec;
                earliest = Some(earliest.map_or(t, |x| x.min(t)));
            }
        }
        pos = rec.end;
    }
    Ok(earliest.unwrap_or(chunk.start_time))
}

/// Receives (connection, bag time ns, message bytes).
pub(super) type MessageFn<'a> = dyn FnMut(u32, u64, &[u8]) -> Result<(), String> + 'a;

/// Decompresses the chunk at `pos` and calls `f(connection, bag time ns, message bytes)` for
/// each message in it, in stored order.
pub(super) fn for_each_message(
    map: &[u8],
    index_pos: u64,
    pos: u64,
    f: &mut MessageFn<'_>,
) -> Result<(), String> {
    check_chunk(map, index_pos, pos)?;
    let rec = raw_record(map, pos, index_pos)?;
    let h = fields(rec.header).map_err(|e| format!("chunk at byte {pos}: {e}"))?;
    let size = field_u32(&h, "size").map_err(|e| format!("chunk at byte {pos}: {e}"))? as usize;
    let plain;
    let data: &[u8] = match field(&h, "compression") {
        Some(b"none") => rec.data,
        Some(b"lz4") => {
            plain = inflate(lz4_flex::frame::FrameDecoder::new(rec.data), size)
                .map_err(|e| format!("chunk at byte {pos}: LZ4 data: {e}"))?;
            &plain
        }
        Some(b"bz2") => {
            plain = inflate(bzip2::read::BzDecoder::new(rec.data), size)
                .map_err(|e| format!("chunk at byte {pos}: bz2 data: {e}"))?;
            &plain
        }
        // check_chunk accepted only these.
        _ => return Err(format!("chunk at byte {pos}: unsupported compression")),
    };
    let end = data.len() as u64;
    let mut at = 0u64;
    while at < end {
        let m = raw_record(data, at, end)
            .map_err(|e| format!("chunk at byte {pos}: damaged message record: {e}"))?;
        let mf = fields(m.header)
            .map_err(|e| format!("chunk at byte {pos}: damaged message record: {e}"))?;
        // Connection records repeat the index's; others are not messages.
        if field_op(&mf) == Some(OP_MESSAGE_DATA) {
            let bad = |e: String| format!("chunk at byte {pos}: damaged message record: {e}");
            let conn = field_u32(&mf, "conn").map_err(bad)?;
            let time = field_time(&mf, "time").map_err(bad)?;
            f(conn, time, m.data)?;
        }
        at = m.end;
    }
    Ok(())
}

/// Reads a decompressed chunk that must be exactly `size` bytes, never more.
fn inflate(mut r: impl std::io::Read, size: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(size);
    (&mut r)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() != size {
        return Err(format!(
            "{} bytes after decompression, the chunk header says {size}",
            out.len()
        ));
    }
    Ok(out)
}
