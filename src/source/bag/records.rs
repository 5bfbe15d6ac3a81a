//! The ROS bag v2 container: the bag header, chunk and index records, checked before
//! their chunks are handed to the `rosbag` crate for decompression and message iteration.

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

/// Connections (id -> topic, type) and chunks (in file order) from the index section.
pub(super) fn read_index(
    bag: &RosBag,
    layout: &Layout,
) -> Result<(Connections, Vec<ChunkMeta>), String> {
    let mut conns = BTreeMap::new();
    let mut chunks = Vec::new();
    for rec in bag.index_records() {
        match rec.map_err(|e| format!("damaged or truncated index: {e}"))? {
            IndexRecord::Connection(c) => {
                conns
                    .entry(c.id)
                    .or_insert_with(|| (c.topic.to_string(), c.tp.to_string()));
            }
            IndexRecord::ChunkInfo(ci) => {
                if ci.chunk_pos < layout.start_pos || ci.chunk_pos >= layout.index_pos {
                    return Err(format!(
                        "damaged index: chunk position {} outside the chunk section",
                        ci.chunk_pos
                    ));
                }
                chunks.push(ChunkMeta {
                    pos: ci.chunk_pos,
                    start_time: ci.start_time,
                    conns: ci.entries().map(|e| e.conn_id).collect(),
                    data_start: None,
                });
            }
            IndexRecord::IndexData(_) => {}
        }
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
    bag: &RosBag,
    map: &[u8],
    index_pos: u64,
    pos: u64,
    f: &mut MessageFn<'_>,
) -> Result<(), String> {
    check_chunk(map, index_pos, pos)?;
    let mut records = bag.chunk_records();
    records
        .seek(pos)
        .map_err(|e| format!("chunk at byte {pos}: {e}"))?;
    let chunk = match records.next() {
        Some(Ok(ChunkRecord::Chunk(c))) => c,
        Some(Ok(ChunkRecord::IndexData(_))) | None => {
            return Err(format!("damaged index: no chunk at byte {pos}"))
        }
        Some(Err(e)) => return Err(format!("chunk at byte {pos}: {e}")),
    };
    for m in chunk.messages() {
        match m.map_err(|e| format!("chunk at byte {pos}: damaged message record: {e}"))? {
            MessageRecord::MessageData(m) => f(m.conn_id, m.time, m.data)?,
            MessageRecord::Connection(_) => {}
        }
    }
    Ok(())
}
