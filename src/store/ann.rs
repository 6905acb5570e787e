//! Approximate nearest neighbours: an HNSW graph (Malkov & Yashunin) per vector kind over
//! the base segment, so a query visits a few thousand products instead of all of them.
//!
//! The graph is built when the base file is written (the changes since, in the log, are
//! few and always scanned exactly) and written beside it in the format below; the base
//! file records the graph file's CRC-32, checked before it is parsed, and parsing checks
//! every link, so a damaged graph is refused like any damaged file. A product deleted or
//! replaced since the graph was built is skipped during the graph search, as is any
//! product a filter leaves out: the filter is applied inside the graph search, and when it
//! leaves fewer than k products reachable the store falls back to an exact scan
//! (see [`super::snapshot`]).
//!
//! Built and searched here rather than by a crate: hnsw_rs (used before) keeps its own
//! copy of every vector, searches through a lock and a hash set per query, and trims a
//! full neighbour list by distance alone, which gave a graph that needed twice faiss's
//! work for the same recall (README, ANN); usearch's C++ core took 279 s to build cold on
//! this 2-core machine; no crate searches a graph over vectors it does not own. The
//! construction is hnswlib's (the paper's algorithm 1 with the neighbour-selection
//! heuristic, algorithm 4, on every list, including the lists a new row joins), inserting
//! rows in parallel with a lock per row.
//!
//! # Graph file format (`ann-<kind>-<generation>.graph`, version 1)
//!
//! Little-endian u32s after an 8-byte magic `VTRHNSW1`: rows, entry row (`u32::MAX` when
//! empty), upper layers `L`; `rows + 1` offsets and the bottom layer's links (row `r`'s
//! neighbours are `links[offsets[r]..offsets[r + 1]]`); `rows + 1` offsets and the rows
//! identical to each row, found with it (they are not in the graph); then for each upper
//! layer, lowest first: its row count, then per row: row, neighbour count, neighbours.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
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
    /// Chosen on 200,000 x 384 vectors (`vitrina bench --suite ann`): M 16 and
    /// ef_construction 200 are faiss's and hnswlib's usual values; ef_search 256 gave
    /// recall@10 0.995 at p50 0.82 ms (128: 0.989), and filtered searches, which return
    /// the admitted rows among those the walk meets, find more with a wider walk.
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

/// Products from which `Auto` builds graphs. Below it an exact scan answers in about 2
/// ms and a graph would only add build time to every compaction; above it a server
/// spends most of a request in the scan (at 44,446 products: 117 req/s exactly against
/// about 240 with graphs, whose three graphs build in about 30 s: README, ANN).
pub const DEFAULT_THRESHOLD: usize = 20_000;

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

/// Layers of the graph at most (a row's layer is drawn with probability `M^-l`: 16 layers
/// would take more than 16^15 rows).
const MAX_LAYERS: usize = 16;

/// Seed of the layer draws, so a catalogue's graph has the same layers on every build.
const LEVEL_SEED: u64 = 0x5eed_4e5f;

/// Recall@10 an unfiltered search is tuned to reach (see [`Graph::tune_ef_search`]).
pub const TUNED_RECALL: f64 = 0.995;

/// Queries a graph is tuned with: enough to estimate recall@10 near 0.995 to about
/// +-0.002 (2,000 neighbours), few enough to add only seconds to a build
/// (`bench --suite ann` prints the time).
pub const TUNING_QUERIES: usize = 200;

/// ef_search settings tried when tuning, smallest first (`bench --suite ann` measures
/// each).
pub const EF_LADDER: [usize; 9] = [16, 24, 32, 48, 64, 96, 128, 192, 256];

/// One HNSW graph over the rows of a matrix (the store's own: the graph holds only links).
pub struct Graph {
    links: Links,
    pub params: AnnParams,
    /// The ef_search unfiltered searches use, when tuned on the catalogue (else
    /// `params.ef_search`).
    pub tuned_ef_search: Option<usize>,
}

/// The graph's links as arrays of row numbers.
#[derive(Debug, PartialEq)]
struct Links {
    /// Row `r`'s neighbours on the bottom layer: `bottom[starts[r]..starts[r + 1]]`.
    starts: Vec<u32>,
    bottom: Vec<u32>,
    /// The layers above, lowest first: each maps a row on that layer to its neighbours.
    upper: Vec<HashMap<u32, Box<[u32]>>>,
    /// Where every search starts: a row on the top layer.
    entry: Option<u32>,
    /// Rows identical to row `r` (not in the graph; found with it):
    /// `copy_rows[copy_starts[r]..copy_starts[r + 1]]`.
    copy_starts: Vec<u32>,
    copy_rows: Vec<u32>,
}

/// How a walk reads links: a finished graph's arrays, or the lists of a graph being built
/// (behind a lock per row).
trait Adjacency {
    /// Rows in the graph.
    fn rows(&self) -> usize;
    /// Calls `f` with the neighbours of `row` on `layer` (none when it is not on it).
    fn with_neighbours<R>(&self, layer: usize, row: u32, f: impl FnOnce(&[u32]) -> R) -> R;
    /// Rows identical to `row`, left out of the graph and found with it.
    fn copies(&self, _row: u32) -> &[u32] {
        &[]
    }
}

impl Adjacency for Links {
    fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    fn with_neighbours<R>(&self, layer: usize, row: u32, f: impl FnOnce(&[u32]) -> R) -> R {
        if layer == 0 {
            let (a, b) = (self.starts[row as usize], self.starts[row as usize + 1]);
            f(&self.bottom[a as usize..b as usize])
        } else {
            f(self.upper[layer - 1].get(&row).map_or(&[], |n| n))
        }
    }

    fn copies(&self, row: u32) -> &[u32] {
        let (a, b) = (
            self.copy_starts[row as usize],
            self.copy_starts[row as usize + 1],
        );
        &self.copy_rows[a as usize..b as usize]
    }
}

/// A row and its score, ordered by score (ties by row, so searches are deterministic).
#[derive(Clone, Copy, PartialEq, Debug)]
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

/// A walk over a graph's links and the matrix its rows index (`dim` wide, unit rows):
/// the paper's greedy descent and beam search (algorithms 2 and 5), shared by queries
/// and by insertion.
struct Walk<'a, A> {
    links: &'a A,
    vectors: &'a [f32],
    dim: usize,
}

impl<A: Adjacency> Walk<'_, A> {
    fn vector(&self, row: u32) -> &[f32] {
        &self.vectors[row as usize * self.dim..(row as usize + 1) * self.dim]
    }

    fn score(&self, query: &[f32], row: u32) -> Scored {
        Scored(dot(self.vector(row), query), row)
    }

    /// From `at`, moves to the best neighbour on `layer` until none is better.
    fn greedy(&self, query: &[f32], mut at: Scored, layer: usize) -> Scored {
        loop {
            let before = at;
            self.links.with_neighbours(layer, at.1, |neighbours| {
                for &n in neighbours {
                    at = at.max(self.score(query, n));
                }
            });
            if at == before {
                return at;
            }
        }
    }

    /// The best `ef` rows on `layer` for which `admits` holds (with their identical
    /// copies), found from `start`, in no order.
    ///
    /// The walk itself ignores `admits`: where it goes and when it stops are decided by
    /// the best `ef` rows it has seen, admitted or not, as in an unfiltered search; the
    /// admitted rows among all it scores are returned (faiss's rule for a filtered HNSW
    /// search). So a filter costs no more than no filter, and a selective one returns
    /// fewer rows than asked; the store then scans instead (see [`super::snapshot`]).
    /// (Expanding until `ef` admitted rows were found, as before, walked most of the
    /// graph for a 5% filter: README, ANN.)
    fn beam(
        &self,
        query: &[f32],
        start: Scored,
        layer: usize,
        ef: usize,
        admits: impl Fn(u32) -> bool,
    ) -> Vec<Scored> {
        let rows = self.links.rows();
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
            // Candidates to expand, best first; the best `ef` rows seen, worst on top.
            let mut frontier = BinaryHeap::new();
            let mut nearest: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
            // The best `ef` admitted rows and copies seen, worst on top.
            let mut found: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
            let mut fresh = Vec::new();
            // A row seen brings its identical copies, each admitted on its own.
            let collect = |s: Scored, found: &mut BinaryHeap<Reverse<Scored>>| {
                if found.len() >= ef && found.peek().is_some_and(|w| s <= w.0) {
                    return;
                }
                for row in std::iter::once(s.1).chain(self.links.copies(s.1).iter().copied()) {
                    if admits(row) {
                        found.push(Reverse(Scored(s.0, row)));
                        if found.len() > ef {
                            found.pop();
                        }
                    }
                }
            };
            seen[start.1 as usize] = mark;
            frontier.push(start);
            nearest.push(Reverse(start));
            collect(start, &mut found);
            while let Some(next) = frontier.pop() {
                if nearest.len() >= ef && nearest.peek().is_some_and(|w| next < w.0) {
                    break;
                }
                // Unvisited neighbours first, their vectors requested from memory all at
                // once: the loads overlap instead of each dot product waiting for its
                // own (the search is bound by memory latency, not arithmetic).
                fresh.clear();
                self.links.with_neighbours(layer, next.1, |neighbours| {
                    for &n in neighbours {
                        if seen[n as usize] != mark {
                            seen[n as usize] = mark;
                            prefetch(self.vector(n));
                            fresh.push(n);
                        }
                    }
                });
                for &n in &fresh {
                    let s = self.score(query, n);
                    collect(s, &mut found);
                    if nearest.len() < ef || nearest.peek().is_some_and(|w| s > w.0) {
                        frontier.push(s);
                        nearest.push(Reverse(s));
                        if nearest.len() > ef {
                            nearest.pop();
                        }
                    }
                }
            }
            found.into_iter().map(|Reverse(s)| s).collect()
        })
    }

    /// Of `candidates` (best first, scored against some row `q`), at most `m` that are
    /// each closer to `q` than to any candidate kept before them (the paper's algorithm
    /// 4, as hnswlib and faiss run it): links that point in different directions, so a
    /// walk can leave a cluster of near-duplicates instead of circling in it.
    fn diverse(&self, candidates: &[Scored], m: usize) -> Vec<Scored> {
        let mut kept: Vec<Scored> = Vec::with_capacity(m);
        for &c in candidates {
            if kept.len() >= m {
                break;
            }
            let v = self.vector(c.1);
            if kept.iter().all(|k| dot(v, self.vector(k.1)) <= c.0) {
                kept.push(c);
            }
        }
        kept
    }
}

/// Takes a lock even if a thread panicked holding it (the lists stay valid row numbers).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A graph being built: each row's neighbour lists, bottom layer first, one per layer the
/// row is on, each behind the row's lock.
struct Building {
    lists: Vec<Mutex<Vec<Vec<u32>>>>,
    /// The entry row and its layer. Every insertion reads it under this lock; one that
    /// raises the top layer holds the lock through its whole insertion (hnswlib's rule),
    /// so two such insertions never race to set the entry.
    entry: Mutex<Option<(u32, usize)>>,
}

impl Adjacency for Building {
    fn rows(&self) -> usize {
        self.lists.len()
    }

    fn with_neighbours<R>(&self, layer: usize, row: u32, f: impl FnOnce(&[u32]) -> R) -> R {
        let lists = lock(&self.lists[row as usize]);
        f(lists.get(layer).map_or(&[], |l| l))
    }
}

impl Walk<'_, Building> {
    /// Inserts `row` on layers `0..=level` (the paper's algorithm 1).
    fn insert(&self, row: u32, level: usize, params: &AnnParams) {
        let graph = self.links;
        let mut held = lock(&graph.entry);
        let Some((entry, top)) = *held else {
            *held = Some((row, level));
            return;
        };
        // Released at once unless this row raises the top layer.
        let growing = (level > top).then_some(held);
        let query = self.vector(row);
        let mut at = self.score(query, entry);
        for layer in (level + 1..=top).rev() {
            at = self.greedy(query, at, layer);
        }
        for layer in (0..=level.min(top)).rev() {
            let mut found = self.beam(query, at, layer, params.ef_construction, |_| true);
            found.retain(|s| s.1 != row);
            found.sort_unstable_by(|a, b| b.cmp(a));
            let chosen = self.diverse(&found, params.m);
            lock(&graph.lists[row as usize])[layer] = chosen.iter().map(|s| s.1).collect();
            // The bottom layer holds twice the links (the paper's M_max0 = 2M).
            let cap = if layer == 0 { 2 * params.m } else { params.m };
            for s in &chosen {
                self.join(s.1, Scored(s.0, row), layer, cap);
            }
            if let Some(&best) = found.first() {
                at = best;
            }
        }
        if let Some(mut held) = growing {
            *held = Some((row, level));
        }
    }

    /// Adds `new` (scored against `row`) to `row`'s list on `layer`; a list already at
    /// `cap` keeps the diverse `cap` of its links and `new`.
    fn join(&self, row: u32, new: Scored, layer: usize, cap: usize) {
        let mut lists = lock(&self.links.lists[row as usize]);
        let Some(list) = lists.get_mut(layer) else {
            return;
        };
        if list.contains(&new.1) {
            return;
        }
        if list.len() < cap {
            list.push(new.1);
            return;
        }
        let v = self.vector(row);
        let mut candidates: Vec<Scored> = list
            .iter()
            .map(|&n| Scored(dot(v, self.vector(n)), n))
            .chain([new])
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        *list = self.diverse(&candidates, cap).iter().map(|s| s.1).collect();
    }
}

impl Graph {
    /// Builds the graph over `vectors` (row-major, `dim` wide, unit length), inserting
    /// rows on every thread of the pool.
    pub fn build(vectors: &[f32], dim: usize, params: AnnParams) -> Result<Graph> {
        ensure!(dim > 0, "vectors without dimensions");
        let rows = vectors.len() / dim;
        ensure!(
            u32::try_from(rows).is_ok_and(|r| r < u32::MAX),
            "{rows} rows are too many for one graph"
        );
        let m = params.m.max(2);
        let params = AnnParams { m, ..params };
        // Identical vectors (a catalogue repeats titles and photos) go into the graph
        // once: as many rows of one vector would fill each other's lists with links that
        // all point to the same place, and walks that reach them could not leave.
        let mut first: HashMap<&[u8], u32> = HashMap::with_capacity(rows);
        let mut copies: Vec<Vec<u32>> = vec![Vec::new(); rows];
        let mut in_graph = Vec::with_capacity(rows);
        for (row, v) in vectors.chunks_exact(dim).enumerate() {
            match first.entry(bytemuck::cast_slice(v)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    copies[*e.get() as usize].push(row as u32)
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(row as u32);
                    in_graph.push(row as u32);
                }
            }
        }
        drop(first);
        // Each row's top layer: floor(-ln(U) / ln(M)), the paper's mL = 1 / ln(M).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(LEVEL_SEED);
        let mut levels = vec![0; rows];
        for &row in &in_graph {
            let u: f64 = 1.0 - rng.random::<f64>();
            levels[row as usize] = ((-u.ln() / (m as f64).ln()) as usize).min(MAX_LAYERS - 1);
        }
        let building = Building {
            lists: levels
                .iter()
                .map(|&l| Mutex::new(vec![Vec::new(); l + 1]))
                .collect(),
            entry: Mutex::new(None),
        };
        let walk = Walk {
            links: &building,
            vectors,
            dim,
        };
        // Rows are handed out in order, one at a time, so the threads insert neighbouring
        // rows together, as one thread would in turn.
        let next = AtomicUsize::new(0);
        rayon::broadcast(|_| {
            while let Some(&row) = in_graph.get(next.fetch_add(1, Ordering::Relaxed)) {
                walk.insert(row, levels[row as usize], &params);
            }
        });
        let entry = building
            .entry
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let top = entry.map_or(0, |e| e.1);
        let mut bottom_lists = Vec::with_capacity(rows);
        let mut upper = vec![HashMap::new(); top];
        for (row, lists) in building.lists.into_iter().enumerate() {
            let lists = lists.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut lists = lists.into_iter();
            bottom_lists.push(lists.next().unwrap_or_default());
            for (layer, list) in upper.iter_mut().zip(lists) {
                layer.insert(row as u32, list.into_boxed_slice());
            }
        }
        let (starts, bottom) = flatten(bottom_lists)?;
        let (copy_starts, copy_rows) = flatten(copies)?;
        Ok(Graph {
            links: Links {
                starts,
                bottom,
                upper,
                entry: entry.map(|e| e.0),
                copy_starts,
                copy_rows,
            },
            params,
            tuned_ef_search: None,
        })
    }

    /// The ef_search a search uses unless the caller names one, for a filter that admits
    /// `share` of the rows (1 when unfiltered): the tuned one, widened by `1 / share`
    /// up to `params.ef_search`, since a filtered walk returns the admitted rows among
    /// those it meets and must meet `1 / share` times as many to find as many.
    pub fn ef_search(&self, share: f64) -> usize {
        let ceiling = self.params.ef_search;
        match self.tuned_ef_search {
            Some(ef) if share > 0.0 => {
                ((ef as f64 / share).ceil() as usize).clamp(ef, ceiling.max(ef))
            }
            _ => ceiling,
        }
    }

    /// The smallest ef_search (of the ladder, at most `params.ef_search`) at which
    /// unfiltered searches for `queries` find [`TUNED_RECALL`] of their exact 10 best
    /// rows. Each query comes with a row left out of both answers: its own product, as
    /// `eval` leaves it out (a product's title would otherwise find its own text vector,
    /// which any walk does).
    ///
    /// Why tune: the recall an ef_search buys depends on the catalogue. On Myntra's
    /// 44,446 products ef 48 already finds 0.997 of the exact top 10 and ef 256 (the
    /// default, chosen at 200,000 rows) 0.999 at three times the cost (`bench --suite
    /// ann --rows 44446`). The queries should be what shoppers ask: the store passes
    /// its products' title vectors, as `bench --suite ann` does. A hit counts when it
    /// scores at least the exact 10th's (copies of one vector tie).
    pub fn tune_ef_search(
        &self,
        vectors: &[f32],
        dim: usize,
        queries: &[(usize, &[f32])],
    ) -> usize {
        use rayon::prelude::*;
        let ceiling = self.params.ef_search;
        let tenths: Vec<Option<f32>> = queries
            .iter()
            .map(|&(own, q)| {
                let best = super::scan::top_k(vectors, dim, q, 10, |r| r != own);
                best.get(9).map(|h| h.score)
            })
            .collect();
        let wanted = tenths.iter().flatten().count() * 10;
        if wanted == 0 {
            return ceiling;
        }
        for ef in EF_LADDER.into_iter().filter(|&ef| ef < ceiling) {
            let found: usize = queries
                .par_iter()
                .zip(&tenths)
                .map(|(&(own, q), tenth)| match tenth {
                    Some(tenth) => {
                        let keep = |r: usize| r != own;
                        self.search(vectors, dim, q, 10, ef, Some(&keep))
                            .iter()
                            .filter(|h| h.score >= tenth - 1e-6)
                            .count()
                    }
                    None => 0,
                })
                .sum();
            if found as f64 >= TUNED_RECALL * wanted as f64 {
                return ef;
            }
        }
        ceiling
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
        let rows = self.links.rows();
        let (Some(entry), true) = (self.links.entry, vectors.len() >= rows * dim) else {
            return Vec::new();
        };
        let walk = Walk {
            links: &self.links,
            vectors,
            dim,
        };
        let mut at = walk.score(query, entry);
        for layer in (1..=self.links.upper.len()).rev() {
            at = walk.greedy(query, at, layer);
        }
        let admits = |r: u32| keep.is_none_or(|keep| keep(r as usize));
        let mut hits: Vec<RowHit> = walk
            .beam(query, at, 0, ef.max(k), admits)
            .into_iter()
            .map(|Scored(score, row)| RowHit {
                row: row as usize,
                score,
            })
            .collect();
        sort_hits(&mut hits);
        hits.truncate(k);
        hits
    }

    /// The graph file's bytes (format in the module's documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let links = &self.links;
        let mut words: Vec<u32> = vec![
            links.rows() as u32,
            links.entry.unwrap_or(u32::MAX),
            links.upper.len() as u32,
        ];
        words.extend(&links.starts);
        words.extend(&links.bottom);
        words.extend(&links.copy_starts);
        words.extend(&links.copy_rows);
        for layer in &links.upper {
            let mut rows: Vec<&u32> = layer.keys().collect();
            rows.sort_unstable();
            words.push(rows.len() as u32);
            for row in rows {
                let neighbours = &layer[row];
                words.push(*row);
                words.push(neighbours.len() as u32);
                words.extend(neighbours.iter());
            }
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        bytes
    }

    /// Reads a graph file's bytes for a base of `rows` rows, checking every link.
    pub fn from_bytes(bytes: &[u8], rows: usize, params: AnnParams) -> Result<Graph> {
        let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
            bail!("not a vitrina graph file (no magic {MAGIC:?})");
        };
        ensure!(body.len() % 4 == 0, "the graph file is cut mid-number");
        let mut words = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut next = |what: &str| {
            words
                .next()
                .with_context(|| format!("the graph file ends before its {what}"))
        };
        let in_range = |r: u32, what: &str| -> Result<u32> {
            ensure!((r as usize) < rows, "the graph links {what} {r} of {rows}");
            Ok(r)
        };
        let stated = next("row count")? as usize;
        ensure!(
            stated == rows,
            "the graph is over {stated} rows, the index has {rows}"
        );
        let entry = match next("entry")? {
            u32::MAX => None,
            r => Some(in_range(r, "entry row")?),
        };
        ensure!(
            entry.is_some() == (rows > 0),
            "the graph's entry does not match its rows"
        );
        let layers = next("layer count")? as usize;
        ensure!(layers < MAX_LAYERS, "the graph has {layers} layers");
        let mut lists = |what: &str| -> Result<(Vec<u32>, Vec<u32>)> {
            let starts = (0..=rows)
                .map(|_| next(what))
                .collect::<Result<Vec<u32>>>()?;
            ensure!(
                starts[0] == 0 && starts.windows(2).all(|w| w[0] <= w[1]),
                "the graph's {what} offsets are out of order"
            );
            let rows = (0..starts[rows])
                .map(|_| in_range(next(what)?, "row"))
                .collect::<Result<Vec<u32>>>()?;
            Ok((starts, rows))
        };
        let (starts, bottom) = lists("links")?;
        let (copy_starts, copy_rows) = lists("copies")?;
        let mut upper = Vec::with_capacity(layers);
        for _ in 0..layers {
            let count = next("layer")?;
            ensure!(
                count as usize <= rows,
                "a graph layer holds {count} rows of {rows}"
            );
            let mut layer = HashMap::with_capacity(count as usize);
            for _ in 0..count {
                let row = in_range(next("layer row")?, "row")?;
                let len = next("neighbour count")?;
                ensure!(len as usize <= rows, "a graph row has {len} neighbours");
                let neighbours = (0..len)
                    .map(|_| in_range(next("neighbours")?, "row"))
                    .collect::<Result<Box<[u32]>>>()?;
                layer.insert(row, neighbours);
            }
            upper.push(layer);
        }
        ensure!(
            next("end").is_err(),
            "the graph file has bytes after its last layer"
        );
        if let (Some(entry), Some(top)) = (entry, upper.last()) {
            ensure!(
                top.contains_key(&entry),
                "the graph's entry is not on its top layer"
            );
        }
        Ok(Graph {
            links: Links {
                starts,
                bottom,
                upper,
                entry,
                copy_starts,
                copy_rows,
            },
            params,
            tuned_ef_search: None,
        })
    }
}

/// Lists as offsets (`lists.len() + 1`) and their concatenation.
fn flatten(lists: Vec<Vec<u32>>) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut starts = Vec::with_capacity(lists.len() + 1);
    let mut all = Vec::new();
    starts.push(0);
    for list in lists {
        all.extend(list);
        starts.push(u32::try_from(all.len()).context("the graph has too many links")?);
    }
    Ok((starts, all))
}

/// First bytes of a graph file.
const MAGIC: &[u8; 8] = b"VTRHNSW1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan::top_k;

    fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        crate::encoder::normalize_rows(&mut v, dim);
        v
    }

    fn recall(graph: &Graph, data: &[f32], queries: &[f32], dim: usize, ef: usize) -> f64 {
        let mut found = 0;
        for q in queries.chunks_exact(dim) {
            // A hit counts when it scores at least the exact 10th's: copies of one
            // vector tie, and any of them is a right answer.
            let tenth = top_k(data, dim, q, 10, |_| true)[9].score;
            let approx = graph.search(data, dim, q, 10, ef, None);
            assert_eq!(approx.len(), 10);
            found += approx.iter().filter(|h| h.score >= tenth - 1e-6).count();
            // Scores are dot products, best first.
            for h in &approx {
                let dot = dot(&data[h.row * dim..(h.row + 1) * dim], q);
                assert!((h.score - dot).abs() < 1e-6);
            }
            assert!(approx.windows(2).all(|w| w[0].score >= w[1].score));
        }
        found as f64 / (10 * queries.len() / dim) as f64
    }

    #[test]
    fn tuning_picks_the_smallest_ef_search_that_reaches_the_target() {
        // Low-dimensional vectors: an easy graph, where far less than the default does.
        let (n, dim) = (4000, 8);
        let data = random_unit(n, dim, 5);
        let queries = random_unit(TUNING_QUERIES, dim, 6);
        // Random queries, with a row each left out (which no search may return).
        let tuning: Vec<(usize, &[f32])> = queries.chunks_exact(dim).enumerate().collect();
        let mut graph = Graph::build(&data, dim, AnnParams::default()).unwrap();
        assert_eq!(graph.ef_search(1.0), 256, "untuned: the policy's");
        let ef = graph.tune_ef_search(&data, dim, &tuning);
        assert!(ef < 256, "tuned to {ef}");
        assert!(recall(&graph, &data, &queries, dim, ef) >= TUNED_RECALL);
        let below = EF_LADDER.iter().rev().find(|&&e| e < ef);
        if let Some(&below) = below {
            let r = recall(&graph, &data, &queries, dim, below);
            assert!(r < TUNED_RECALL, "ef {below} already reaches {r}");
        }
        // Used unfiltered; widened by 1 / share for filters, up to the policy's.
        graph.tuned_ef_search = Some(ef);
        assert_eq!(graph.ef_search(1.0), ef);
        assert_eq!(graph.ef_search(0.5), (2 * ef).min(256));
        assert_eq!(graph.ef_search(0.01), 256);
        // A policy below the ladder's answer caps it; no queries: the policy's.
        let capped = Graph {
            params: AnnParams {
                ef_search: 16,
                ..graph.params
            },
            ..graph
        };
        assert!(capped.tune_ef_search(&data, dim, &tuning) <= 16);
        assert_eq!(capped.tune_ef_search(&data, dim, &[]), 16);
    }

    #[test]
    fn recall_at_10_is_high_and_filters_and_files_hold() {
        let (n, dim) = (5000, 32);
        let data = random_unit(n, dim, 1);
        let queries = random_unit(100, dim, 2);
        let graph = Graph::build(&data, dim, AnnParams::default()).unwrap();
        let recall = recall(&graph, &data, &queries, dim, graph.params.ef_search);
        assert!(recall >= 0.95, "recall@10 {recall} at the default settings");
        // Every list within its cap, no row linked to itself.
        let links = &graph.links;
        for r in 0..n as u32 {
            links.with_neighbours(0, r, |ns| {
                assert!(ns.len() <= 32 && !ns.contains(&r));
            });
        }
        assert!(links
            .upper
            .iter()
            .flat_map(|l| l.values())
            .all(|ns| ns.len() <= 16));
        // A filter is applied inside the graph search: only admitted rows, still 10.
        let even = |r: usize| r.is_multiple_of(2);
        for q in queries.chunks_exact(dim).take(10) {
            let hits = graph.search(&data, dim, q, 10, 128, Some(&even));
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| h.row.is_multiple_of(2)));
        }
        // Written and read back: the same links, the same answers.
        let bytes = graph.to_bytes();
        let loaded = Graph::from_bytes(&bytes, n, graph.params).unwrap();
        assert_eq!(loaded.links, graph.links);
        for q in queries.chunks_exact(dim).take(20) {
            assert_eq!(
                graph.search(&data, dim, q, 10, 128, None),
                loaded.search(&data, dim, q, 10, 128, None)
            );
        }
        // A file for another number of rows, cut short, with bytes after its end, or
        // linking a row the index lacks is refused, never trusted.
        let refused = |bytes: &[u8], rows: usize| {
            Graph::from_bytes(bytes, rows, graph.params)
                .err()
                .map(|e| format!("{e:#}"))
                .expect("a bad graph file was read")
        };
        assert!(refused(&bytes, n / 2).contains("over 5000 rows"));
        assert!(refused(&bytes[..bytes.len() - 4], n).contains("ends before"));
        assert!(refused(&bytes[..bytes.len() - 1], n).contains("cut"));
        assert!(refused(&[bytes.as_slice(), &[0; 4]].concat(), n).contains("after its last"));
        assert!(refused(b"VITRINA\0", n).contains("magic"));
        let mut bad_link = bytes.clone();
        let first_link = 8 + 4 * (3 + n + 1);
        bad_link[first_link..first_link + 4].copy_from_slice(&(n as u32).to_le_bytes());
        assert!(refused(&bad_link, n).contains("links row 5000"));
        // Vectors shorter than the graph: nothing found, no panic.
        assert!(graph
            .search(&data[..dim * 10], dim, &queries[..dim], 10, 128, None)
            .is_empty());
    }

    #[test]
    fn clusters_of_identical_vectors_do_not_trap_the_walk() {
        // Catalogues hold many identical photos and titles: 40 groups of 50 copies of
        // one vector each, beside 3,000 distinct vectors. Queries near the distinct
        // ones must still find them.
        let dim = 32;
        let distinct = random_unit(3000, dim, 4);
        let groups = random_unit(40, dim, 5);
        let mut data = Vec::new();
        for (i, v) in distinct.chunks_exact(dim).enumerate() {
            data.extend_from_slice(v);
            if i % 75 == 0 {
                for _ in 0..50 {
                    data.extend_from_slice(&groups[(i / 75) * dim..(i / 75 + 1) * dim]);
                }
            }
        }
        let graph = Graph::build(&data, dim, AnnParams::default()).unwrap();
        let queries = random_unit(100, dim, 6);
        let recall = recall(&graph, &data, &queries, dim, 128);
        assert!(recall >= 0.95, "recall@10 {recall}");
        // A copy's vector as the query finds its copies, each filtered on its own.
        let copy = &groups[..dim];
        let hits = graph.search(&data, dim, copy, 10, 64, None);
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.score > 0.9999), "{hits:?}");
        let odd = |r: usize| r % 2 == 1;
        let hits = graph.search(&data, dim, copy, 10, 64, Some(&odd));
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter().all(|h| h.score > 0.9999 && h.row % 2 == 1),
            "{hits:?}"
        );
    }

    #[test]
    fn an_empty_or_single_row_graph_answers_and_round_trips() {
        let one = random_unit(1, 8, 3);
        let graph = Graph::build(&one, 8, AnnParams::default()).unwrap();
        let hits = graph.search(&one, 8, &one, 10, 16, None);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].row, 0);
        let again = Graph::from_bytes(&graph.to_bytes(), 1, graph.params).unwrap();
        assert_eq!(again.search(&one, 8, &one, 10, 16, None), hits);
        let graph = Graph::build(&[], 8, AnnParams::default()).unwrap();
        assert!(graph.search(&[], 8, &one, 10, 16, None).is_empty());
        let again = Graph::from_bytes(&graph.to_bytes(), 0, graph.params).unwrap();
        assert!(again.search(&[], 8, &one, 10, 16, None).is_empty());
    }
}
