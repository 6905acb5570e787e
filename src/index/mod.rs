//! The vector index: every product's metadata and its vectors, in one file.
//!
//! # On-disk format (`DIR/index.vitrina`, version 1)
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `VITRINA\0` |
//! | 8..12 | format version, u32 little-endian |
//! | 12..16 | reserved, zero |
//! | 16..24 | header length `h`, u64 little-endian |
//! | 24..24+h | header, UTF-8 JSON ([`Header`]: model, catalogue, products, vector blocks) |
//! | padding | zeros up to the next multiple of 64 |
//! | blocks | each vector kind as `count x dim` f32 little-endian, row-major, 64-byte aligned |
//!
//! One file makes the write atomic (temp file + rename: a reader sees the old index or
//! the new one, never half of each) and the load one `mmap`: the vectors are used in
//! place, so opening a 44k-product index costs the JSON parse and nothing per vector.

mod topk;

pub use topk::{top_k, Hit};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::Product;

const MAGIC: &[u8; 8] = b"VITRINA\0";
const VERSION: u32 = 1;
const ALIGN: usize = 64;
/// The index file's name inside the index folder.
pub const FILE_NAME: &str = "index.vitrina";

/// Which vector of a product a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorKind {
    /// The product's text (title / description).
    Text,
    /// The product's image.
    Image,
    /// normalise(normalise(text) + normalise(image)).
    Average,
}

/// A product as stored: catalogue fields plus what indexing learned about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredProduct {
    #[serde(flatten)]
    pub product: Product,
    /// False when the image was missing or unreadable: image mode leaves the product
    /// out, and its image vector is borrowed from the product with the closest text.
    #[serde(default)]
    pub has_image: bool,
}

/// Where one vector kind lives in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Block {
    pub kind: VectorKind,
    /// Byte offset from the start of the file.
    pub offset: u64,
}

/// Everything about the index except the vectors themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// The model that made the vectors; queries must be embedded by the same one.
    pub model: String,
    /// Where that model was loaded from, for models outside the binary (ONNX exports),
    /// so `search` and `serve` load the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    pub dim: usize,
    pub catalog: String,
    pub split: String,
    pub products: Vec<StoredProduct>,
    #[serde(default)]
    pub blocks: Vec<Block>,
}

enum Vectors {
    Owned(BTreeMap<VectorKind, Vec<f32>>),
    Mapped {
        map: memmap2::Mmap,
        offsets: BTreeMap<VectorKind, usize>,
    },
}

/// An index in memory (just built) or mapped from disk.
pub struct Index {
    pub header: Header,
    vectors: Vectors,
}

impl Index {
    /// An index from freshly computed vectors; each must be `products x dim` long.
    pub fn new(mut header: Header, vectors: BTreeMap<VectorKind, Vec<f32>>) -> Result<Self> {
        let want = header.products.len() * header.dim;
        for (kind, v) in &vectors {
            ensure!(
                v.len() == want,
                "{kind:?} vectors: {} floats, expected {want}",
                v.len()
            );
        }
        header.blocks.clear();
        Ok(Index {
            header,
            vectors: Vectors::Owned(vectors),
        })
    }

    pub fn len(&self) -> usize {
        self.header.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.products.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.header.dim
    }

    pub fn product(&self, i: usize) -> &StoredProduct {
        &self.header.products[i]
    }

    /// The kinds of vector this index holds.
    pub fn kinds(&self) -> Vec<VectorKind> {
        match &self.vectors {
            Vectors::Owned(m) => m.keys().copied().collect(),
            Vectors::Mapped { offsets, .. } => offsets.keys().copied().collect(),
        }
    }

    /// All vectors of one kind, row-major, or `None` if the index lacks that kind.
    pub fn vectors(&self, kind: VectorKind) -> Option<&[f32]> {
        let n = self.len() * self.dim();
        match &self.vectors {
            Vectors::Owned(m) => m.get(&kind).map(Vec::as_slice),
            Vectors::Mapped { map, offsets } => offsets
                .get(&kind)
                .map(|&off| bytemuck::cast_slice(&map[off..off + n * 4])),
        }
    }

    /// One product's vector of one kind.
    pub fn vector(&self, kind: VectorKind, i: usize) -> Option<&[f32]> {
        let d = self.dim();
        self.vectors(kind).map(|v| &v[i * d..(i + 1) * d])
    }

    /// Writes the index to `dir/index.vitrina` atomically; returns the file's size.
    pub fn save(&self, dir: &Path) -> Result<u64> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create index folder {}", dir.display()))?;
        let kinds = self.kinds();
        let mut header = self.header.clone();
        // The header's length depends on the offsets it records, so lay it out with
        // placeholder offsets of full width first, then fill in the real ones.
        header.blocks = kinds
            .iter()
            .map(|&kind| Block {
                kind,
                offset: u64::MAX,
            })
            .collect();
        let probe = serde_json::to_vec(&header)?.len();
        let first = align(24 + probe);
        let block_bytes = self.len() * self.dim() * 4;
        for (i, block) in header.blocks.iter_mut().enumerate() {
            block.offset = (first + i * align(block_bytes)) as u64;
        }
        let mut json = serde_json::to_vec(&header)?;
        // Real offsets print no wider than u64::MAX, so pad back to the probed length.
        json.resize(probe, b' ');

        let path = dir.join(FILE_NAME);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            w.write_all(MAGIC)?;
            w.write_all(&VERSION.to_le_bytes())?;
            w.write_all(&0u32.to_le_bytes())?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            let mut written = 24 + json.len();
            for &kind in &kinds {
                let pad = align(written) - written;
                w.write_all(&vec![0u8; pad])?;
                let v = self.vectors(kind).expect("kind listed");
                w.write_all(bytemuck::cast_slice(v))?;
                written += pad + block_bytes;
            }
            w.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(std::fs::metadata(&path)?.len())
    }

    /// Maps `dir/index.vitrina`.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = index_file(dir);
        let file = std::fs::File::open(&path).with_context(|| {
            format!(
                "no index at {} (build one with `vitrina index --index {}`)",
                path.display(),
                dir.display()
            )
        })?;
        // SAFETY: the file is only read, and writers replace it by rename rather than
        // editing it in place, so the mapping never changes under us.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        let bad = |what: &str| format!("{} is not a vitrina index: {what}", path.display());
        ensure!(map.len() >= 24 && &map[..8] == MAGIC, bad("wrong magic"));
        let version = u32::from_le_bytes(map[8..12].try_into().unwrap());
        if version != VERSION {
            bail!(
                "{} has format version {version}; this vitrina reads version {VERSION}: rebuild it with `vitrina index`",
                path.display()
            );
        }
        let h = u64::from_le_bytes(map[16..24].try_into().unwrap()) as usize;
        ensure!(24 + h <= map.len(), bad("truncated header"));
        let header: Header =
            serde_json::from_slice(&map[24..24 + h]).with_context(|| bad("corrupt header"))?;
        let bytes = header.products.len() * header.dim * 4;
        let mut offsets = BTreeMap::new();
        for block in &header.blocks {
            let off = block.offset as usize;
            ensure!(
                off.is_multiple_of(ALIGN) && off + bytes <= map.len(),
                bad("vector block outside the file (truncated?)")
            );
            offsets.insert(block.kind, off);
        }
        Ok(Index {
            header,
            vectors: Vectors::Mapped { map, offsets },
        })
    }
}

/// The index file inside an index folder.
pub fn index_file(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str) -> StoredProduct {
        StoredProduct {
            product: Product {
                id: id.into(),
                text: format!("title {id}"),
                broad: Some("B".into()),
                fine: None,
                attributes: Default::default(),
                image: None,
            },
            has_image: id == "a",
        }
    }

    #[test]
    fn save_then_open_round_trips_vectors_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            model: "m".into(),
            model_dir: None,
            dim: 3,
            catalog: "c".into(),
            split: "all".into(),
            products: vec![product("a"), product("b")],
            blocks: vec![],
        };
        let mut vectors = BTreeMap::new();
        vectors.insert(VectorKind::Text, vec![1., 0., 0., 0., 1., 0.]);
        vectors.insert(VectorKind::Image, vec![0., 0., 1., 0., 0., 0.]);
        let index = Index::new(header, vectors).unwrap();
        index.save(dir.path()).unwrap();
        let loaded = Index::open(dir.path()).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.header.products, index.header.products);
        assert_eq!(loaded.kinds(), [VectorKind::Text, VectorKind::Image]);
        assert_eq!(loaded.vector(VectorKind::Text, 1).unwrap(), [0., 1., 0.]);
        assert_eq!(loaded.vector(VectorKind::Image, 0).unwrap(), [0., 0., 1.]);
        assert!(loaded.vectors(VectorKind::Average).is_none());
    }

    #[test]
    fn truncated_or_foreign_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            model: "m".into(),
            model_dir: None,
            dim: 2,
            catalog: "c".into(),
            split: "all".into(),
            products: vec![product("a")],
            blocks: vec![],
        };
        let mut vectors = BTreeMap::new();
        vectors.insert(VectorKind::Text, vec![1., 0.]);
        Index::new(header, vectors)
            .unwrap()
            .save(dir.path())
            .unwrap();
        let path = index_file(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = Index::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("truncated") && err.contains("index.vitrina"),
            "{err}"
        );
        std::fs::write(&path, b"hello world, this is not an index").unwrap();
        assert!(Index::open(dir.path())
            .err()
            .unwrap()
            .to_string()
            .contains("magic"));
        let missing = Index::open(&dir.path().join("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("vitrina index --index"), "{missing}");
    }
}
