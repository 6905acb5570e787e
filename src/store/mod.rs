//! The product store: every product's fields and vectors, known by product id.
//!
//! The rest of the code sees two narrow traits, in the manner of tantivy's `Directory`:
//! [`Store`] (read: top k of a vector space among candidates, a product's vectors, a
//! product) and [`StoreWriter`] (write: atomic batches of upserts and deletes). Rows,
//! blocks and files stay inside this module. Two implementations live here:
//!
//! - [`MemoryStore`]: everything in RAM (evaluation without a folder, tests);
//! - [`embedded`]: a folder on disk that follows a live catalogue: a checksummed base
//!   file plus a write-ahead log, crash-safe, readable while another process writes.
//!
//! - [`postgres`]: a PostgreSQL table with pgvector columns, for shops that scale out
//!   on the database they already run.
//!
//! [`Location`] says which one an `--index` names (a folder or a `postgres://` URL).

pub mod ann;
pub mod embedded;
mod file;
pub mod filter;
mod location;
pub mod postgres;
pub mod scan;
mod snapshot;
pub mod text_index;
mod wal;

pub use ann::{AnnMode, AnnParams, AnnPolicy, Method};
pub use embedded::{EmbeddedWriter, LiveStore};
pub use filter::{Facets, Filter};
pub use location::{Live, Location};
pub use snapshot::Snapshot;
pub use text_index::{TextIndex, TextQuery};

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::Product;

/// Which vector of a product.
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

/// What a query vector is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Space {
    /// One stored vector kind.
    Kind(VectorKind),
    /// `normalise(alpha * text + (1 - alpha) * image)` per product, scored from the
    /// stored text and image vectors without materialising the fused ones:
    /// `(alpha q.t + (1 - alpha) q.i) / |alpha t + (1 - alpha) i|`, where the norm needs
    /// only `t.i`, which the store keeps per product.
    Blend { alpha: f32 },
}

/// A product as stored: catalogue fields plus what indexing learned about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoredProduct {
    #[serde(flatten)]
    pub product: Product,
    /// False when the image was missing or unreadable: image mode leaves the product
    /// out, and its image vector is borrowed from the product with the closest text.
    #[serde(default)]
    pub has_image: bool,
    /// Hash of everything the vectors were computed from (text, categories, attributes,
    /// image bytes): a sync re-embeds a product only when this changes.
    #[serde(default)]
    pub content_hash: u64,
}

impl StoredProduct {
    pub fn id(&self) -> &str {
        &self.product.id
    }
}

/// One product ready to be written: its fields and one vector per kind of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub product: StoredProduct,
    pub vectors: BTreeMap<VectorKind, Vec<f32>>,
}

/// What every product of a store shares: the model that made its vectors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreMeta {
    /// The model that made the vectors; queries must be embedded by the same one.
    pub model: String,
    /// Where that model was loaded from, for models outside the binary (ONNX exports),
    /// so `search` and `serve` load the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    pub dim: usize,
    /// The vector kinds every product has (text; image and average with an image tower).
    pub kinds: Vec<VectorKind>,
    /// The catalogue's name (for reports).
    pub catalog: String,
}

impl StoreMeta {
    /// Refuses to mix models in one store: `place` names the store, `remedy` says what
    /// to do instead.
    pub fn check_same_model(&self, wanted: &StoreMeta, place: &str, remedy: &str) -> Result<()> {
        if self.model != wanted.model || self.dim != wanted.dim || self.kinds != wanted.kinds {
            bail!(
                "{place} holds products embedded by model `{}` ({}-d, {:?}); this run uses `{}` ({}-d, {:?}): {remedy}",
                self.model,
                self.dim,
                self.kinds,
                wanted.model,
                wanted.dim,
                wanted.kinds
            );
        }
        Ok(())
    }

    /// Checks a query vector's length against the store's vectors.
    pub fn check_query(&self, query: &[f32]) -> Result<()> {
        ensure!(
            query.len() == self.dim,
            "the query vector has {} values; this store's vectors have {}",
            query.len(),
            self.dim
        );
        Ok(())
    }

    /// Checks that an entry fits this store: known kinds, right length, finite values
    /// (a NaN would rank first or poison every score it touches).
    pub fn check(&self, entry: &Entry) -> Result<()> {
        let id = entry.product.id();
        ensure!(!id.trim().is_empty(), "a product id is empty");
        let kinds: Vec<VectorKind> = entry.vectors.keys().copied().collect();
        ensure!(
            kinds == self.kinds,
            "product {id:?}: vectors {kinds:?}, but this store holds {:?}",
            self.kinds
        );
        for (kind, v) in &entry.vectors {
            ensure!(
                v.len() == self.dim,
                "product {id:?}: {kind:?} vector has {} values, the store's model `{}` makes {}",
                v.len(),
                self.model,
                self.dim
            );
            if v.iter().any(|x| !x.is_finite()) {
                bail!("product {id:?}: {kind:?} vector holds a non-finite value");
            }
        }
        Ok(())
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// Best first; equal scores in id order.
pub fn sort_by_score_then_id(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

/// Which products a search may return.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidates<'a> {
    /// Leave these products out (evaluation excludes the query's own; "more like this"
    /// the product itself).
    pub exclude: &'a [&'a str],
    /// Only products with a usable image (image mode).
    pub with_image_only: bool,
    /// Only products that pass this filter.
    pub filter: Option<&'a Filter>,
    /// Graph or full scan (how to find the best of these candidates).
    pub method: Method,
    /// Candidates explored per graph search (default: the store's setting).
    pub ef_search: Option<usize>,
}

impl Candidates<'_> {
    /// Whether some products are left out (a graph walk must then skip them, and may
    /// come back short).
    pub fn restricted(&self) -> bool {
        self.filter.is_some() || self.with_image_only || !self.exclude.is_empty()
    }

    pub fn admits(&self, p: &StoredProduct) -> bool {
        (!self.with_image_only || p.has_image)
            && !self.exclude.contains(&p.id())
            && self.filter.is_none_or(|f| f.matches(p))
    }
}

/// What a store knows about itself, for `vitrina info` and `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    pub products: usize,
    pub products_with_image: usize,
    pub model: String,
    pub dim: usize,
    pub kinds: Vec<VectorKind>,
    pub catalog: String,
    /// "exact", or the graphs and their parameters.
    pub search: String,
    pub bytes_on_disk: Option<u64>,
    pub location: String,
}

/// The read side of a store: everything search, eval and the server ask of it.
pub trait Store: Send + Sync {
    fn meta(&self) -> &StoreMeta;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `k` best products for `query` in `space`, among `candidates`, best first
    /// (equal scores in id order, so every store lists duplicates alike and
    /// diversification, which clusters this list, sees the same input).
    fn top_k(
        &self,
        space: Space,
        query: &[f32],
        k: usize,
        candidates: &Candidates,
    ) -> Result<Vec<Hit>>;
    /// One kind of vector for each id (`None` for an unknown id).
    fn vectors(&self, kind: VectorKind, ids: &[&str]) -> Result<Vec<Option<Vec<f32>>>>;
    fn product(&self, id: &str) -> Result<Option<StoredProduct>>;
    /// Every product, in a stable order (evaluation, the keyword index, sync).
    fn products(&self) -> Result<Vec<StoredProduct>>;
    /// The fields products have and their common values (filters, the page's chips).
    fn facets(&self) -> Result<std::sync::Arc<Facets>>;
    /// The full-text (BM25) index of the products, for keyword and hybrid search.
    fn text_index(&self) -> Result<std::sync::Arc<TextIndex>>;
    fn info(&self) -> StoreInfo;
}

/// The write side. Each call is one atomic batch: all of it or none of it is applied,
/// and once it returns, it survives a crash.
pub trait StoreWriter {
    /// Adds or replaces products by id.
    fn upsert(&mut self, entries: Vec<Entry>) -> Result<()>;
    /// Removes products; returns the ids that were present.
    fn delete(&mut self, ids: &[String]) -> Result<Vec<String>>;
    /// The store as written so far.
    fn current(&self) -> &dyn Store;
    /// Ends a writing session (the embedded store folds its log into the base file when
    /// that pays off).
    fn finish(&mut self) -> Result<()>;
    /// When the store builds ANN graphs (HNSW indexes), and with which parameters.
    fn ann_policy(&self) -> AnnPolicy {
        AnnPolicy::default()
    }
    /// Changes that setting; it takes effect at the next [`StoreWriter::optimize`].
    fn set_ann(&mut self, _policy: AnnPolicy) -> Result<()> {
        Ok(())
    }
    /// Brings the store into its best shape for search after a bulk load: the embedded
    /// store folds its log into a new base file (with graphs per the policy), PostgreSQL
    /// builds or drops HNSW indexes and refreshes the planner's statistics.
    fn optimize(&mut self) -> Result<()> {
        Ok(())
    }
    /// What opening the store found and repaired (an incomplete last write, leftovers).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The store cannot be reached right now (a database server down or restarting): the
/// request may succeed later, so the server answers 503 rather than 500.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Copies every product with its vectors from one store to another (between the
/// embedded store and PostgreSQL, either way) without re-embedding; returns how many.
pub fn copy(from: &dyn Store, to: &mut dyn StoreWriter, batch: usize) -> Result<usize> {
    let products = from.products()?;
    let kinds = from.meta().kinds.clone();
    for chunk in products.chunks(batch.max(1)) {
        let ids: Vec<&str> = chunk.iter().map(|p| p.id()).collect();
        let mut columns = Vec::new();
        for kind in &kinds {
            columns.push(from.vectors(*kind, &ids)?);
        }
        let mut entries = Vec::with_capacity(chunk.len());
        for (row, product) in chunk.iter().enumerate() {
            let mut vectors = BTreeMap::new();
            for (kind, column) in kinds.iter().zip(&mut columns) {
                let v = column[row].take().ok_or_else(|| {
                    anyhow::anyhow!("product {:?} vanished during the copy", product.id())
                })?;
                vectors.insert(*kind, v);
            }
            entries.push(Entry {
                product: product.clone(),
                vectors,
            });
        }
        to.upsert(entries)?;
    }
    Ok(products.len())
}

/// A store in RAM: the same code paths as the embedded store, without files.
pub struct MemoryStore {
    snapshot: Snapshot,
}

impl MemoryStore {
    pub fn new(meta: StoreMeta) -> Self {
        MemoryStore {
            snapshot: Snapshot::empty(meta),
        }
    }

    pub fn into_snapshot(self) -> Snapshot {
        self.snapshot
    }
}

impl StoreWriter for MemoryStore {
    fn upsert(&mut self, entries: Vec<Entry>) -> Result<()> {
        let op = wal::Op::upsert(self.snapshot.meta(), entries)?;
        self.snapshot.apply(&[op]);
        Ok(())
    }

    fn delete(&mut self, ids: &[String]) -> Result<Vec<String>> {
        let present = self.snapshot.present(ids);
        self.snapshot.apply(&[wal::Op::Delete(present.clone())]);
        Ok(present)
    }

    fn current(&self) -> &dyn Store {
        &self.snapshot
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
