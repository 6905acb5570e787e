//! The write-ahead log of the embedded store: every acknowledged write is a record here,
//! synced to disk before the write returns, until compaction folds the log into a new
//! base file.
//!
//! # Format (`DIR/wal-NNNNNN.log`)
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `VTRNWAL\0` |
//! | 8..16 | generation `NNNNNN`, u64 little-endian (the base file names the log it follows) |
//! | then, per record | payload length u32, CRC-32 of the payload u32, payload |
//!
//! A payload is one operation, applied whole or not at all: `1`, JSON length u32, the
//! products as JSON, then each product's vectors (the store's kinds in order, f32
//! little-endian); or `2`, then the deleted ids as JSON.
//!
//! A crash can leave only the last record incomplete (appends are sequential and each
//! write is synced before it is acknowledged): an incomplete last record is dropped on
//! open. A bad checksum anywhere before the end is damage, and is refused.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use super::{Entry, StoreMeta, StoredProduct};

const MAGIC: &[u8; 8] = b"VTRNWAL\0";
pub(crate) const HEADER_LEN: u64 = 16;
/// Largest record accepted (a corrupt length must not make us allocate terabytes).
const MAX_RECORD: usize = 1 << 31;

/// One atomic change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Upsert(Vec<Entry>),
    Delete(Vec<String>),
}

impl Op {
    /// An upsert batch, checked against the store: right kinds and sizes, finite
    /// vectors, and each id at most once.
    pub fn upsert(meta: &StoreMeta, entries: Vec<Entry>) -> Result<Op> {
        let mut seen = std::collections::HashSet::new();
        for e in &entries {
            meta.check(e)?;
            ensure!(
                seen.insert(e.product.id()),
                "product {:?} appears twice in one batch",
                e.product.id()
            );
        }
        Ok(Op::Upsert(entries))
    }

    pub fn encode(&self, meta: &StoreMeta) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Op::Upsert(entries) => {
                out.push(1);
                let products: Vec<&StoredProduct> = entries.iter().map(|e| &e.product).collect();
                let json = serde_json::to_vec(&products)?;
                out.extend_from_slice(&(json.len() as u32).to_le_bytes());
                out.extend_from_slice(&json);
                for e in entries {
                    for kind in &meta.kinds {
                        out.extend_from_slice(bytemuck::cast_slice(&e.vectors[kind]));
                    }
                }
            }
            Op::Delete(ids) => {
                out.push(2);
                out.extend_from_slice(&serde_json::to_vec(ids)?);
            }
        }
        Ok(out)
    }

    pub fn decode(payload: &[u8], meta: &StoreMeta) -> Result<Op> {
        match payload.first() {
            Some(1) => {
                ensure!(payload.len() >= 5, "upsert record too short");
                let n = u32::from_le_bytes(payload[1..5].try_into().unwrap()) as usize;
                ensure!(
                    5 + n <= payload.len(),
                    "upsert record: JSON runs past the end"
                );
                let products: Vec<StoredProduct> =
                    serde_json::from_slice(&payload[5..5 + n]).context("upsert record JSON")?;
                let data = &payload[5 + n..];
                let per = meta.kinds.len() * meta.dim * 4;
                ensure!(
                    data.len() == products.len() * per,
                    "upsert record: {} vector bytes for {} products, expected {}",
                    data.len(),
                    products.len(),
                    products.len() * per
                );
                let mut entries = Vec::with_capacity(products.len());
                for (p, chunk) in products.into_iter().zip(data.chunks_exact(per.max(1))) {
                    let vectors = meta
                        .kinds
                        .iter()
                        .zip(chunk.chunks_exact(meta.dim * 4))
                        .map(|(&k, bytes)| (k, bytemuck::pod_collect_to_vec(bytes)))
                        .collect();
                    entries.push(Entry {
                        product: p,
                        vectors,
                    });
                }
                Op::upsert(meta, entries)
            }
            Some(2) => Ok(Op::Delete(
                serde_json::from_slice(&payload[1..]).context("delete record JSON")?,
            )),
            _ => bail!("unknown record type"),
        }
    }
}

pub(crate) fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:06}.log"))
}

/// Generation of a log file name, if it is one.
pub(crate) fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Creates an empty log (header synced) and returns it opened for appending.
pub(crate) fn create(dir: &Path, generation: u64) -> Result<File> {
    let path = path(dir, generation);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(MAGIC)?;
    file.write_all(&generation.to_le_bytes())?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    super::file::sync_dir(dir)?;
    Ok(file)
}

/// What reading a log found.
pub(crate) struct ReadLog {
    pub ops: Vec<Op>,
    /// Offset just past the last complete record.
    pub end: u64,
    /// An incomplete last record (a write cut short by a crash, or one being written
    /// right now by another process): its offset.
    pub incomplete_at: Option<u64>,
}

/// Reads the records from `offset` (0: from the start, checking the header) to the end.
pub(crate) fn read(path: &Path, offset: u64, generation: u64, meta: &StoreMeta) -> Result<ReadLog> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut start = offset;
    if offset == 0 {
        let mut header = [0u8; HEADER_LEN as usize];
        let n = read_up_to(&mut file, &mut header)?;
        ensure!(
            n == header.len() && &header[..8] == MAGIC,
            "{} is not a vitrina write-ahead log (bad header): the store is damaged; \
             rebuild it with `vitrina index`",
            path.display()
        );
        let g = u64::from_le_bytes(header[8..16].try_into().unwrap());
        ensure!(
            g == generation,
            "{} says generation {g} but its name says {generation}: the store is damaged",
            path.display()
        );
        start = HEADER_LEN;
    }
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut ops = Vec::new();
    let mut pos = 0usize;
    let mut incomplete_at = None;
    while pos < bytes.len() {
        let at = start + pos as u64;
        if bytes.len() - pos < 8 {
            incomplete_at = Some(at);
            break;
        }
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        let end = pos + 8 + len;
        if len > MAX_RECORD || end > bytes.len() {
            incomplete_at = Some(at);
            break;
        }
        let payload = &bytes[pos + 8..end];
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                // The last record: a torn write, never acknowledged.
                incomplete_at = Some(at);
                break;
            }
            bail!(
                "{}: the record at byte {at} fails its checksum (the file is damaged); \
                 restore the folder from a backup or rebuild it with `vitrina index`",
                path.display()
            );
        }
        let op = Op::decode(payload, meta)
            .with_context(|| format!("{}: the record at byte {at} is damaged", path.display()))?;
        ops.push(op);
        pos = end;
    }
    let end = incomplete_at.unwrap_or(start + bytes.len() as u64);
    Ok(ReadLog {
        ops,
        end,
        incomplete_at,
    })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// Appends one record and syncs it: when this returns, the record survives a crash.
pub(crate) fn append(file: &mut File, at: u64, payload: &[u8]) -> Result<u64> {
    ensure!(
        payload.len() <= MAX_RECORD,
        "one write batch is {} bytes; the limit is {MAX_RECORD}: write smaller batches",
        payload.len()
    );
    let mut record = Vec::with_capacity(payload.len() + 8);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    record.extend_from_slice(payload);
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&record)?;
    file.sync_data()?;
    Ok(at + record.len() as u64)
}
