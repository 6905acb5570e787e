//! Approximate nearest neighbours: an HNSW graph (Malkov & Yashunin) per vector kind over
//! the base segment, so a query visits a few thousand products instead of all of them.
//!
//! The graph is built with the hnsw_rs crate when the base file is written (the changes
//! since, in the log, are few and always scanned exactly), and dumped beside the base file
//! in hnsw_rs's own format; the base file records each dump's CRC-32, checked before the
//! dump is parsed, so a damaged graph is refused like any damaged file. A product deleted
//! or replaced since the graph was built is skipped during the graph search, as is any
//! product a filter leaves out: the filter is applied inside the graph search, and when it
//! leaves fewer than k products reachable the store falls back to an exact scan
//! (see [`super::snapshot`]).
//!
//! hnsw_rs over usearch: usearch's C++ core took 279 s to build cold on this 2-core
//! machine, hnsw_rs 86 s (both in an empty crate); both keep their own copy of the
//! vectors.

use std::path::Path;

use anyhow::{Context, Result};
use hnsw_rs::prelude::*;
use serde::{Deserialize, Serialize};

use super::scan::RowHit;

/// Graph parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnnParams {
    /// Links per node and layer (HNSW's M).
    pub m: usize,
    /// Candidates explored while inserting (ef_construction).
    pub ef_construction: usize,
    /// Candidates explored per query (ef_search); raised to k when k is larger.
    pub ef_search: usize,
}

impl Default for AnnParams {
    /// Chosen on 200,000 x 384 vectors (`vitrina bench --suite ann`): ef_search 256 is
    /// the first setting with recall@10 >= 0.99 (0.992, p50 1.9 ms; 128 gave 0.983).
    fn default() -> Self {
        AnnParams {
            m: 16,
            ef_construction: 200,
            ef_search: 256,
        }
    }
}

/// When a store builds graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AnnMode {
    /// Above [`AnnPolicy::threshold`] products.
    #[default]
    Auto,
    Always,
    Never,
}

/// Products above which `Auto` builds graphs: below it an exact scan answers in a few
/// milliseconds (44,446 x 384 floats: see the README's ANN table) and a graph would
/// only add build time to every compaction.
pub const DEFAULT_THRESHOLD: usize = 100_000;

/// A store's ANN settings, kept in its base file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnnPolicy {
    pub mode: AnnMode,
    pub threshold: usize,
    pub params: AnnParams,
}

impl Default for AnnPolicy {
    fn default() -> Self {
        AnnPolicy {
            mode: AnnMode::Auto,
            threshold: DEFAULT_THRESHOLD,
            params: AnnParams::default(),
        }
    }
}

impl AnnPolicy {
    /// Whether a base of `rows` products gets graphs.
    pub fn builds(&self, rows: usize) -> bool {
        match self.mode {
            AnnMode::Always => rows > 0,
            AnnMode::Never => false,
            AnnMode::Auto => rows >= self.threshold,
        }
    }
}

/// How a search is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The graph when the store has one for the space, else an exact scan.
    #[default]
    Auto,
    /// Always a full scan (evaluation: reproducible figures).
    Exact,
    /// The graph; an error if the store has none.
    Ann,
}

impl Method {
    /// `auto` (or empty), `exact` or `ann`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "auto" | "" => Ok(Method::Auto),
            "exact" => Ok(Method::Exact),
            "ann" => Ok(Method::Ann),
            other => anyhow::bail!("unknown method {other:?}: use auto, exact or ann"),
        }
    }
}

/// `1 - a.b` for unit vectors, clamped at 0. hnsw_rs's own `DistDot` asserts the
/// distance is never negative, which float rounding breaks for identical vectors (a
/// catalogue holds many identical photos); this one also uses the store's vectorised dot.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - super::scan::dot(a, b)).max(0.0)
    }
}

/// Layers of the graph (hnsw_rs's advice: 16 is plenty for any size here).
const MAX_LAYERS: usize = 16;

/// One HNSW graph over the rows of a matrix.
pub struct Graph {
    hnsw: Hnsw<'static, f32, UnitDot>,
    pub params: AnnParams,
}

impl Graph {
    /// Builds the graph over `vectors` (row-major, `dim` wide, unit length).
    pub fn build(vectors: &[f32], dim: usize, params: AnnParams) -> Graph {
        let rows = vectors.len() / dim.max(1);
        let hnsw = Hnsw::<f32, UnitDot>::new(
            params.m,
            rows.max(1),
            MAX_LAYERS,
            params.ef_construction,
            UnitDot,
        );
        let data: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).zip(0..rows).collect();
        hnsw.parallel_insert_slice(&data);
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        Graph { hnsw, params }
    }

    /// The best `k` rows for `query` among rows for which `keep` holds, best first; the
    /// score is the dot product. May return fewer than `k` when `keep` is selective.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<RowHit> {
        self.search_where(query, k, ef, Some(keep))
    }

    /// [`Graph::search`]; `None` keeps every row (hnsw_rs's faster unfiltered path).
    pub fn search_where(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let found = match keep {
            Some(keep) => {
                let filter = |id: &DataId| keep(*id);
                self.hnsw.search_filter(query, k, ef.max(k), Some(&filter))
            }
            None => self.hnsw.search(query, k, ef.max(k)),
        };
        found
            .into_iter()
            .map(|n| RowHit {
                row: n.d_id,
                score: 1.0 - n.distance,
            })
            .collect()
    }

    /// Dumps the graph into `dir` as `basename.hnsw.graph` and `basename.hnsw.data`;
    /// returns the basename hnsw_rs chose (it never overwrites a file).
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        self.hnsw
            .file_dump(dir, basename)
            .with_context(|| format!("cannot write the ANN graph {basename} in {}", dir.display()))
    }

    /// Loads a dumped graph (its files' checksums must have been checked).
    pub fn load(dir: &Path, basename: &str, params: AnnParams) -> Result<Graph> {
        // hnsw_rs ties a loaded graph's lifetime to its loader; the loader is a few
        // paths and flags, kept for the life of the process.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let mut hnsw: Hnsw<'static, f32, UnitDot> =
            io.load_hnsw::<f32, UnitDot>().with_context(|| {
                format!("cannot load the ANN graph {basename} in {}", dir.display())
            })?;
        hnsw.set_searching_mode(true);
        Ok(Graph { hnsw, params })
    }
}

/// The files of a dump.
pub fn dump_files(basename: &str) -> [String; 2] {
    [
        format!("{basename}.hnsw.graph"),
        format!("{basename}.hnsw.data"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan::top_k;
    use rand::{Rng, SeedableRng};

    fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        crate::encoder::normalize_rows(&mut v, dim);
        v
    }

    #[test]
    fn recall_at_10_is_high_and_filters_and_dumps_hold() {
        let (n, dim) = (5000, 32);
        let data = random_unit(n, dim, 1);
        let queries = random_unit(100, dim, 2);
        let graph = Graph::build(&data, dim, AnnParams::default());
        let keep_all = |_: usize| true;
        let mut found = 0;
        for q in queries.chunks_exact(dim) {
            let exact: Vec<usize> = top_k(&data, dim, q, 10, |_| true)
                .iter()
                .map(|h| h.row)
                .collect();
            let approx = graph.search(q, 10, 128, &keep_all);
            assert_eq!(approx.len(), 10);
            found += approx.iter().filter(|h| exact.contains(&h.row)).count();
            // Scores are dot products.
            let r = approx[0].row;
            let dot = crate::store::scan::dot(&data[r * dim..(r + 1) * dim], q);
            assert!((approx[0].score - dot).abs() < 1e-4);
        }
        let recall = found as f64 / 1000.0;
        assert!(recall >= 0.95, "recall@10 {recall}");
        // A filter is applied inside the graph search.
        let even = |r: usize| r.is_multiple_of(2);
        for q in queries.chunks_exact(dim).take(10) {
            let hits = graph.search(q, 10, 128, &even);
            assert!(hits.iter().all(|h| h.row.is_multiple_of(2)));
        }
        // Dump and load give the same answers.
        let dir = tempfile::tempdir().unwrap();
        let name = graph.dump(dir.path(), "g").unwrap();
        let loaded = Graph::load(dir.path(), &name, graph.params).unwrap();
        let q = &queries[..dim];
        assert_eq!(
            graph.search(q, 10, 128, &keep_all),
            loaded.search(q, 10, 128, &keep_all)
        );
    }
}
