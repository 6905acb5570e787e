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

use super::scan::{dot, sort_hits, RowHit};

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
    /// the first setting with recall@10 >= 0.99 (0.992, p50 1.9 ms; 128 gave 0.983; a
    /// later build, searched by our own walk: 0.988 at p50 0.94 ms).
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
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Layers of the graph (hnsw_rs's advice: 16 is plenty for any size here).
const MAX_LAYERS: usize = 16;

/// One HNSW graph over the rows of a matrix.
///
/// hnsw_rs builds the graph and writes and reads its dumps; searches run on a flat copy
/// of its links (`Links`) against the store's own matrix. hnsw_rs searches through an
/// `Arc` and a lock per point, a hash set of visited points and its own copy of every
/// vector: at 200,000 x 384 it answered at about a third of faiss's rate at equal recall
/// (README, ANN). No crate we could use searches a graph built elsewhere, hence the
/// search below, which is the paper's (Malkov & Yashunin, algorithms 2 and 5).
pub struct Graph {
    links: Links,
    /// hnsw_rs's structure, from [`Graph::build`] until dropped (it is needed to dump);
    /// a loaded graph holds only the flat links.
    built: Option<Hnsw<'static, f32, UnitDot>>,
    pub params: AnnParams,
}

/// The graph's links as arrays of row numbers.
struct Links {
    /// Row `r`'s neighbours on the bottom layer: `bottom[starts[r]..starts[r + 1]]`.
    starts: Vec<u32>,
    bottom: Vec<u32>,
    /// The layers above, lowest first: each maps a row on that layer to its neighbours.
    upper: Vec<std::collections::HashMap<u32, Box<[u32]>>>,
    /// Where every search starts: a row on the top layer.
    entry: Option<u32>,
}

impl Links {
    /// Copies hnsw_rs's links (points are known by the row they were inserted with).
    fn of(hnsw: &Hnsw<'_, f32, UnitDot>, rows: usize) -> Result<Links> {
        let indexation = hnsw.get_point_indexation();
        let top = indexation.get_max_level_observed() as usize;
        let mut bottom_lists: Vec<Vec<u32>> = vec![Vec::new(); rows];
        let mut upper = vec![std::collections::HashMap::new(); top];
        let row_of = |id: usize| -> Result<u32> {
            anyhow::ensure!(id < rows, "the graph links row {id} of {rows}");
            Ok(id as u32)
        };
        let mut entry = None;
        // hnsw_rs's iterator panics on a graph without points.
        let points = if indexation.get_nb_point() == 0 {
            None
        } else {
            Some(indexation)
        };
        for point in points.into_iter().flatten() {
            let row = row_of(point.get_origin_id())?;
            let level = point.get_point_id().0 as usize;
            if level == top && entry.is_none() {
                entry = Some(row);
            }
            for (layer, neighbours) in point.get_neighborhood_id().into_iter().enumerate() {
                if neighbours.is_empty() {
                    continue;
                }
                let ids = neighbours
                    .iter()
                    .map(|n| row_of(n.d_id))
                    .collect::<Result<Vec<u32>>>()?;
                match layer {
                    0 => bottom_lists[row as usize] = ids,
                    l if l <= top => {
                        upper[l - 1].insert(row, ids.into_boxed_slice());
                    }
                    _ => {}
                }
            }
        }
        let mut starts = Vec::with_capacity(rows + 1);
        let mut bottom = Vec::new();
        starts.push(0);
        for list in bottom_lists {
            bottom.extend(list);
            let end = u32::try_from(bottom.len()).context("the graph has too many links")?;
            starts.push(end);
        }
        Ok(Links {
            starts,
            bottom,
            upper,
            entry,
        })
    }

    fn neighbours(&self, layer: usize, row: u32) -> &[u32] {
        if layer == 0 {
            let (a, b) = (self.starts[row as usize], self.starts[row as usize + 1]);
            &self.bottom[a as usize..b as usize]
        } else {
            self.upper[layer - 1].get(&row).map_or(&[], |n| n)
        }
    }
}

/// A row and its score, ordered by score (ties by row, so searches are deterministic).
#[derive(Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Asks the CPU to start loading `v` into cache (no effect off x86-64).
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: prefetching is a hint that never faults, and SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

thread_local! {
    /// Per thread: the search mark of every row, so "visited" is one comparison and
    /// nothing is cleared between searches (a row is visited when its mark equals the
    /// current search's).
    static VISITED: std::cell::RefCell<(u32, Vec<u32>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

impl Graph {
    /// Builds the graph over `vectors` (row-major, `dim` wide, unit length).
    pub fn build(vectors: &[f32], dim: usize, params: AnnParams) -> Result<Graph> {
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
        Ok(Graph {
            links: Links::of(&hnsw, rows)?,
            built: Some(hnsw),
            params,
        })
    }

    /// The best `k` rows of `vectors` (the matrix the graph was built over, `dim` wide)
    /// for `query` among rows for which `keep` holds (all when `None`), best first; the
    /// score is the dot product. Rows a filter leaves out are still walked through, never
    /// returned, so the search may return fewer than `k` when `keep` is selective.
    pub fn search(
        &self,
        vectors: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let rows = self.links.starts.len() - 1;
        let (Some(entry), true) = (self.links.entry, vectors.len() >= rows * dim) else {
            return Vec::new();
        };
        let score = |r: u32| dot(&vectors[r as usize * dim..(r as usize + 1) * dim], query);
        // Greedy descent through the upper layers to the bottom layer's starting row.
        let mut at = Scored(score(entry), entry);
        for layer in (1..=self.links.upper.len()).rev() {
            loop {
                let before = at;
                for &n in self.links.neighbours(layer, at.1) {
                    let s = Scored(score(n), n);
                    if s > at {
                        at = s;
                    }
                }
                if at == before {
                    break;
                }
            }
        }
        let ef = ef.max(k);
        let admits = |r: u32| keep.is_none_or(|keep| keep(r as usize));
        VISITED.with_borrow_mut(|(mark, seen)| {
            if seen.len() < rows {
                seen.resize(rows, 0);
            }
            *mark = mark.wrapping_add(1);
            if *mark == 0 {
                seen.fill(0);
                *mark = 1;
            }
            let mark = *mark;
            // Candidates to expand, best first; the best `ef` admitted rows found so far,
            // worst on top.
            let mut frontier = std::collections::BinaryHeap::new();
            let mut found: std::collections::BinaryHeap<std::cmp::Reverse<Scored>> =
                std::collections::BinaryHeap::new();
            let mut fresh = Vec::new();
            seen[at.1 as usize] = mark;
            frontier.push(at);
            if admits(at.1) {
                found.push(std::cmp::Reverse(at));
            }
            while let Some(next) = frontier.pop() {
                if found.len() >= ef && found.peek().is_some_and(|w| next < w.0) {
                    break;
                }
                // Unvisited neighbours first, their vectors requested from memory all at
                // once: the loads overlap instead of each dot product waiting for its
                // own (the search is bound by memory latency, not arithmetic).
                fresh.clear();
                for &n in self.links.neighbours(0, next.1) {
                    if seen[n as usize] != mark {
                        seen[n as usize] = mark;
                        prefetch(&vectors[n as usize * dim..(n as usize + 1) * dim]);
                        fresh.push(n);
                    }
                }
                for &n in &fresh {
                    let s = Scored(score(n), n);
                    let worst = found.peek().map(|w| w.0);
                    if found.len() < ef || worst.is_some_and(|w| s > w) {
                        frontier.push(s);
                        if admits(n) {
                            found.push(std::cmp::Reverse(s));
                            if found.len() > ef {
                                found.pop();
                            }
                        }
                    }
                }
            }
            let mut hits: Vec<RowHit> = found
                .into_iter()
                .map(|std::cmp::Reverse(Scored(score, row))| RowHit {
                    row: row as usize,
                    score,
                })
                .collect();
            sort_hits(&mut hits);
            hits.truncate(k);
            hits
        })
    }

    /// The graph without hnsw_rs's structure (and its copy of every vector), once dumped.
    pub fn links_only(mut self) -> Graph {
        self.built = None;
        self
    }

    /// hnsw_rs's own search of a graph just built (`None` after loading): the peer of
    /// [`Graph::search`] in `vitrina bench --suite ann`.
    pub fn search_with_hnsw_rs(&self, query: &[f32], k: usize, ef: usize) -> Option<Vec<RowHit>> {
        let hnsw = self.built.as_ref()?;
        let found = hnsw.search(query, k, ef.max(k));
        Some(
            found
                .into_iter()
                .map(|n| RowHit {
                    row: n.d_id,
                    score: 1.0 - n.distance,
                })
                .collect(),
        )
    }

    /// Dumps a graph just built into `dir` as `basename.hnsw.graph` and
    /// `basename.hnsw.data`; returns the basename hnsw_rs chose (it never overwrites a
    /// file).
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        let hnsw = self
            .built
            .as_ref()
            .context("a loaded ANN graph is not dumped again")?;
        hnsw.file_dump(dir, basename)
            .with_context(|| format!("cannot write the ANN graph {basename} in {}", dir.display()))
    }

    /// Loads a dumped graph over `rows` rows (its files' checksums must have been
    /// checked); only its links are kept.
    pub fn load(dir: &Path, basename: &str, params: AnnParams, rows: usize) -> Result<Graph> {
        let mut io = HnswIo::new(dir, basename);
        let context = || format!("cannot load the ANN graph {basename} in {}", dir.display());
        let hnsw: Hnsw<'_, f32, UnitDot> = io.load_hnsw::<f32, UnitDot>().with_context(context)?;
        // hnsw_rs ties a loaded graph's lifetime to its loader; the links are copied
        // out and both are dropped here.
        let links = Links::of(&hnsw, rows).with_context(context)?;
        Ok(Graph {
            links,
            built: None,
            params,
        })
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
        let graph = Graph::build(&data, dim, AnnParams::default()).unwrap();
        let (mut found, mut found_by_hnsw_rs) = (0, 0);
        for q in queries.chunks_exact(dim) {
            let exact: Vec<usize> = top_k(&data, dim, q, 10, |_| true)
                .iter()
                .map(|h| h.row)
                .collect();
            let approx = graph.search(&data, dim, q, 10, 128, None);
            assert_eq!(approx.len(), 10);
            found += approx.iter().filter(|h| exact.contains(&h.row)).count();
            let theirs = graph.search_with_hnsw_rs(q, 10, 128).unwrap();
            found_by_hnsw_rs += theirs.iter().filter(|h| exact.contains(&h.row)).count();
            // Scores are dot products, best first.
            for h in &approx {
                let dot = dot(&data[h.row * dim..(h.row + 1) * dim], q);
                assert!((h.score - dot).abs() < 1e-6);
            }
            assert!(approx.windows(2).all(|w| w[0].score >= w[1].score));
        }
        let recall = found as f64 / 1000.0;
        let theirs = found_by_hnsw_rs as f64 / 1000.0;
        assert!(recall >= 0.95, "recall@10 {recall}");
        // The same graph walked by hnsw_rs finds no more.
        assert!(
            recall >= theirs - 0.01,
            "recall@10 {recall}, hnsw_rs {theirs}"
        );
        // A filter is applied inside the graph search: only admitted rows, still 10.
        let even = |r: usize| r.is_multiple_of(2);
        for q in queries.chunks_exact(dim).take(10) {
            let hits = graph.search(&data, dim, q, 10, 128, Some(&even));
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| h.row.is_multiple_of(2)));
        }
        // Dump and load give the same answers; a loaded graph keeps only its links.
        let dir = tempfile::tempdir().unwrap();
        let name = graph.dump(dir.path(), "g").unwrap();
        let loaded = Graph::load(dir.path(), &name, graph.params, n).unwrap();
        assert!(loaded
            .search_with_hnsw_rs(&queries[..dim], 10, 128)
            .is_none());
        assert!(loaded.dump(dir.path(), "again").is_err());
        for q in queries.chunks_exact(dim).take(20) {
            assert_eq!(
                graph.search(&data, dim, q, 10, 128, None),
                loaded.search(&data, dim, q, 10, 128, None)
            );
        }
        // A dump naming rows the store does not have is refused, not trusted.
        let Err(err) = Graph::load(dir.path(), &name, graph.params, n / 2) else {
            panic!("a graph over more rows than the store's loaded");
        };
        assert!(format!("{err:#}").contains("links row"), "{err:#}");
        // Vectors shorter than the graph: nothing found, no panic.
        assert!(graph
            .search(&data[..dim * 10], dim, &queries[..dim], 10, 128, None)
            .is_empty());
    }

    #[test]
    fn an_empty_or_single_row_graph_answers() {
        let one = random_unit(1, 8, 3);
        let graph = Graph::build(&one, 8, AnnParams::default()).unwrap();
        let hits = graph.search(&one, 8, &one, 10, 16, None);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].row, 0);
        let graph = Graph::build(&[], 8, AnnParams::default()).unwrap();
        assert!(graph.search(&[], 8, &one, 10, 16, None).is_empty());
    }
}
