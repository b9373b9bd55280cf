//! Opening a file store: scan every block, rebuild the index, report what was damaged.
//! The rules are described in the `file` module documentation.

use super::file::{Block, DamagedRegion, FileStore, LostRange, TruncatedTail, io_error};
use super::pool::BufferPool;
use super::record::{self, BLOCK_HEADER_LEN, HDR, Kind, RecHeader};
use super::{Result, STORE_BUFFERS, StoreError};
use crate::disk::{self, Disk};
use crate::mem::Charge;
use std::ops::RangeInclusive;

/// Reads a block file through a window charged to the buffer pool: the whole file when
/// the pool allows, else `chunk`-sized pieces.
struct Reader<'a> {
    disk: &'a dyn Disk,
    path: &'a str,
    len: u64,
    start: u64,
    buf: Vec<u8>,
    want: usize,
    chunk: usize,
    charge: Option<Charge>,
}

impl<'a> Reader<'a> {
    fn new(disk: &'a dyn Disk, path: &'a str, len: u64, chunk: usize) -> Self {
        let whole = usize::try_from(len).unwrap_or(usize::MAX);
        Reader { disk, path, len, start: 0, buf: Vec::new(), want: whole, chunk, charge: None }
    }

    /// Bytes `[off, off + n)`, or `None` past the end of the file.
    fn get(&mut self, pool: &mut BufferPool, off: u64, n: usize) -> Result<Option<&[u8]>> {
        if off + n as u64 > self.len {
            return Ok(None);
        }
        let have = off >= self.start && off + n as u64 <= self.start + self.buf.len() as u64;
        if !have {
            self.charge = None;
            self.buf = Vec::new();
            let rest = self.len - off;
            let mut want = (self.want.max(n) as u64).min(rest) as usize;
            let mut charge = pool.reserve(want);
            if charge.is_none() && self.want > self.chunk {
                // Not a whole block: scan in chunks.
                self.want = self.chunk;
                want = (self.chunk.max(n) as u64).min(rest) as usize;
                charge = pool.reserve(want);
            }
            let Some(charge) = charge else {
                return Err(StoreError::NoMemory { account: STORE_BUFFERS, need: want as u64 });
            };
            self.charge = Some(charge);
            self.buf = self.disk.read_at(self.path, off, want).map_err(|e| io_error("read", self.path, e))?;
            self.start = off;
            if (self.buf.len() as u64) < n as u64 {
                return Ok(None);
            }
        }
        let from = (off - self.start) as usize;
        Ok(Some(&self.buf[from..from + n]))
    }
}

/// What a block scan found, in file order.
enum Event {
    Msg {
        off: u64,
        len: u32,
        slot: u32,
        seq: u64,
        subject: String,
    },
    Lost {
        off: u64,
        slot: u32,
        seq: u64,
    },
    /// `slots`: the block's message slot count when the delete was written.
    Delete {
        off: u64,
        from: u64,
        to: u64,
        slots: u32,
    },
}

impl Event {
    fn off(&self) -> u64 {
        match self {
            Event::Msg { off, .. } | Event::Lost { off, .. } | Event::Delete { off, .. } => *off,
        }
    }
}

#[derive(Default)]
struct Scan {
    len: u64,
    /// `(base, prev_end, truncates)` from the block header.
    header: Option<(u64, u64, bool)>,
    events: Vec<Event>,
    /// `(offset, slot count)` from the seal.
    seal: Option<(u64, u64)>,
    /// `(offset, len, unreadable records)`.
    damaged: Vec<(u64, u64, Option<u64>)>,
    /// End of the last record whose checksum is right.
    good_end: u64,
    /// Record number after that record.
    good_recs: u32,
    /// Some record had a readable header.
    any: bool,
}

/// A candidate record at `pos`: its header and whether its checksum is right.
fn candidate(r: &mut Reader<'_>, pool: &mut BufferPool, pos: u64) -> Result<Option<(RecHeader, bool, Vec<u8>)>> {
    let Some(hb) = r.get(pool, pos, HDR)? else { return Ok(None) };
    if !(1..=4).contains(&hb[4]) || hb[5] != 0 {
        return Ok(None);
    }
    let Some(h) = record::parse_header(hb) else { return Ok(None) };
    let Some(rec) = r.get(pool, pos, h.len as usize)? else { return Ok(None) };
    let ok = record::checksum_ok(rec);
    // Keep the body only for messages (their subject is needed).
    let body = if matches!(h.kind, Kind::Msg | Kind::Header) && ok { rec.to_vec() } else { Vec::new() };
    Ok(Some((h, ok, body)))
}

fn scan_file(disk: &dyn Disk, pool: &mut BufferPool, index: u64, path: &str, len: u64, chunk: usize) -> Result<Scan> {
    let mut r = Reader::new(disk, path, len, chunk);
    let mut s = Scan { len, ..Default::default() };
    let mut pos = 0u64;
    let mut damage: Option<u64> = None;
    let mut expect_rec = 0u64;
    let mut base: Option<u64> = None;
    let mut next_slot = 0u64;
    while pos < len {
        let found = candidate(&mut r, pool, pos)?.filter(|(_, ok, _)| *ok || damage.is_none());
        // Consistency with what the block already showed.
        let found = found.filter(|(h, ok, body)| match h.kind {
            // A block header belongs at offset 0 and names this block.
            Kind::Header => pos == 0 && (!*ok || record::header_index(body) == Some(index)),
            Kind::Msg => {
                let b = base.or_else(|| h.seq.checked_sub(h.slot as u64 + 1));
                b.is_some_and(|b| h.seq == b + 1 + h.slot as u64) && h.slot as u64 >= next_slot
            }
            // A delete knows how many messages its block held: never fewer than seen.
            Kind::Delete => h.slot as u64 >= next_slot,
            Kind::Seal => true,
        });
        let Some((h, ok, body)) = found else {
            damage.get_or_insert(pos);
            pos += 1;
            continue;
        };
        if let Some(d) = damage.take() {
            s.damaged.push((d, pos - d, (h.rec as u64).checked_sub(expect_rec)));
        }
        if !ok {
            s.damaged.push((pos, h.len as u64, Some(0)));
        }
        s.any = true;
        match h.kind {
            Kind::Header => {
                s.header = Some((h.seq, h.aux, h.slot == 1));
                base = Some(h.seq);
            }
            Kind::Msg => {
                base = base.or(Some(h.seq - h.slot as u64 - 1));
                next_slot = h.slot as u64 + 1;
                let subject = ok.then(|| record::msg_parts(&h, &body).map(|(s, _, _)| s.to_string())).flatten();
                s.events.push(match subject {
                    Some(subject) => Event::Msg { off: pos, len: h.len, slot: h.slot, seq: h.seq, subject },
                    None => Event::Lost { off: pos, slot: h.slot, seq: h.seq },
                });
            }
            Kind::Delete => s.events.push(Event::Delete { off: pos, from: h.seq, to: h.aux, slots: h.slot }),
            Kind::Seal => s.seal = Some((pos, h.aux)),
        }
        expect_rec = h.rec as u64 + 1;
        pos += h.len as u64;
        if ok {
            s.good_end = pos;
            s.good_recs = h.rec + 1;
        }
    }
    if let Some(d) = damage {
        s.damaged.push((d, len - d, None));
    }
    Ok(s)
}

/// Block index of a file name `<index>.blk`.
fn block_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".blk")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Append `seqs` to `lost` (as block `block`), merging with the previous range.
fn push_lost(lost: &mut Vec<LostRange>, block: u64, seqs: RangeInclusive<u64>) {
    if let Some(l) = lost.last_mut()
        && l.block == block
        && *l.seqs.end() + 1 == *seqs.start()
    {
        l.seqs = *l.seqs.start()..=*seqs.end();
        return;
    }
    lost.push(LostRange { block, seqs });
}

/// Rebuild `fs` (freshly constructed, empty) from its directory.
pub(super) fn recover(fs: &mut FileStore) -> Result<()> {
    let names = fs.disk.list(&fs.dir).map_err(|e| io_error("list", &fs.dir, e))?;
    let mut files = Vec::new();
    for n in names {
        match block_name(&n) {
            Some(i) => files.push((i, n)),
            None => fs.report.foreign.push(n),
        }
    }
    files.sort();
    fs.next_index = files.last().map_or(1, |(i, _)| i + 1);
    // The last block is the last file that starts with one of our block headers; files
    // after it are torn creations or foreign.
    let mut last_index = None;
    for (i, name) in files.iter().rev() {
        if starts_with_header(&*fs.disk, &disk::join(&fs.dir, name), *i)? {
            last_index = Some(*i);
            break;
        }
    }
    let mut prev_sealed = false;
    // A destroyed block (no readable record) since the last block added, to which the
    // sequences missing before the next block are attributed.
    let mut destroyed: Option<u64> = None;
    for (index, name) in files {
        let is_last = last_index == Some(index);
        let after_last = last_index.is_none_or(|l| index > l);
        let path = disk::join(&fs.dir, &name);
        let len = fs.disk.len(&path).map_err(|e| io_error("stat", &path, e))?;
        let disk = fs.disk.clone();
        let mut scan = scan_file(&*disk, &mut fs.pool, index, &path, len, fs.cfg.scan_chunk)?;
        let mut cut = None;
        if is_last && scan.good_end < scan.len {
            // A torn write: nothing good follows. Cut it off.
            let at = scan.good_end;
            let seqs: Vec<u64> = scan
                .events
                .iter()
                .filter(|e| e.off() >= at)
                .filter_map(|e| match e {
                    Event::Msg { seq, .. } | Event::Lost { seq, .. } => Some(*seq),
                    Event::Delete { .. } => None,
                })
                .collect();
            scan.events.retain(|e| e.off() < at);
            scan.damaged.retain(|d| d.0 < at);
            if scan.seal.is_some_and(|(o, _)| o >= at) {
                scan.seal = None;
            }
            let seqs = seqs.iter().min().zip(seqs.iter().max()).map(|(a, b)| *a..=*b);
            cut = Some(TruncatedTail { block: index, offset: at, bytes: scan.len - at, seqs });
        }
        if !scan.any {
            if after_last && len < BLOCK_HEADER_LEN as u64 {
                // A block whose creation was cut short by a crash.
                fs.disk.remove(&path).map_err(|e| io_error("remove", &path, e))?;
                fs.dir_dirty = true;
                fs.report.truncated = Some(TruncatedTail { block: index, offset: 0, bytes: len, seqs: None });
            } else if after_last {
                fs.report.foreign.push(name);
            } else {
                // One of our blocks with nothing readable left: reported, left in place.
                fs.report.damaged.push(DamagedRegion { block: index, offset: 0, len, unreadable_records: None });
                destroyed = Some(index);
            }
            continue;
        }
        if let Some(c) = &cut {
            fs.disk.truncate(&path, c.offset).map_err(|e| io_error("truncate", &path, e))?;
            fs.disk.sync(&path).map_err(|e| io_error("sync", &path, e))?;
            scan.len = c.offset;
            fs.report.truncated = cut;
        }
        let had_seal = scan.seal.is_some();
        if !build_block(fs, index, path, scan, is_last, prev_sealed, destroyed.take())? {
            fs.report.foreign.push(name);
            continue;
        }
        prev_sealed = had_seal;
    }
    if fs.blocks.is_empty() {
        fs.roll(fs.last_seq, fs.last_seq, false)?;
    }
    let last = fs.blocks.back().expect("a block");
    fs.last_seq = fs.last_seq.max(last.base + last.slots.len() as u64);
    fs.first_seq = fs.first_live(0);
    fs.report.removed_blocks = fs.drop_empty_prefix();
    // Build only on what is durable. What recovery just read may be writes that never
    // reached the disk: a store reopened after a failed fsync (in the same process, or
    // a process restarted without a power cut) reads the page cache, which after a
    // failed fsync is no witness of the disk ("fsyncgate"), and a block created since
    // the directory was last synced is not durably named at all. Appends acknowledged
    // on top of such a block would vanish with it at the next power cut, so every
    // block and the directory are synced before the store takes a write.
    let paths: Vec<String> = fs.blocks.iter().map(|b| b.path.clone()).collect();
    for path in paths {
        fs.disk.sync(&path).map_err(|e| io_error("sync", &path, e))?;
    }
    fs.disk.sync_dir(&fs.dir).map_err(|e| io_error("sync_dir", &fs.dir, e))?;
    fs.dir_dirty = false;
    Ok(())
}

/// Whether the file at `path` starts with a good block header for block `index`. A
/// failed read is an error, not a "no": taking it for one would make an earlier block
/// the last, so the real last block would be indexed as a rolled block that lost its
/// seal, and the next append would roll past it without ever writing one.
fn starts_with_header(disk: &dyn Disk, path: &str, index: u64) -> Result<bool> {
    let b = disk.read_at(path, 0, BLOCK_HEADER_LEN).map_err(|e| io_error("read", path, e))?;
    Ok(record::parse_header(&b).is_some_and(|h| h.kind == Kind::Header)
        && record::checksum_ok(&b)
        && record::header_index(&b) == Some(index))
}

/// Add the scanned block to the index; `false` if it cannot belong to this store.
/// `destroyed` is an unreadable block file just before this one.
fn build_block(
    fs: &mut FileStore,
    index: u64,
    path: String,
    scan: Scan,
    is_last: bool,
    prev_sealed: bool,
    destroyed: Option<u64>,
) -> Result<bool> {
    let prev_end = fs.blocks.back().map(|b| b.base + b.slots.len() as u64);
    let first_msg_base = scan.events.iter().find_map(|e| match e {
        Event::Msg { slot, seq, .. } | Event::Lost { slot, seq, .. } => Some(seq - *slot as u64 - 1),
        Event::Delete { .. } => None,
    });
    let base = scan.header.map(|h| h.0).or(first_msg_base).or(prev_end).unwrap_or(0);
    if let Some(p) = prev_end
        && base < p
    {
        if !scan.header.is_some_and(|h| h.2) {
            return Ok(false);
        }
        // A truncating block: the earlier blocks' sequences above `base` were discarded
        // (not lost).
        let n = fs.blocks.len();
        fs.discard_above(base, n);
        fs.report.lost.retain_mut(|l| {
            if *l.seqs.start() > base {
                return false;
            }
            l.seqs = *l.seqs.start()..=(*l.seqs.end()).min(base);
            true
        });
    }
    let prev_end = fs.blocks.back().map(|b| b.base + b.slots.len() as u64);
    let mut lost = Vec::new();
    // Sequences the previous block (or a destroyed one after it) should have held but
    // does not. Without any previous block, a destroyed oldest block is assumed to have
    // started at sequence 1.
    let p = prev_end.or(destroyed.map(|_| 0));
    if let Some(p) = p {
        let claimed = match scan.header {
            Some((_, prev, _)) => prev.min(base),
            None if !prev_sealed || destroyed.is_some() => base,
            None => p,
        };
        if claimed > p {
            match (destroyed, fs.blocks.back_mut()) {
                (None, Some(pb)) => {
                    let to = (claimed - pb.base) as usize;
                    fs.slot_count += (to - pb.slots.len()) as u64;
                    pb.slots.resize(to, Default::default());
                    push_lost(&mut lost, pb.index, p + 1..=claimed);
                }
                (d, _) => push_lost(&mut lost, d.unwrap_or(index), p + 1..=claimed),
            }
        }
    }
    fs.last_seq = fs.last_seq.max(base);
    let sealed = !is_last || scan.seal.is_some() || scan.header.is_none();
    let recs = scan.good_recs.max(1);
    fs.blocks.push_back(Block { index, path, base, slots: Vec::new(), live: 0, len: scan.len, recs, sealed });
    let bi = fs.blocks.len() - 1;
    let fill = |fs: &mut FileStore, lost: &mut Vec<LostRange>, upto: usize| {
        let b = fs.blocks.back_mut().expect("this block");
        if b.slots.len() < upto {
            push_lost(lost, index, b.base + 1 + b.slots.len() as u64..=b.base + upto as u64);
            let grow = (upto - b.slots.len()) as u64;
            b.slots.resize(upto, Default::default());
            fs.slot_count += grow;
        }
    };
    for ev in scan.events {
        match ev {
            Event::Msg { off, len, slot, seq, subject } => {
                fill(fs, &mut lost, slot as usize);
                fs.insert_msg(bi, seq, off, len, &subject);
                fs.last_seq = fs.last_seq.max(seq);
            }
            Event::Lost { slot, .. } => fill(fs, &mut lost, slot as usize + 1),
            Event::Delete { from, to, slots, .. } => {
                // Messages before the delete whose records are gone are lost, not unborn.
                fill(fs, &mut lost, slots as usize);
                fs.delete_range_mem(from, to);
            }
        }
    }
    if let Some((_, slots)) = scan.seal {
        fill(fs, &mut lost, slots as usize);
    }
    let b = fs.blocks.back().expect("this block");
    fs.last_seq = fs.last_seq.max(b.base + b.slots.len() as u64);
    fs.report.lost.extend(lost);
    let tail_damaged = scan.damaged.last().is_some_and(|d| d.0 + d.1 == scan.len);
    fs.report.damaged.extend(scan.damaged.into_iter().map(|(offset, len, unreadable_records)| DamagedRegion {
        block: index,
        offset,
        len,
        unreadable_records,
    }));
    if !is_last && scan.seal.is_none() && !tail_damaged {
        // A rolled block always ends with a seal: its end is missing.
        fs.report.damaged.push(DamagedRegion { block: index, offset: scan.len, len: 0, unreadable_records: None });
    }
    Ok(true)
}
