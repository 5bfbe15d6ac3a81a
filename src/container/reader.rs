//! Seekable `.rsrec` reader over a memory map (`format-spec.md` §10).
//!
//! A closed file opens in O(1): the preamble (or the footer) points at the final index, whose
//! per-stream entry arrays are read in place from the map. A file without a footer (writer
//! killed, power lost, disk full) opens by following the chain of index blocks back from the
//! last intact one and scanning forward only the records written after it; if the chain is
//! damaged, by a forward scan of all record headers. Either way the reader reports that the
//! file was not closed and serves every complete record before the first torn one.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::error::{ContainerError, Result};
use super::format::*;
use super::header::{FileHeader, PixelFormat, StreamDescriptor, StreamKind};
use super::index::{
    decode_final_entry, decode_final_sections, decode_footer, update_sort_flags, IndexBlock,
    IndexEntry, ALL_SORTED,
};
use super::limits::ReadLimits;
use super::record::{
    check_payload, parse_header, Event, FrameMetadata, Gap, RecordHeader, RecordRef,
};
use super::scan::{scan, ScanMode, Tail};
use crate::codec::{self, CodecId};

/// The bytes of a file: a read-only memory map, or a buffer (tests, fuzzing).
pub enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(v) => v,
        }
    }
}

/// How the index was obtained.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenedVia {
    /// Closed file: final index found through the preamble pointer or the footer.
    FinalIndex,
    /// Unclosed file: chain of index blocks plus a scan of the records after the last one.
    IndexBlocks,
    /// Unclosed file: forward scan of every record header.
    Scan,
}

#[derive(Debug)]
enum Entries {
    /// `count` 32-byte entries at absolute file offset `start`.
    Mapped {
        start: usize,
        count: usize,
    },
    Owned(Vec<IndexEntry>),
}

/// Index of all records of one (stream, record type).
#[derive(Debug)]
pub struct Section {
    pub stream: u8,
    pub record_type: u8,
    /// §6.2 sort flags (`SECTION_SORTED_BY_*`).
    pub flags: u8,
    pub payload_bytes: u64,
    entries: Entries,
}

impl Section {
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Mapped { count, .. } => *count,
            Entries::Owned(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoded depth frame with its record header (frame number, timestamps, codec).
#[derive(Clone, Debug)]
pub struct DepthFrame {
    pub header: RecordHeader,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u16>,
}

/// A decoded infrared frame (§5.9) with its record header.
#[derive(Clone, Debug)]
pub struct InfraredFrame {
    pub header: RecordHeader,
    pub width: u32,
    pub height: u32,
    /// `width * height` 8-bit pixels, row-major.
    pub data: Vec<u8>,
}

/// Depth frames per codec ([`Reader::codec_mix`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecMix {
    pub frames: std::collections::BTreeMap<CodecId, u64>,
    /// Counted over evenly spaced frames, not all of them.
    pub sampled: bool,
}

impl CodecMix {
    /// `grad-rans32 91.2 %, lz4-planes 8.8 %` (most frames first); one codec alone is just
    /// its name.
    pub fn describe(&self) -> String {
        let total: u64 = self.frames.values().sum();
        let mut v: Vec<_> = self.frames.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        match v.as_slice() {
            [] => "none".into(),
            [(c, _)] => c.to_string(),
            _ => v
                .iter()
                .map(|(c, &k)| format!("{c} {:.1} %", 100.0 * k as f64 / total as f64))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

pub struct Reader {
    data: Backing,
    path: Option<PathBuf>,
    header: FileHeader,
    first_record: u64,
    via: OpenedVia,
    sections: Vec<Section>,
    /// Unclosed files: bytes after the last complete record (a torn write).
    torn_tail: u64,
    /// What decoding one frame may cost (§3, frame-size limit).
    limits: ReadLimits,
}

/// Maps `path` read-only (a file too small to map is read).
fn map(path: &Path) -> Result<Backing> {
    let file = File::open(path).map_err(|e| ContainerError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ContainerError::io(path, e))?;
    if !meta.is_file() {
        return Err(ContainerError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if meta.len() < PREAMBLE_LEN as u64 {
        // Too small to map usefully; read it so that the header check names the problem.
        let bytes = std::fs::read(path).map_err(|e| ContainerError::io(path, e))?;
        return Ok(Backing::Owned(bytes));
    }
    // SAFETY: the map is read-only. rsrec never modifies a file it reads; another process
    // truncating the file while it is mapped is outside what the reader can guard against
    // (as for every mmap-based reader).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ContainerError::io(path, e))?;
    Ok(Backing::Mapped(map))
}

/// The first intact header copy (§5.7) of `data`: its header and the offset of the first
/// record after a header of its length.
fn find_header_copy(data: &[u8]) -> Option<(FileHeader, u64)> {
    let mut at = 0usize;
    while let Some(p) = data
        .get(at..)?
        .windows(RECORD_SYNC.len())
        .position(|w| w == RECORD_SYNC)
    {
        let offset = (at + p) as u64;
        at += p + 1;
        let Ok(r) = parse_header(data, offset) else {
            continue;
        };
        if r.header.record_type != record_type::HEADER_COPY {
            continue;
        }
        let Ok(payload) = super::record::check_payload(data, &r) else {
            continue;
        };
        if let Ok((header, first_record, _)) = FileHeader::decode(payload) {
            return Some((header, first_record));
        }
    }
    None
}

impl Reader {
    /// Opens a file read-only through a memory map.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_backing(map(path)?, Some(path.to_path_buf()))
    }

    /// Opens a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_backing(Backing::Owned(bytes), None)
    }

    /// Recovery's way in when the file's own header is damaged (§10.6): the file is read
    /// with the header of its first intact header copy (§5.7), found by looking for record
    /// sync markers. Fails with the header's own error when no copy is intact.
    pub fn open_with_header_copy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::with_header_copy(map(path)?, Some(path.to_path_buf()))
    }

    /// [`Reader::open_with_header_copy`] for a file held in memory.
    pub fn from_bytes_with_header_copy(bytes: Vec<u8>) -> Result<Self> {
        Self::with_header_copy(Backing::Owned(bytes), None)
    }

    fn with_header_copy(data: Backing, path: Option<PathBuf>) -> Result<Self> {
        let own = match FileHeader::decode(&data) {
            Ok(h) => h,
            Err(e) => match find_header_copy(&data) {
                Some((header, first_record)) => (header, first_record, None),
                None => return Err(e),
            },
        };
        Self::with_header(data, path, own)
    }

    fn from_backing(data: Backing, path: Option<PathBuf>) -> Result<Self> {
        let header = FileHeader::decode(&data)?;
        Self::with_header(data, path, header)
    }

    fn with_header(
        data: Backing,
        path: Option<PathBuf>,
        (header, first_record, ptr): (FileHeader, u64, Option<u64>),
    ) -> Result<Self> {
        let mut reader = Reader {
            data,
            path,
            header,
            first_record,
            via: OpenedVia::Scan,
            sections: Vec::new(),
            torn_tail: 0,
            limits: ReadLimits::from_env()?,
        };
        let footer_ptr = {
            let d = &reader.data;
            (d.len() >= FOOTER_LEN)
                .then(|| decode_footer(&d[d.len() - FOOTER_LEN..]))
                .flatten()
                .map(|(off, _)| off)
        };
        for candidate in [ptr, footer_ptr].into_iter().flatten() {
            if let Ok(sections) = reader.load_final_index(candidate) {
                reader.sections = sections;
                reader.via = OpenedVia::FinalIndex;
                return Ok(reader);
            }
        }
        if let Some((sections, torn)) = reader.load_index_chain() {
            reader.sections = sections;
            reader.torn_tail = torn;
            reader.via = OpenedVia::IndexBlocks;
        } else {
            let (sections, torn) = reader.scan_all();
            reader.sections = sections;
            reader.torn_tail = torn;
            reader.via = OpenedVia::Scan;
        }
        Ok(reader)
    }

    fn load_final_index(&self, offset: u64) -> Result<Vec<Section>> {
        let d = &self.data;
        if offset < self.first_record {
            return Err(ContainerError::BadIndex(
                "index pointer inside the header".into(),
            ));
        }
        let r = parse_header(d, offset)?;
        if r.header.record_type != record_type::FINAL_INDEX {
            return Err(ContainerError::BadIndex(
                "index pointer does not point at the final index".into(),
            ));
        }
        // The footer must follow the final index and point back at it.
        let footer = d
            .get(r.end() as usize..)
            .filter(|f| f.len() == FOOTER_LEN)
            .and_then(decode_footer);
        if footer.map(|(o, _)| o) != Some(offset) {
            return Err(ContainerError::BadIndex(
                "footer does not match the final index".into(),
            ));
        }
        let payload = super::record::payload(d, &r);
        let infos = decode_final_sections(payload)?;
        Ok(infos
            .into_iter()
            .map(|s| Section {
                stream: s.stream,
                record_type: s.record_type,
                flags: s.flags,
                payload_bytes: s.payload_bytes,
                entries: Entries::Mapped {
                    start: (r.payload_offset + s.entries_start) as usize,
                    count: s.entry_count as usize,
                },
            })
            .collect())
    }

    /// Finds the last intact index block by searching back from the end of the file.
    fn last_index_block(&self) -> Option<RecordRef> {
        let d = &self.data[..];
        let mut end = d.len();
        let start = self.first_record as usize;
        while end > start {
            let pos = d[start..end].windows(4).rposition(|w| w == RECORD_SYNC)? + start;
            if let Ok(r) = parse_header(d, pos as u64) {
                if r.header.record_type == record_type::INDEX_BLOCK && check_payload(d, &r).is_ok()
                {
                    return Some(r);
                }
            }
            end = pos + 3;
            if end <= start + 3 {
                return None;
            }
            end -= 3;
        }
        None
    }

    /// Index from the chain of index blocks plus a forward scan after the last one.
    /// `None` if there are no blocks or the chain is damaged.
    fn load_index_chain(&self) -> Option<(Vec<Section>, u64)> {
        let d = &self.data[..];
        let last = self.last_index_block()?;
        let mut blocks = vec![last];
        let mut cur = last;
        loop {
            let prev = IndexBlock::prev_of(super::record::payload(d, &cur)).ok()?;
            if prev == 0 {
                break;
            }
            if prev < self.first_record || prev >= cur.offset {
                return None;
            }
            let r = parse_header(d, prev).ok()?;
            if r.header.record_type != record_type::INDEX_BLOCK || check_payload(d, &r).is_err() {
                return None;
            }
            blocks.push(r);
            cur = r;
        }
        let mut builder = SectionBuilder::default();
        let mut limit = self.first_record;
        for b in blocks.iter().rev() {
            let block = IndexBlock::decode(super::record::payload(d, b)).ok()?;
            for e in &block.entries {
                // Entries must point at records between the previous block and this one.
                if e.entry.offset < limit || e.entry.offset >= b.offset {
                    return None;
                }
                limit = e.entry.offset + 1;
                builder.push(e.stream, e.record_type, e.payload_len as u64, e.entry);
            }
        }
        let torn = self.scan_into(&mut builder, last.end());
        Some((builder.finish(), torn))
    }

    fn scan_all(&self) -> (Vec<Section>, u64) {
        let mut builder = SectionBuilder::default();
        let torn = self.scan_into(&mut builder, self.first_record);
        (builder.finish(), torn)
    }

    /// Forward scan from `start`, adding data records; returns the torn tail length.
    fn scan_into(&self, builder: &mut SectionBuilder, start: u64) -> u64 {
        let summary = scan(&self.data, start, ScanMode::OPEN, |r, _| {
            if !matches!(
                r.header.record_type,
                record_type::INDEX_BLOCK | record_type::FINAL_INDEX
            ) {
                builder.push(
                    r.header.stream,
                    r.header.record_type,
                    r.payload_len,
                    IndexEntry {
                        offset: r.offset,
                        frame_number: r.header.frame_number,
                        device_ts_ms: r.header.device_ts_ms,
                        host_ts_us: r.header.host_ts_us,
                    },
                );
            }
            Ok(())
        });
        match summary.tail {
            Tail::Torn { offset, .. } => self.data.len() as u64 - offset,
            Tail::Clean | Tail::Footer { .. } => 0,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// The limits frames are decoded under (from `RSREC_MAX_FRAME_PIXELS` or the default).
    pub fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// Replaces the limits (e.g. [`ReadLimits::format_maximum`] for a trusted file).
    pub fn set_limits(&mut self, limits: ReadLimits) {
        self.limits = limits;
    }

    /// Samples in one frame of depth stream `stream`: what a caller allocates for
    /// [`Reader::read_depth_into`]. Errors for a stream above the limits, before anything is
    /// allocated.
    pub fn depth_frame_len(&self, stream: u8) -> Result<usize> {
        self.limits.frame_pixels(self.depth_descriptor(stream)?)
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }
    /// Offset of the first record (the end of the header).
    pub fn first_record(&self) -> u64 {
        self.first_record
    }
    /// Whether the writer finished the file (final index and footer present).
    pub fn is_closed(&self) -> bool {
        self.via == OpenedVia::FinalIndex
    }
    pub fn opened_via(&self) -> OpenedVia {
        self.via
    }
    /// Bytes after the last complete record of an unclosed file.
    pub fn torn_tail_bytes(&self) -> u64 {
        self.torn_tail
    }
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn section(&self, stream: u8, record_type: u8) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.stream == stream && s.record_type == record_type)
    }

    /// Number of records of this stream and type.
    pub fn count(&self, stream: u8, record_type: u8) -> usize {
        self.section(stream, record_type).map_or(0, Section::len)
    }

    /// Number of depth frames of a stream.
    pub fn frame_count(&self, stream: u8) -> usize {
        self.count(stream, record_type::DEPTH_FRAME)
    }

    /// The index entry of record `i` of this stream and type.
    pub fn entry(&self, stream: u8, record_type: u8, i: usize) -> Option<IndexEntry> {
        let s = self.section(stream, record_type)?;
        self.section_entry(s, i)
    }

    fn section_entry(&self, s: &Section, i: usize) -> Option<IndexEntry> {
        match &s.entries {
            Entries::Mapped { start, count } => {
                (i < *count).then(|| decode_final_entry(&self.data[start + i * FINAL_ENTRY_LEN..]))
            }
            Entries::Owned(v) => v.get(i).copied(),
        }
    }

    /// All index entries of this stream and type, in file order.
    pub fn entries(&self, stream: u8, record_type: u8) -> impl Iterator<Item = IndexEntry> + '_ {
        let s = self.section(stream, record_type);
        let n = s.map_or(0, Section::len);
        (0..n).filter_map(move |i| self.section_entry(s.expect("n > 0"), i))
    }

    /// Reads record `i` of a stream and type: checks its header and payload CRC and that it
    /// is the record the index says it is.
    pub fn read_record(&self, stream: u8, record_type: u8, i: usize) -> Result<(RecordRef, &[u8])> {
        self.read_at(self.indexed(stream, record_type, i)?, stream, record_type)
    }

    /// The header of record `i` of a stream and type (header CRC checked, payload not read):
    /// what a summary of many records needs without touching their payloads.
    pub fn record_header(&self, stream: u8, record_type: u8, i: usize) -> Result<RecordRef> {
        self.header_at(self.indexed(stream, record_type, i)?, stream, record_type)
    }

    /// Index entry `i` of a stream and type, or [`ContainerError::FrameOutOfRange`].
    fn indexed(&self, stream: u8, record_type: u8, i: usize) -> Result<IndexEntry> {
        self.entry(stream, record_type, i)
            .ok_or(ContainerError::FrameOutOfRange {
                stream,
                index: i as u64,
                count: self.count(stream, record_type) as u64,
            })
    }

    /// Frames of depth (or infrared) stream `stream` per codec, counted over every frame when
    /// there are at most `max_frames`, else over `max_frames` evenly spaced ones (then
    /// `sampled` is true). A frame whose header is damaged is not counted.
    pub fn codec_mix(&self, stream: u8, max_frames: usize) -> CodecMix {
        let rt = match self.header.stream(stream).map(|s| s.kind) {
            Some(StreamKind::Infrared) => record_type::INFRARED_FRAME,
            _ => record_type::DEPTH_FRAME,
        };
        let n = self.count(stream, rt);
        let take = n.min(max_frames.max(1));
        let mut frames = std::collections::BTreeMap::new();
        for k in 0..take {
            // Evenly spaced: k * n / take (every frame when take == n).
            let i = (k as u128 * n as u128 / take.max(1) as u128) as usize;
            if let Ok(r) = self.record_header(stream, rt, i) {
                *frames.entry(r.header.codec).or_insert(0u64) += 1;
            }
        }
        CodecMix {
            frames,
            sampled: take < n,
        }
    }

    fn header_at(&self, e: IndexEntry, stream: u8, record_type: u8) -> Result<RecordRef> {
        if e.offset < self.first_record {
            return Err(ContainerError::BadIndex(format!(
                "entry points at offset {} inside the header",
                e.offset
            )));
        }
        let r = parse_header(&self.data, e.offset)?;
        let h = &r.header;
        if h.stream != stream
            || h.record_type != record_type
            || h.frame_number != e.frame_number
            || h.host_ts_us != e.host_ts_us
        {
            return Err(ContainerError::BadIndex(format!(
                "entry for stream {stream} frame {} does not match the record at offset {}",
                e.frame_number, e.offset
            )));
        }
        Ok(r)
    }

    fn read_at(&self, e: IndexEntry, stream: u8, record_type: u8) -> Result<(RecordRef, &[u8])> {
        let r = self.header_at(e, stream, record_type)?;
        let p = check_payload(&self.data, &r)?;
        Ok((r, p))
    }

    /// Decodes depth frame `i` of `stream` into `out` (`width * height` samples).
    pub fn read_depth_into(&self, stream: u8, i: usize, out: &mut [u16]) -> Result<RecordHeader> {
        let desc = self.depth_descriptor(stream)?;
        self.limits.frame_pixels(desc)?;
        let (r, p) = self.read_record(stream, record_type::DEPTH_FRAME, i)?;
        Self::decode_depth(desc, &r, p, out)?;
        Ok(r.header)
    }

    /// The descriptor of `stream`, which must be a depth stream.
    fn depth_descriptor(&self, stream: u8) -> Result<&StreamDescriptor> {
        let desc = self
            .header
            .stream(stream)
            .ok_or(ContainerError::NoSuchStream(stream))?;
        if desc.kind != StreamKind::Depth {
            return Err(ContainerError::NotDepth {
                stream,
                kind: desc.kind.name(),
            });
        }
        Ok(desc)
    }

    fn decode_depth(
        desc: &StreamDescriptor,
        r: &RecordRef,
        payload: &[u8],
        out: &mut [u16],
    ) -> Result<()> {
        codec::decode(r.header.codec, payload, desc.width, desc.height, out).map_err(|source| {
            ContainerError::Codec {
                offset: r.offset,
                source,
            }
        })
    }

    /// Decodes depth frame `i` of `stream`. The record is read (and its CRC checked) once.
    pub fn read_depth(&self, stream: u8, i: usize) -> Result<DepthFrame> {
        let desc = self.depth_descriptor(stream)?;
        let (width, height) = (desc.width, desc.height);
        let n = self.limits.frame_pixels(desc)?;
        // Check the payload before allocating the frame it declares.
        let (r, p) = self.read_record(stream, record_type::DEPTH_FRAME, i)?;
        codec::precheck(r.header.codec, p, width, height).map_err(|source| {
            ContainerError::Codec {
                offset: r.offset,
                source,
            }
        })?;
        let mut data = vec![0u16; n];
        Self::decode_depth(desc, &r, p, &mut data)?;
        Ok(DepthFrame {
            header: r.header,
            width,
            height,
            data,
        })
    }

    /// Decodes the depth frames of `stream` in order, reusing nothing between frames: each
    /// item is independent, so a damaged frame is an error item and iteration goes on.
    pub fn depth_frames(&self, stream: u8) -> impl Iterator<Item = Result<DepthFrame>> + '_ {
        (0..self.frame_count(stream)).map(move |i| self.read_depth(stream, i))
    }

    /// The descriptor of `stream`, which must be an infrared stream in `y8` (§5.9).
    pub fn infrared_descriptor(&self, stream: u8) -> Result<&StreamDescriptor> {
        let desc = self
            .header
            .stream(stream)
            .ok_or(ContainerError::NoSuchStream(stream))?;
        if desc.kind != StreamKind::Infrared || desc.format != PixelFormat::Y8 {
            return Err(ContainerError::NotInfrared {
                stream,
                kind: desc.kind.name(),
                format: desc.format.name(),
            });
        }
        Ok(desc)
    }

    /// Decodes infrared frame `i` of `stream` into `out` (`width * height` bytes), with
    /// `scratch` for the codec's 16-bit samples (reused between calls).
    pub fn read_infrared_into(
        &self,
        stream: u8,
        i: usize,
        scratch: &mut Vec<u16>,
        out: &mut [u8],
    ) -> Result<RecordHeader> {
        let desc = self.infrared_descriptor(stream)?;
        self.limits.frame_pixels(desc)?;
        let (r, p) = self.read_record(stream, record_type::INFRARED_FRAME, i)?;
        codec::decode_y8(r.header.codec, p, desc.width, desc.height, scratch, out).map_err(
            |source| ContainerError::Codec {
                offset: r.offset,
                source,
            },
        )?;
        Ok(r.header)
    }

    /// Decodes infrared frame `i` of `stream`.
    pub fn read_infrared(&self, stream: u8, i: usize) -> Result<InfraredFrame> {
        let desc = self.infrared_descriptor(stream)?;
        let (width, height) = (desc.width, desc.height);
        let n = self.limits.frame_pixels(desc)?;
        // Check the payload before allocating the frame it declares.
        let (r, p) = self.read_record(stream, record_type::INFRARED_FRAME, i)?;
        codec::precheck(r.header.codec, p, width, height).map_err(|source| {
            ContainerError::Codec {
                offset: r.offset,
                source,
            }
        })?;
        let mut data = vec![0u8; n];
        let mut scratch = Vec::new();
        codec::decode_y8(r.header.codec, p, width, height, &mut scratch, &mut data).map_err(
            |source| ContainerError::Codec {
                offset: r.offset,
                source,
            },
        )?;
        Ok(InfraredFrame {
            header: r.header,
            width,
            height,
            data,
        })
    }

    /// Position of the first record of this stream and type with frame number `n`.
    /// Binary search when the section is sorted by frame number, else a linear scan.
    pub fn find_frame_number(&self, stream: u8, record_type: u8, n: u64) -> Option<usize> {
        let s = self.section(stream, record_type)?;
        if s.flags & SECTION_SORTED_BY_FRAME != 0 {
            let i = self.partition(s, |e| e.frame_number < n);
            (self.section_entry(s, i)?.frame_number == n).then_some(i)
        } else {
            (0..s.len()).find(|&i| self.section_entry(s, i).map(|e| e.frame_number) == Some(n))
        }
    }

    /// Position of the first record whose device timestamp is at or after `ts_ms`
    /// (the count when there is none).
    pub fn seek_device_ts(&self, stream: u8, record_type: u8, ts_ms: f64) -> usize {
        self.seek_by(stream, record_type, SECTION_SORTED_BY_DEVICE_TS, |e| {
            e.device_ts_ms < ts_ms
        })
    }

    /// Position of the first record whose host timestamp is at or after `ts_us`.
    pub fn seek_host_ts(&self, stream: u8, record_type: u8, ts_us: i64) -> usize {
        self.seek_by(stream, record_type, SECTION_SORTED_BY_HOST_TS, |e| {
            e.host_ts_us < ts_us
        })
    }

    fn seek_by(
        &self,
        stream: u8,
        rtype: u8,
        flag: u8,
        before: impl Fn(&IndexEntry) -> bool,
    ) -> usize {
        let Some(s) = self.section(stream, rtype) else {
            return 0;
        };
        if s.flags & flag != 0 {
            self.partition(s, before)
        } else {
            (0..s.len())
                .find(|&i| self.section_entry(s, i).is_some_and(|e| !before(&e)))
                .unwrap_or(s.len())
        }
    }

    fn partition(&self, s: &Section, before: impl Fn(&IndexEntry) -> bool) -> usize {
        let (mut lo, mut hi) = (0, s.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.section_entry(s, mid) {
                Some(e) if before(&e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// The metadata record (§5.8) of the frame of `stream` that index entry `frame`
    /// describes (the record with its frame number and host time), if the file has one.
    pub fn frame_metadata(&self, stream: u8, frame: &IndexEntry) -> Result<Option<FrameMetadata>> {
        let rt = record_type::FRAME_METADATA;
        let Some(s) = self.section(stream, rt) else {
            return Ok(None);
        };
        let same = |i: usize| {
            self.section_entry(s, i).is_some_and(|e| {
                e.frame_number == frame.frame_number && e.host_ts_us == frame.host_ts_us
            })
        };
        // Sorted by frame number: the record is where its number is; else (numbers that
        // restarted) a scan finds it.
        let i = if s.flags & SECTION_SORTED_BY_FRAME != 0 {
            self.find_frame_number(stream, rt, frame.frame_number)
                .filter(|&i| same(i))
        } else {
            (0..s.len()).find(|&i| same(i))
        };
        match i {
            Some(i) => {
                let (_, p) = self.read_record(stream, rt, i)?;
                Ok(Some(FrameMetadata::decode(p)?))
            }
            None => Ok(None),
        }
    }

    /// Every gap record of the file, with its stream.
    pub fn gaps(&self) -> Result<Vec<(u8, Gap)>> {
        self.decode_all(record_type::GAP, Gap::decode)
    }

    /// Every event record of the file, with its stream and host time.
    pub fn events(&self) -> Result<Vec<(u8, Event)>> {
        self.decode_all(record_type::EVENT, Event::decode)
    }

    fn decode_all<T>(&self, rtype: u8, f: impl Fn(&[u8]) -> Result<T>) -> Result<Vec<(u8, T)>> {
        let mut out = Vec::new();
        for s in self.sections.iter().filter(|s| s.record_type == rtype) {
            for i in 0..s.len() {
                let (r, p) = self.read_record(s.stream, rtype, i)?;
                out.push((
                    s.stream,
                    f(p).map_err(|e| ContainerError::BadRecord {
                        offset: r.offset,
                        message: crate::error::chain(&e),
                    })?,
                ));
            }
        }
        Ok(out)
    }
}

/// Collects index entries per (stream, record type) while scanning, with sort flags.
#[derive(Default)]
struct SectionBuilder {
    sections: Vec<Section>,
}

impl SectionBuilder {
    fn push(&mut self, stream: u8, record_type: u8, payload_len: u64, e: IndexEntry) {
        let pos = match self
            .sections
            .iter()
            .position(|s| s.stream == stream && s.record_type == record_type)
        {
            Some(p) => p,
            None => {
                self.sections.push(Section {
                    stream,
                    record_type,
                    flags: ALL_SORTED,
                    payload_bytes: 0,
                    entries: Entries::Owned(Vec::new()),
                });
                self.sections.len() - 1
            }
        };
        let s = &mut self.sections[pos];
        s.payload_bytes += payload_len;
        let Entries::Owned(v) = &mut s.entries else {
            unreachable!("builder sections own their entries")
        };
        update_sort_flags(&mut s.flags, v.last(), &e);
        v.push(e);
    }

    fn finish(mut self) -> Vec<Section> {
        self.sections.sort_by_key(|s| (s.stream, s.record_type));
        self.sections
    }
}
