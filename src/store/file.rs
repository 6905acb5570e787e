//! The base file of the embedded store: every product and its vectors as of the last
//! compaction, checksummed.
//!
//! # Format (`DIR/index.vitrina`, version 2)
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `VITRINA\0` |
//! | 8..12 | format version, u32 little-endian |
//! | 12..16 | CRC-32 of the header bytes |
//! | 16..24 | header length `h`, u64 little-endian |
//! | 24..24+h | header, UTF-8 JSON: store meta, the log generation that follows this base, products (with content hashes), vector blocks with their offsets and CRC-32 |
//! | padding | zeros up to the next multiple of 64 |
//! | blocks | each vector kind as `count x dim` f32 little-endian, row-major, 64-byte aligned |
//!
//! A base file is never changed once written: a new one is written to a temporary file,
//! synced, and renamed over the old (a reader holds the old one or the new one, never
//! half of each). It is read into memory rather than mapped, so even a file replaced in
//! place by another tool (`cp` over it) cannot fault a running server. Every byte is
//! checked on open: a truncated or damaged file is refused with its name.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::ann::{AnnParams, AnnPolicy, Graph, TUNING_QUERIES};
use super::snapshot::Segment;
use super::{StoreMeta, StoredProduct, VectorKind};

const MAGIC: &[u8; 8] = b"VITRINA\0";
const VERSION: u32 = 2;
const ALIGN: usize = 64;
/// The base file's name inside the store folder.
pub const FILE_NAME: &str = "index.vitrina";
/// Prefix of temporary files; leftovers of an interrupted write are removed on open.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Block {
    kind: VectorKind,
    offset: u64,
    crc32: u32,
}

/// An ANN graph file beside the base file, with its checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GraphFile {
    pub kind: VectorKind,
    pub basename: String,
    pub params: AnnParams,
    /// CRC-32 of each of the graph's files (see [`GraphFile::files`]).
    pub crc32: Vec<u32>,
    #[serde(default)]
    pub format: GraphFormat,
    /// The ef_search unfiltered searches use, tuned when the graph was built
    /// ([`Graph::tune_ef_search`]; absent in graphs of older vitrinas: `params.ef_search`).
    #[serde(default)]
    pub tuned_ef_search: Option<usize>,
}

/// Who wrote a graph's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GraphFormat {
    /// hnsw_rs's two dump files (vitrina before it built its own graphs): no longer
    /// read; such a store searches exactly until its next compaction rebuilds them.
    #[default]
    HnswRs,
    /// One file in the format of [`super::ann`].
    Vitrina1,
}

impl GraphFile {
    /// Whether this vitrina reads the graph (an older one's is searched exactly until
    /// the next compaction rebuilds it).
    pub fn is_read(&self) -> bool {
        self.format == GraphFormat::Vitrina1
    }

    /// The graph's files in the store folder.
    pub fn files(&self) -> Vec<String> {
        match self.format {
            GraphFormat::HnswRs => vec![
                format!("{}.hnsw.graph", self.basename),
                format!("{}.hnsw.data", self.basename),
            ],
            GraphFormat::Vitrina1 => vec![format!("{}.graph", self.basename)],
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    meta: StoreMeta,
    /// The write-ahead log that holds the changes made after this base.
    wal_generation: u64,
    #[serde(default)]
    ann: AnnPolicy,
    #[serde(default)]
    graphs: Vec<GraphFile>,
    products: Vec<StoredProduct>,
    blocks: Vec<Block>,
}

pub(crate) fn base_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Makes a rename or a new file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync folder {}", dir.display()))
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Builds and writes one graph per vector kind of `segment`, for base `generation`, and
/// gives the segment the graphs, so the writer's own searches use them at once.
pub(crate) fn write_graphs(
    dir: &Path,
    meta: &StoreMeta,
    segment: &mut Segment,
    generation: u64,
    params: AnnParams,
) -> Result<Vec<GraphFile>> {
    let mut out = Vec::new();
    // Every graph is tuned with products' title vectors, the queries shoppers type, each
    // product left out of its own answers (a store without text vectors: its own kind's).
    let queries = segment
        .vectors
        .get(&VectorKind::Text)
        .or_else(|| meta.kinds.first().and_then(|k| segment.vectors.get(k)));
    let tuning: Vec<(usize, &[f32])> = queries.map_or(Vec::new(), |vectors| {
        let rows = vectors.len() / meta.dim.max(1);
        let step = rows.div_ceil(TUNING_QUERIES).max(1);
        (0..rows)
            .step_by(step)
            .map(|r| (r, &vectors[r * meta.dim..(r + 1) * meta.dim]))
            .collect()
    });
    for &kind in &meta.kinds {
        let vectors = &segment.vectors[&kind];
        let mut graph = Graph::build(vectors, meta.dim, params)?;
        let tuned = graph.tune_ef_search(vectors, meta.dim, &tuning);
        graph.tuned_ef_search = Some(tuned);
        let file = GraphFile {
            kind,
            basename: format!("ann-{}-{generation:06}", format!("{kind:?}").to_lowercase()),
            params,
            crc32: Vec::new(),
            format: GraphFormat::Vitrina1,
            tuned_ef_search: Some(tuned),
        };
        let bytes = graph.to_bytes();
        let name = &file.files()[0];
        // Written whole under a temporary name, then renamed: the base file that names it
        // is renamed into place after, so no reader ever sees half a graph.
        let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, dir.join(name)));
        written
            .with_context(|| format!("cannot write the ANN graph {}", dir.join(name).display()))?;
        segment.ann.insert(kind, std::sync::Arc::new(graph));
        out.push(GraphFile {
            crc32: vec![crc32fast::hash(&bytes)],
            ..file
        });
    }
    Ok(out)
}

/// What a base file holds besides products and vectors.
pub(crate) struct Extras<'a> {
    pub ann: AnnPolicy,
    pub graphs: &'a [GraphFile],
}

/// Writes a base file atomically (temp file, sync, rename, sync folder); returns its size.
pub(crate) fn write(
    dir: &Path,
    meta: &StoreMeta,
    segment: &Segment,
    generation: u64,
    extras: Extras,
) -> Result<u64> {
    let rows = segment.products.len();
    let block_bytes = rows * meta.dim * 4;
    let mut header = Header {
        meta: meta.clone(),
        wal_generation: generation,
        ann: extras.ann,
        graphs: extras.graphs.to_vec(),
        products: segment.products.clone(),
        blocks: meta
            .kinds
            .iter()
            .map(|&kind| Block {
                kind,
                offset: u64::MAX,
                crc32: u32::MAX,
            })
            .collect(),
    };
    for block in &mut header.blocks {
        let v = &segment.vectors[&block.kind];
        ensure!(v.len() == rows * meta.dim, "{:?} block size", block.kind);
        block.crc32 = crc32fast::hash(bytemuck::cast_slice(v));
    }
    // The header's length depends on the offsets it records, so lay it out with
    // placeholder offsets of full width first, then fill in the real ones.
    let probe = serde_json::to_vec(&header)?.len();
    let first = align(24 + probe);
    for (i, block) in header.blocks.iter_mut().enumerate() {
        block.offset = (first + i * align(block_bytes)) as u64;
    }
    let mut json = serde_json::to_vec(&header)?;
    // Real numbers print no wider than the placeholders, so pad back to the probed length.
    json.resize(probe, b' ');

    let path = base_path(dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let tmp_name = tmp.path().display().to_string();
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&crc32fast::hash(&json).to_le_bytes())?;
        w.write_all(&(json.len() as u64).to_le_bytes())?;
        w.write_all(&json)?;
        let mut written = 24 + json.len();
        for block in &header.blocks {
            let pad = align(written) - written;
            w.write_all(&vec![0u8; pad])?;
            w.write_all(bytemuck::cast_slice(&segment.vectors[&block.kind]))?;
            written += pad + block_bytes;
        }
        w.flush()
            .with_context(|| format!("cannot write {tmp_name}"))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", tmp.path().display()))?;
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    sync_dir(dir)?;
    Ok(std::fs::metadata(&path)?.len())
}

/// What a base file holds.
pub(crate) struct Base {
    pub meta: StoreMeta,
    pub wal_generation: u64,
    pub ann: AnnPolicy,
    pub graphs: Vec<GraphFile>,
    pub segment: Segment,
    pub bytes: u64,
}

/// Reads and checks a base file.
pub(crate) fn read(dir: &Path) -> Result<Base> {
    let path = base_path(dir);
    let mut file = File::open(&path).with_context(|| {
        format!(
            "no index at {} (build one with `vitrina index --index {}`)",
            path.display(),
            dir.display()
        )
    })?;
    let file_len = file.metadata()?.len();
    let bad = |what: String| {
        anyhow::anyhow!(
            "{} is damaged: {what}; restore it from a backup or rebuild it with `vitrina index`",
            path.display()
        )
    };
    let mut prelude = [0u8; 24];
    if file.read_exact(&mut prelude).is_err() || &prelude[..8] != MAGIC {
        bail!("{} is not a vitrina index (wrong magic)", path.display());
    }
    let version = u32::from_le_bytes(prelude[8..12].try_into().unwrap());
    if version != VERSION {
        bail!(
            "{} has format version {version}; this vitrina reads version {VERSION}: \
             rebuild it with `vitrina index` into a new folder",
            path.display()
        );
    }
    let crc = u32::from_le_bytes(prelude[12..16].try_into().unwrap());
    let h = u64::from_le_bytes(prelude[16..24].try_into().unwrap());
    if h > file_len.saturating_sub(24) {
        return Err(bad(format!(
            "the header claims {h} bytes but the file has {file_len} (truncated?)"
        )));
    }
    let mut json = vec![0u8; h as usize];
    file.read_exact(&mut json)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    if crc32fast::hash(&json) != crc {
        return Err(bad("the header fails its checksum".into()));
    }
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| bad(format!("unreadable header: {e}")))?;
    let meta = header.meta;
    let kinds: Vec<VectorKind> = header.blocks.iter().map(|b| b.kind).collect();
    if kinds != meta.kinds {
        return Err(bad(format!(
            "blocks {kinds:?} do not match the kinds {:?}",
            meta.kinds
        )));
    }
    let rows = header.products.len();
    let floats = rows
        .checked_mul(meta.dim)
        .filter(|n| n.checked_mul(4).is_some_and(|b| b as u64 <= file_len))
        .ok_or_else(|| {
            bad(format!(
                "{rows} products x {} dims exceed the file",
                meta.dim
            ))
        })?;
    let mut vectors = BTreeMap::new();
    let mut blocks = header.blocks.clone();
    blocks.sort_by_key(|b| b.offset);
    for block in &blocks {
        let end = block.offset.checked_add(floats as u64 * 4);
        if block.offset % ALIGN as u64 != 0 || end.is_none_or(|e| e > file_len) {
            return Err(bad(format!(
                "the {:?} vectors lie outside the file (truncated?)",
                block.kind
            )));
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(block.offset))?;
        let mut v = vec![0f32; floats];
        file.read_exact(bytemuck::cast_slice_mut(&mut v))
            .map_err(|e| bad(format!("cannot read the {:?} vectors: {e}", block.kind)))?;
        if crc32fast::hash(bytemuck::cast_slice(&v)) != block.crc32 {
            return Err(bad(format!(
                "the {:?} vectors fail their checksum",
                block.kind
            )));
        }
        vectors.insert(block.kind, v);
    }
    let dim = meta.dim;
    let mut segment = Segment::new(header.products, vectors, dim);
    for g in &header.graphs {
        if !g.is_read() {
            continue;
        }
        let name = &g.files()[0];
        let file = dir.join(name);
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "the index's ANN graph {} is missing: rebuild it with `vitrina index --index {}`",
                file.display(),
                dir.display()
            )
        })?;
        if g.crc32.first() != Some(&crc32fast::hash(&bytes)) {
            bail!(
                "{} is damaged: it fails its checksum; rebuild the graphs with `vitrina index --index {}`",
                file.display(),
                dir.display()
            );
        }
        let mut graph = Graph::from_bytes(&bytes, segment.products.len(), g.params)
            .with_context(|| format!("cannot read the ANN graph {}", file.display()))?;
        graph.tuned_ef_search = g.tuned_ef_search;
        segment.ann.insert(g.kind, std::sync::Arc::new(graph));
    }
    Ok(Base {
        meta,
        wal_generation: header.wal_generation,
        ann: header.ann,
        graphs: header.graphs,
        segment,
        bytes: file_len,
    })
}
