//! Append-only `.rsrec` writer (`format-spec.md` §9).
//!
//! Records are appended through a buffer; every `index_interval` (or `index_max_entries`
//! records) an index block lists what was written since the previous one; every
//! `flush_interval` (250 ms) the buffer goes to the OS, so that a crash of the process
//! (kill -9) loses at most that much; every `sync_interval` (1 s) the pending records are
//! indexed and, per [`FsyncPolicy`], fsynced, which bounds what a power failure loses. [`Writer::finish`] writes the final index and footer and then
//! patches the index pointer in the preamble. The final index is rebuilt from the index
//! blocks already on disk, so the writer's memory does not grow with the recording.
//! After any I/O error the writer is poisoned: every later call fails.
//!
//! A full disk is not such an error. The writer keeps the space it needs to close the file
//! (the pending index block, the final index, the footer and [`CLOSE_MARGIN`] for the
//! records that say why the file ends) allocated ahead of the data with `fallocate`
//! (keeping the file size), in steps of [`RESERVE_CHUNK`]. When that space cannot grow,
//! [`Writer::write_record`] refuses the record with [`ContainerError::DiskFull`] before
//! writing any of it; [`Writer::write_closing_record`] may still use the margin, and
//! [`Writer::finish`] closes and indexes the file in the space kept for it. On file
//! systems that cannot preallocate, a full disk poisons the writer as any I/O error does
//! (the file stays recoverable).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bytes::Builder;
use super::error::{ContainerError, Result};
use super::format::*;
use super::header::FileHeader;
use super::index::{
    encode_final_entry, encode_footer, update_sort_flags, BlockEntry, IndexBlock, IndexEntry,
    SectionInfo, ALL_SORTED,
};
use super::limits::ReadLimits;
use super::record::{parse_header, RecordHeader};

/// When the writer asks the OS to put data on the disk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every periodic flush (at most `flush_interval` lost on power failure).
    EveryFlush,
    /// fsync only when the file is finished (a crash of rsrec loses nothing flushed; a power
    /// failure may lose what the OS had not yet written).
    OnClose,
    /// Never fsync (tests, scratch files).
    Never,
}

impl std::fmt::Display for FsyncPolicy {
    /// The name [`FromStr`](std::str::FromStr) reads: `flush`, `close` or `never`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EveryFlush => "flush",
            Self::OnClose => "close",
            Self::Never => "never",
        })
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "flush" | "every-flush" => Ok(Self::EveryFlush),
            "close" | "on-close" => Ok(Self::OnClose),
            "never" => Ok(Self::Never),
            _ => Err(format!("unknown fsync policy '{s}' (flush, close, never)")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Hand buffered records to the OS at least this often (the most a crash of the
    /// process can lose).
    pub flush_interval: Duration,
    /// Index pending records, flush and fsync (per [`FsyncPolicy`]) at least this often
    /// (the most a power failure can lose under [`FsyncPolicy::EveryFlush`]).
    pub sync_interval: Duration,
    /// Write an index block at least this often.
    pub index_interval: Duration,
    /// ... or when this many records are waiting to be indexed.
    pub index_max_entries: usize,
    pub fsync: FsyncPolicy,
    /// Size of the write buffer.
    pub buffer_size: usize,
    /// Replace an existing file instead of failing.
    pub overwrite: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(250),
            sync_interval: Duration::from_secs(1),
            index_interval: Duration::from_secs(1),
            index_max_entries: 4096,
            fsync: FsyncPolicy::EveryFlush,
            buffer_size: 1 << 20,
            overwrite: false,
        }
    }
}

impl WriterOptions {
    /// Options whose output depends only on the records written (no clock): index blocks
    /// every `entries` records. Used for test vectors.
    pub fn deterministic(entries: usize) -> Self {
        Self {
            flush_interval: Duration::MAX,
            sync_interval: Duration::MAX,
            index_interval: Duration::MAX,
            index_max_entries: entries,
            fsync: FsyncPolicy::Never,
            ..Self::default()
        }
    }
}

/// Per (stream, record type) running totals.
#[derive(Clone, Debug)]
struct SectionStats {
    count: u64,
    payload_bytes: u64,
    flags: u8,
    last: Option<IndexEntry>,
}

/// What a finished file holds.
#[derive(Clone, Debug, Default)]
pub struct FinishStats {
    /// Records written by the caller (the writer's own header copies not counted).
    pub records: u64,
    pub bytes: u64,
}

/// How far ahead of the data the writer allocates at a time.
pub const RESERVE_CHUNK: u64 = 8 << 20;
/// Space kept, beyond what closing needs, for the last records a full disk leaves room for
/// (a gap for the frames that could not be written, an event): see
/// [`Writer::write_closing_record`].
pub const CLOSE_MARGIN: u64 = 64 << 10;

/// The space allocated ahead of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reserve {
    /// Blocks are allocated up to this file offset.
    Until(u64),
    /// The file system cannot preallocate (a full disk then poisons the writer).
    Unsupported,
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full_io(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Allocates `len` bytes at `offset` without changing the file's size.
#[cfg(target_os = "linux")]
fn allocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    fallocate(file, FallocateFlags::KEEP_SIZE, offset, len).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn allocate(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

pub struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    opts: WriterOptions,
    /// Offset at which the next record starts.
    pos: u64,
    pending: Vec<BlockEntry>,
    index_blocks: Vec<u64>,
    sections: BTreeMap<(u8, u8), SectionStats>,
    records: u64,
    last_flush: Instant,
    last_sync: Instant,
    last_index: Instant,
    reserve: Reserve,
    /// The header's bytes, repeated as the first record and before the final index (§5.7).
    head: Vec<u8>,
    /// Header copies among `records`.
    header_copies: u64,
    poisoned: bool,
    finished: bool,
}

impl Writer {
    /// Creates `path` and writes the header. Fails if the file exists, unless
    /// `opts.overwrite` is set.
    pub fn create(
        path: impl AsRef<Path>,
        header: &FileHeader,
        opts: WriterOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let head = header.encode()?;
        // Never write a file rsrec's reader would refuse to decode (§3, frame-size limit).
        ReadLimits::from_env()?.check_header(header)?;
        let mut oo = OpenOptions::new();
        oo.read(true).write(true);
        if opts.overwrite {
            oo.create(true).truncate(true);
        } else {
            oo.create_new(true);
        }
        let file = oo.open(&path).map_err(|e| ContainerError::io(&path, e))?;
        let w = Self::start(path.clone(), file, &head, opts);
        if w.is_err() {
            // A file without its header (the disk was full) is no rsrec file: remove it.
            let _ = std::fs::remove_file(&path);
        }
        w
    }

    fn start(path: PathBuf, file: File, head: &[u8], opts: WriterOptions) -> Result<Self> {
        let mut opts = opts;
        // §6.1: a block holds at most MAX_INDEX_BLOCK_ENTRIES entries.
        opts.index_max_entries = opts
            .index_max_entries
            .clamp(1, MAX_INDEX_BLOCK_ENTRIES as usize);
        let mut out = BufWriter::with_capacity(opts.buffer_size, file);
        // The header goes to the file at once: from its creation on, the file is a valid
        // (unclosed) rsrec file that readers can open.
        out.write_all(head)
            .and_then(|_| out.flush())
            .and_then(|_| match opts.fsync {
                FsyncPolicy::EveryFlush => out.get_ref().sync_data(),
                _ => Ok(()),
            })
            .map_err(|e| ContainerError::io(&path, e))?;
        let now = Instant::now();
        let mut w = Self {
            path,
            out,
            opts,
            pos: head.len() as u64,
            pending: Vec::new(),
            index_blocks: Vec::new(),
            sections: BTreeMap::new(),
            records: 0,
            last_flush: now,
            last_sync: now,
            last_index: now,
            reserve: Reserve::Until(head.len() as u64),
            head: head.to_vec(),
            header_copies: 0,
            poisoned: false,
            finished: false,
        };
        w.ensure_space(0, CLOSE_MARGIN)?;
        // §5.7: the first record is a copy of the header, for recovery when the header
        // itself is damaged.
        w.write_header_copy(false)?;
        Ok(w)
    }

    /// `closing`: the copy of the close sequence, whose space [`Writer::close_need`] has
    /// kept all along (so it is written even when the disk is full).
    fn write_header_copy(&mut self, closing: bool) -> Result<()> {
        let head = self.head.clone();
        let margin = if closing { None } else { Some(0) };
        self.write_with_margin(&RecordHeader::bare(record_type::HEADER_COPY), &head, margin)?;
        self.header_copies += 1;
        Ok(())
    }

    /// Bytes that closing the file needs after `extra` more records: the pending index
    /// block, the final index and the footer.
    fn close_need(&self, extra: u64) -> u64 {
        let pending = self.pending.len() as u64 + extra;
        let block = (RECORD_HEADER_LEN + INDEX_BLOCK_HEADER_LEN) as u64
            + pending * INDEX_BLOCK_ENTRY_LEN as u64;
        let sections = self.sections.len() as u64 + extra;
        // The header copy that closing writes (§5.7), with its index entries.
        let copy = (RECORD_HEADER_LEN + self.head.len() + INDEX_BLOCK_ENTRY_LEN) as u64;
        let final_index = (RECORD_HEADER_LEN + FINAL_INDEX_HEADER_LEN) as u64
            + sections * FINAL_SECTION_LEN as u64
            + (self.records + extra + 1) * FINAL_ENTRY_LEN as u64;
        block + copy + final_index + FOOTER_LEN as u64
    }

    /// Makes sure a record of `len` bytes, what closing then needs, and `margin` fit in
    /// allocated space; grows the allocation by [`RESERVE_CHUNK`] (or just enough) if not.
    fn ensure_space(&mut self, len: u64, margin: u64) -> Result<()> {
        let Reserve::Until(end) = self.reserve else {
            return Ok(());
        };
        let need = self.pos + len + self.close_need(u64::from(len > 0)) + margin;
        if need <= end {
            return Ok(());
        }
        let from = self.pos;
        let mut r = allocate(self.out.get_ref(), from, need + RESERVE_CHUNK - from);
        let mut until = need + RESERVE_CHUNK;
        if r.as_ref().is_err_and(is_disk_full_io) {
            // Not a whole chunk: perhaps just this record.
            r = allocate(self.out.get_ref(), from, need - from);
            until = need;
        }
        match r {
            Ok(()) => {
                self.reserve = Reserve::Until(until);
                Ok(())
            }
            Err(e) if is_disk_full_io(&e) => Err(ContainerError::DiskFull {
                path: self.path.clone(),
                needed: need - end,
            }),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP)
                        | Some(libc::ENOSYS)
                        | Some(libc::EINVAL)
                        | Some(libc::ENODEV)
                        | Some(libc::ESPIPE)
                ) =>
            {
                self.reserve = Reserve::Unsupported;
                Ok(())
            }
            Err(e) => self.io(Err(e)),
        }
    }

    /// Gives back the allocation beyond the end of the data (the file is complete up to
    /// `pos` on disk).
    fn release_reserve(&mut self) {
        if let Reserve::Until(end) = self.reserve {
            if end > self.pos {
                let _ = self.out.get_ref().set_len(self.pos);
            }
            self.reserve = Reserve::Until(self.pos);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (including what is still buffered).
    pub fn bytes_written(&self) -> u64 {
        self.pos
    }

    /// Data records written so far (not counting the writer's own header copies).
    pub fn records_written(&self) -> u64 {
        self.records - self.header_copies
    }

    fn check(&self) -> Result<()> {
        if self.poisoned || self.finished {
            return Err(ContainerError::Poisoned);
        }
        Ok(())
    }

    fn io<T>(&mut self, r: std::io::Result<T>) -> Result<T> {
        r.map_err(|e| {
            self.poisoned = true;
            ContainerError::Write(e)
        })
    }

    fn append(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<u64> {
        let h = header.encode(payload)?;
        let offset = self.pos;
        let r = self
            .out
            .write_all(&h)
            .and_then(|_| self.out.write_all(payload));
        self.io(r)?;
        self.pos += (h.len() + payload.len()) as u64;
        Ok(offset)
    }

    /// Appends one data record and returns its offset. Index records are the writer's own
    /// business and are rejected here.
    ///
    /// [`ContainerError::DiskFull`]: nothing was written and the writer can still
    /// [`finish`](Writer::finish) the file (and write a few closing records).
    pub fn write_record(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<u64> {
        self.write_with_margin(header, payload, Some(CLOSE_MARGIN))
    }

    /// Appends one record in the space kept for closing (after [`ContainerError::DiskFull`]:
    /// the gap of the frames that could not be written, an event saying why). Fails with
    /// `DiskFull` too once [`CLOSE_MARGIN`] is used up.
    pub fn write_closing_record(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<u64> {
        self.write_with_margin(header, payload, Some(0))
    }

    fn write_with_margin(
        &mut self,
        header: &RecordHeader,
        payload: &[u8],
        margin: Option<u64>,
    ) -> Result<u64> {
        self.check()?;
        // `None`: the space was kept for it (the closing header copy).
        if let Some(margin) = margin {
            self.ensure_space((RECORD_HEADER_LEN + payload.len()) as u64, margin)?;
        }
        if matches!(
            header.record_type,
            record_type::INDEX_BLOCK | record_type::FINAL_INDEX
        ) {
            return Err(ContainerError::InvalidArgument(
                "index records are written by the writer itself".into(),
            ));
        }
        let offset = self.append(header, payload)?;
        self.records += 1;
        let entry = IndexEntry {
            offset,
            frame_number: header.frame_number,
            device_ts_ms: header.device_ts_ms,
            host_ts_us: header.host_ts_us,
        };
        let s = self
            .sections
            .entry((header.stream, header.record_type))
            .or_insert(SectionStats {
                count: 0,
                payload_bytes: 0,
                flags: ALL_SORTED,
                last: None,
            });
        s.count += 1;
        s.payload_bytes += payload.len() as u64;
        update_sort_flags(&mut s.flags, s.last.as_ref(), &entry);
        s.last = Some(entry);
        self.pending.push(BlockEntry {
            stream: header.stream,
            record_type: header.record_type,
            payload_len: payload.len() as u32,
            entry,
        });
        self.tick()?;
        Ok(offset)
    }

    /// Writes an index block and/or flushes if their intervals have passed. Call it
    /// periodically when no records arrive, so buffered data still reaches the disk.
    pub fn tick(&mut self) -> Result<()> {
        self.check()?;
        if self.pending.len() >= self.opts.index_max_entries
            || (!self.pending.is_empty() && self.last_index.elapsed() >= self.opts.index_interval)
        {
            self.write_index_block()?;
        }
        if self.last_sync.elapsed() >= self.opts.sync_interval {
            self.flush()?;
        } else if self.last_flush.elapsed() >= self.opts.flush_interval {
            // To the OS only: a crash of the process loses nothing handed over; the records
            // after the last index block are found by the reader's forward scan (§10.2).
            let r = self.out.flush();
            self.io(r)?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    fn write_index_block(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let prev = self.index_blocks.last().copied().unwrap_or(0);
        let payload = IndexBlock::encode(prev, &self.pending);
        let offset = self.append(&RecordHeader::bare(record_type::INDEX_BLOCK), &payload)?;
        self.index_blocks.push(offset);
        self.pending.clear();
        self.last_index = Instant::now();
        Ok(())
    }

    /// Indexes what is pending, flushes the buffer and fsyncs per the policy.
    pub fn flush(&mut self) -> Result<()> {
        self.check()?;
        self.write_index_block()?;
        let r = self.out.flush();
        self.io(r)?;
        if self.opts.fsync == FsyncPolicy::EveryFlush {
            let r = self.out.get_ref().sync_data();
            self.io(r)?;
        }
        self.last_flush = Instant::now();
        self.last_sync = self.last_flush;
        Ok(())
    }

    /// Writes the final index and footer, patches the preamble's index pointer and syncs.
    pub fn finish(mut self) -> Result<FinishStats> {
        self.check()?;
        let r = self.finish_inner();
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn finish_inner(&mut self) -> Result<FinishStats> {
        // §5.7: a second header copy, at the end, where damage to the start cannot reach it.
        self.write_header_copy(true)?;
        self.write_index_block()?;
        let r = self.out.flush();
        self.io(r)?;

        // Section table, then each section's entries read back from the index blocks.
        let n_entries: u64 = self.sections.values().map(|s| s.count).sum();
        let table_len = FINAL_INDEX_HEADER_LEN + self.sections.len() * FINAL_SECTION_LEN;
        let payload_len = table_len as u64 + n_entries * FINAL_ENTRY_LEN as u64;
        let mut b = Builder::new();
        b.u32(self.sections.len() as u32).u32(0);
        let mut start = table_len as u64;
        for (&(stream, rtype), s) in &self.sections {
            SectionInfo {
                stream,
                record_type: rtype,
                flags: s.flags,
                entry_count: s.count,
                entries_start: start,
                payload_bytes: s.payload_bytes,
            }
            .encode(&mut b);
            start += s.count * FINAL_ENTRY_LEN as u64;
        }
        let index_offset = self.pos;
        // Placeholder header; rewritten with the CRC once the payload is out.
        let placeholder = [0u8; RECORD_HEADER_LEN];
        let r = self.out.write_all(&placeholder);
        self.io(r)?;
        let mut crc = crc32c::crc32c(&b.buf);
        let r = self.out.write_all(&b.buf);
        self.io(r)?;
        let keys: Vec<(u8, u8)> = self.sections.keys().copied().collect();
        let mut entry_buf = Vec::new();
        for key in keys {
            let mut written = 0u64;
            for i in 0..self.index_blocks.len() {
                let block = self.read_back_block(self.index_blocks[i])?;
                entry_buf.clear();
                for be in &block.entries {
                    if (be.stream, be.record_type) == key {
                        encode_final_entry(&be.entry, &mut entry_buf);
                        written += 1;
                    }
                }
                crc = crc32c::crc32c_append(crc, &entry_buf);
                let r = self.out.write_all(&entry_buf);
                self.io(r)?;
            }
            if written != self.sections[&key].count {
                return Err(ContainerError::BadIndex(format!(
                    "index blocks on disk list {written} records of stream {} type {}, {} were written",
                    key.0, key.1, self.sections[&key].count
                )));
            }
        }
        let header =
            RecordHeader::bare(record_type::FINAL_INDEX).encode_with_crc(payload_len, crc)?;
        let footer = encode_footer(index_offset, self.records);
        let r = self.out.write_all(&footer);
        self.io(r)?;
        let r = self.out.flush();
        self.io(r)?;
        // The index and footer must be on disk before the header that makes them valid.
        if self.opts.fsync != FsyncPolicy::Never {
            let r = self.out.get_ref().sync_data();
            self.io(r)?;
        }
        let r = self.out.get_ref().write_all_at(&header, index_offset);
        self.io(r)?;
        self.pos = index_offset + RECORD_HEADER_LEN as u64 + payload_len + FOOTER_LEN as u64;
        // Data and index must be on disk before the preamble says the file is closed.
        if self.opts.fsync != FsyncPolicy::Never {
            let r = self.out.get_ref().sync_data();
            self.io(r)?;
        }
        let mut ptr = [0u8; 12];
        ptr[..8].copy_from_slice(&index_offset.to_le_bytes());
        let ptr_crc = crc32c::crc32c(&ptr[..8]);
        ptr[8..].copy_from_slice(&ptr_crc.to_le_bytes());
        let r = self
            .out
            .get_ref()
            .write_all_at(&ptr, PRE_INDEX_OFFSET as u64);
        self.io(r)?;
        if self.opts.fsync != FsyncPolicy::Never {
            let r = self.out.get_ref().sync_all();
            self.io(r)?;
        }
        self.release_reserve();
        self.finished = true;
        Ok(FinishStats {
            records: self.records - self.header_copies,
            bytes: self.pos,
        })
    }

    fn read_back_block(&mut self, offset: u64) -> Result<IndexBlock> {
        let mut head = [0u8; RECORD_HEADER_LEN];
        let r = self.out.get_ref().read_exact_at(&mut head, offset);
        self.io(r)?;
        let len = super::bytes::le_u32(&head, REC_PAYLOAD_LEN) as usize;
        let mut rec = vec![0u8; RECORD_HEADER_LEN + len];
        let r = self.out.get_ref().read_exact_at(&mut rec, offset);
        self.io(r)?;
        let r = parse_header(&rec, 0)?;
        IndexBlock::decode(super::record::check_payload(&rec, &r)?)
    }
}

impl Drop for Writer {
    /// An unfinished writer flushes what it has, so the file stays recoverable; it does not
    /// pretend the file was closed.
    fn drop(&mut self) {
        if !self.finished && !self.poisoned {
            let _ = self.write_index_block();
            if self.out.flush().is_ok() {
                self.release_reserve();
            }
        }
    }
}
