//! A consistent, immutable view of a store: a base segment (the compacted products)
//! and a delta segment (changes since, in write order). Readers search a snapshot
//! while a new one is being built, so a search never sees half of a change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Result};
use rayon::prelude::*;

use super::ann::{Graph, Method};
use super::filter::Test;
use super::scan::{dot, sort_hits, top_k_by, RowHit};
use super::wal::Op;
use super::{
    Candidates, Entry, Hit, Space, Store, StoreInfo, StoreMeta, StoredProduct, VectorKind,
};
use super::{Facets, Filter, TextIndex};

/// Immutable rows: products and their vectors, one row-major matrix per kind.
pub(crate) struct Segment {
    pub products: Vec<StoredProduct>,
    pub vectors: BTreeMap<VectorKind, Vec<f32>>,
    /// HNSW graphs over some kinds' rows (base segments above the store's threshold).
    pub ann: BTreeMap<VectorKind, Arc<Graph>>,
    dim: usize,
    /// `text . image` per row, for [`Space::Blend`]; computed on first use.
    text_dot_image: OnceLock<Vec<f32>>,
    /// Rows by field and value, for filters' "any of" clauses; built on first use.
    field_rows: OnceLock<FieldRows>,
}

/// Field name -> value (trimmed, lower case) -> rows holding it, in row order.
type FieldRows = HashMap<String, HashMap<String, Vec<u32>>>;

impl Segment {
    pub fn new(
        products: Vec<StoredProduct>,
        vectors: BTreeMap<VectorKind, Vec<f32>>,
        dim: usize,
    ) -> Self {
        Segment {
            products,
            vectors,
            ann: BTreeMap::new(),
            dim,
            text_dot_image: OnceLock::new(),
            field_rows: OnceLock::new(),
        }
    }

    fn empty(meta: &StoreMeta) -> Self {
        let vectors = meta.kinds.iter().map(|&k| (k, Vec::new())).collect();
        Segment::new(Vec::new(), vectors, meta.dim)
    }

    fn len(&self) -> usize {
        self.products.len()
    }

    fn row(&self, kind: VectorKind, r: usize) -> Option<&[f32]> {
        let d = self.dim;
        self.vectors.get(&kind).map(|v| &v[r * d..(r + 1) * d])
    }

    fn push(&mut self, entry: &Entry) {
        self.products.push(entry.product.clone());
        for (kind, v) in self.vectors.iter_mut() {
            v.extend_from_slice(&entry.vectors[kind]);
        }
        self.text_dot_image = OnceLock::new();
        self.field_rows = OnceLock::new();
    }

    fn field_rows(&self) -> &FieldRows {
        self.field_rows.get_or_init(|| {
            let mut rows: FieldRows = HashMap::new();
            for (r, p) in self.products.iter().enumerate() {
                for (name, value) in p.product.fields() {
                    rows.entry(name.to_string())
                        .or_default()
                        .entry(value.trim().to_ascii_lowercase())
                        .or_default()
                        .push(r as u32);
                }
            }
            rows
        })
    }

    /// The rows a filter's "any of" clauses admit, as one flag per row (`None` when it
    /// has none), and the clauses left to test product by product. Comparing field
    /// values as strings for every row was a third of a busy server's time: a boosted
    /// search filters on the values a query names (colour, gender, category).
    fn prefilter(&self, filter: &Filter) -> (Option<Vec<bool>>, Filter) {
        let mut admitted: Option<Vec<bool>> = None;
        let mut rest = Filter::default();
        for clause in &filter.clauses {
            let Test::AnyOf(options) = &clause.test else {
                rest.clauses.push(clause.clone());
                continue;
            };
            let mut flags = vec![false; self.len()];
            if let Some(values) = self.field_rows().get(&clause.field) {
                for option in options {
                    let rows = values.get(&option.to_ascii_lowercase());
                    for &r in rows.into_iter().flatten() {
                        flags[r as usize] = true;
                    }
                }
            }
            admitted = Some(match admitted {
                None => flags,
                Some(mut both) => {
                    both.iter_mut().zip(&flags).for_each(|(a, b)| *a &= b);
                    both
                }
            });
        }
        (admitted, rest)
    }

    fn text_dot_image(&self) -> Result<&[f32]> {
        let (Some(t), Some(i)) = (
            self.vectors.get(&VectorKind::Text),
            self.vectors.get(&VectorKind::Image),
        ) else {
            return Err(anyhow!(
                "blending text and image needs both vector kinds; this store has no image vectors"
            ));
        };
        let d = self.dim;
        Ok(self.text_dot_image.get_or_init(|| {
            t.par_chunks(d.max(1))
                .zip(i.par_chunks(d.max(1)))
                .map(|(a, b)| dot(a, b))
                .collect()
        }))
    }

    /// Top k rows of this segment among `alive` rows that pass `candidates`;
    /// `all_alive` says that no row is dead.
    fn top_k(
        &self,
        space: Space,
        query: &[f32],
        k: usize,
        (alive, all_alive): (&[bool], bool),
        candidates: &Candidates,
    ) -> Result<Vec<RowHit>> {
        let (admitted, rest) = match candidates.filter {
            Some(filter) => self.prefilter(filter),
            None => (None, Filter::default()),
        };
        let per_product = Candidates {
            filter: (!rest.clauses.is_empty()).then_some(&rest),
            ..*candidates
        };
        let keep = |r: usize| {
            alive[r]
                && admitted.as_ref().is_none_or(|a| a[r])
                && per_product.admits(&self.products[r])
        };
        let d = self.dim;
        if let Space::Kind(kind) = space {
            match (candidates.method, self.ann.get(&kind)) {
                (Method::Exact, _) | (Method::Auto, None) => {}
                (Method::Ann, None) => {
                    return Err(anyhow!(
                        "this index has no ANN graph for {kind:?} vectors ({} products; graphs are built \
                         above the threshold, or always with `vitrina index --ann`); search with --exact",
                        self.len()
                    ))
                }
                (method, Some(graph)) => {
                    let restricted = candidates.restricted() || !all_alive;
                    let share = if restricted {
                        admitted_share(self.len(), &keep)
                    } else {
                        1.0
                    };
                    let ef = candidates.ef_search.unwrap_or(graph.ef_search(share));
                    let vectors = self.vectors.get(&kind).map_or(&[][..], Vec::as_slice);
                    let hits = if !restricted {
                        graph.search(vectors, d, query, k, ef, None)
                    } else if method == Method::Auto && share < SELECTIVE {
                        // A selective filter: the exact scan scores only the admitted
                        // products, and the graph would meet too few of them.
                        Vec::new()
                    } else {
                        graph.search(vectors, d, query, k, ef, Some(&keep))
                    };
                    // A selective filter can leave fewer than k products reachable in
                    // the graph: then scan exactly, so k results come back whenever k
                    // products match.
                    if hits.len() >= k.min(self.len()) {
                        return Ok(hits);
                    }
                }
            }
        }
        let missing = |kind: VectorKind| {
            anyhow!(
                "this store has no {kind:?} vectors (it holds {:?}): the catalogue has no images, \
                 or it was indexed without an image tower",
                self.vectors.keys().collect::<Vec<_>>()
            )
        };
        match space {
            Space::Kind(kind) => {
                let v = self.vectors.get(&kind).ok_or_else(|| missing(kind))?;
                Ok(top_k_by(self.len(), k, keep, |r| {
                    dot(&v[r * d..(r + 1) * d], query)
                }))
            }
            Space::Blend { alpha } => {
                let t = self
                    .vectors
                    .get(&VectorKind::Text)
                    .ok_or_else(|| missing(VectorKind::Text))?;
                let i = self
                    .vectors
                    .get(&VectorKind::Image)
                    .ok_or_else(|| missing(VectorKind::Image))?;
                let ti = self.text_dot_image()?;
                let (a, b) = (alpha, 1.0 - alpha);
                Ok(top_k_by(self.len(), k, keep, |r| {
                    let norm = (a * a + b * b + 2.0 * a * b * ti[r]).max(0.0).sqrt();
                    let s = a * dot(&t[r * d..(r + 1) * d], query)
                        + b * dot(&i[r * d..(r + 1) * d], query);
                    if norm > 0.0 {
                        s / norm
                    } else {
                        0.0
                    }
                }))
            }
        }
    }
}

/// Below this share of admitted products, a filtered search scans instead of walking
/// the graph. The walk goes where an unfiltered one would and returns the admitted rows
/// it meets, so it costs the same at any share but finds fewer of the right rows as the
/// share falls: on 200,000 products (`vitrina bench --suite ann`) a 5% filter gave
/// recall@10 0.985 in 1.0 ms against the scan's 4.3 ms, a 1% filter 0.744 in 1.3 ms
/// against the scan's 1.0 ms.
const SELECTIVE: f64 = 0.04;

/// The share of rows `keep` admits, from 2,000 rows drawn at random (seeded by the row
/// count, so a search is repeatable). Evenly spaced rows would alias with periodic
/// data: with 200,000 rows every 100th row was sampled, and a field that cycles every
/// 20 rows read as matching all or nothing.
fn admitted_share(rows: usize, keep: &dyn Fn(usize) -> bool) -> f64 {
    use rand::{Rng, SeedableRng};
    const SAMPLES: usize = 2000;
    if rows <= SAMPLES {
        return (0..rows).filter(|&r| keep(r)).count() as f64 / rows.max(1) as f64;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rows as u64);
    let admitted = (0..SAMPLES)
        .filter(|_| keep(rng.random_range(0..rows)))
        .count();
    admitted as f64 / SAMPLES as f64
}

/// Where a row lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Base(u32),
    Delta(u32),
}

/// A consistent view of a store; implements [`Store`].
pub struct Snapshot {
    meta: StoreMeta,
    base: Arc<Segment>,
    /// Id -> base row, built once per base and shared by the snapshots on top of it.
    base_ids: Arc<HashMap<String, u32>>,
    base_alive: Vec<bool>,
    /// Base rows deleted or replaced since the base was written (0: the graph needs no
    /// row filter).
    base_dead: usize,
    delta: Segment,
    /// Id -> its latest delta row, or `None` once deleted.
    delta_ids: HashMap<String, Option<u32>>,
    delta_alive: Vec<bool>,
    live: usize,
    /// Computed on first use; a snapshot never changes, so neither do they.
    facets: OnceLock<Arc<Facets>>,
    text_index: OnceLock<Arc<TextIndex>>,
}

impl Snapshot {
    pub(crate) fn empty(meta: StoreMeta) -> Self {
        let base = Segment::empty(&meta);
        Snapshot::on_base(meta, Arc::new(base))
    }

    /// A snapshot of a base segment with no changes on top.
    pub(crate) fn on_base(meta: StoreMeta, base: Arc<Segment>) -> Self {
        let base_ids: HashMap<String, u32> = base
            .products
            .iter()
            .enumerate()
            .map(|(r, p)| (p.id().to_string(), r as u32))
            .collect();
        let n = base.len();
        Snapshot {
            delta: Segment::empty(&meta),
            meta,
            base_alive: vec![true; n],
            base_dead: 0,
            base,
            base_ids: Arc::new(base_ids),
            delta_ids: HashMap::new(),
            delta_alive: Vec::new(),
            live: n,
            facets: OnceLock::new(),
            text_index: OnceLock::new(),
        }
    }

    /// The same view, sharing the base; the delta is copied so that `apply` on the copy
    /// leaves this one untouched (readers of this one keep a consistent view).
    pub(crate) fn fork(&self) -> Self {
        let mut delta = Segment::new(
            self.delta.products.clone(),
            self.delta.vectors.clone(),
            self.meta.dim,
        );
        delta.text_dot_image = self.delta.text_dot_image.clone();
        delta.field_rows = self.delta.field_rows.clone();
        Snapshot {
            meta: self.meta.clone(),
            base: self.base.clone(),
            base_ids: self.base_ids.clone(),
            base_alive: self.base_alive.clone(),
            base_dead: self.base_dead,
            delta,
            delta_ids: self.delta_ids.clone(),
            delta_alive: self.delta_alive.clone(),
            live: self.live,
            facets: OnceLock::new(),
            text_index: OnceLock::new(),
        }
    }

    /// Rows in the delta (the embedded store compacts when it grows).
    pub(crate) fn delta_rows(&self) -> usize {
        self.delta.len()
    }

    fn locate(&self, id: &str) -> Option<Loc> {
        match self.delta_ids.get(id) {
            Some(Some(r)) => Some(Loc::Delta(*r)),
            Some(None) => None,
            None => self.base_ids.get(id).map(|&r| Loc::Base(r)),
        }
    }

    /// The ids among `ids` that the store holds.
    pub(crate) fn present(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.locate(id).is_some())
            .cloned()
            .collect()
    }

    fn stored(&self, loc: Loc) -> &StoredProduct {
        match loc {
            Loc::Base(r) => &self.base.products[r as usize],
            Loc::Delta(r) => &self.delta.products[r as usize],
        }
    }

    fn kill(&mut self, id: &str) {
        match self.locate(id) {
            Some(Loc::Base(r)) => {
                self.base_alive[r as usize] = false;
                self.base_dead += 1;
            }
            Some(Loc::Delta(r)) => self.delta_alive[r as usize] = false,
            None => return,
        }
        self.live -= 1;
    }

    /// Applies operations in order (entries were checked when the op was made).
    pub(crate) fn apply(&mut self, ops: &[Op]) {
        self.facets = OnceLock::new();
        self.text_index = OnceLock::new();
        for op in ops {
            match op {
                Op::Upsert(entries) => {
                    for entry in entries {
                        let id = entry.product.id().to_string();
                        self.kill(&id);
                        let row = self.delta.len() as u32;
                        self.delta.push(entry);
                        self.delta_alive.push(true);
                        self.delta_ids.insert(id, Some(row));
                        self.live += 1;
                    }
                }
                Op::Delete(ids) => {
                    for id in ids {
                        self.kill(id);
                        self.delta_ids.insert(id.clone(), None);
                    }
                }
            }
        }
    }

    /// The live rows: base order first, then changes in write order.
    fn live_rows(&self) -> impl Iterator<Item = (&Segment, usize)> + '_ {
        [
            (&*self.base, &self.base_alive),
            (&self.delta, &self.delta_alive),
        ]
        .into_iter()
        .flat_map(|(seg, alive)| (0..seg.len()).filter(|&r| alive[r]).map(move |r| (seg, r)))
    }

    fn live_products(&self) -> impl Iterator<Item = &StoredProduct> + '_ {
        self.live_rows().map(|(seg, r)| &seg.products[r])
    }

    /// All live rows as one segment, base order first, then changes in write order:
    /// what compaction writes.
    pub(crate) fn compacted(&self) -> Segment {
        let mut products = Vec::with_capacity(self.live);
        let mut vectors: BTreeMap<VectorKind, Vec<f32>> = self
            .meta
            .kinds
            .iter()
            .map(|&k| (k, Vec::with_capacity(self.live * self.meta.dim)))
            .collect();
        for (seg, r) in self.live_rows() {
            products.push(seg.products[r].clone());
            for (kind, v) in vectors.iter_mut() {
                v.extend_from_slice(seg.row(*kind, r).expect("kind of the store"));
            }
        }
        Segment::new(products, vectors, self.meta.dim)
    }
}

impl Store for Snapshot {
    fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    fn len(&self) -> usize {
        self.live
    }

    fn top_k(
        &self,
        space: Space,
        query: &[f32],
        k: usize,
        candidates: &Candidates,
    ) -> Result<Vec<Hit>> {
        self.meta.check_query(query)?;
        let base = self.base.top_k(
            space,
            query,
            k,
            (&self.base_alive, self.base_dead == 0),
            candidates,
        )?;
        // Changes since the base file are few and have no graph: always scanned.
        let exact = Candidates {
            method: Method::Exact,
            ..*candidates
        };
        let delta = self
            .delta
            .top_k(space, query, k, (&self.delta_alive, false), &exact)?;
        let n = self.base.len();
        let mut all: Vec<RowHit> = base
            .into_iter()
            .chain(delta.into_iter().map(|h| RowHit {
                row: n + h.row,
                score: h.score,
            }))
            .collect();
        sort_hits(&mut all);
        all.truncate(k);
        let mut hits: Vec<Hit> = all
            .into_iter()
            .map(|h| {
                let p = if h.row < n {
                    &self.base.products[h.row]
                } else {
                    &self.delta.products[h.row - n]
                };
                Hit {
                    id: p.id().to_string(),
                    score: h.score,
                }
            })
            .collect();
        super::sort_by_score_then_id(&mut hits);
        Ok(hits)
    }

    fn vectors(&self, kind: VectorKind, ids: &[&str]) -> Result<Vec<Option<Vec<f32>>>> {
        anyhow::ensure!(
            self.meta.kinds.contains(&kind),
            "this store has no {kind:?} vectors (it holds {:?})",
            self.meta.kinds
        );
        Ok(ids
            .iter()
            .map(|id| {
                let v = match self.locate(id)? {
                    Loc::Base(r) => self.base.row(kind, r as usize),
                    Loc::Delta(r) => self.delta.row(kind, r as usize),
                };
                v.map(<[f32]>::to_vec)
            })
            .collect())
    }

    fn product(&self, id: &str) -> Result<Option<StoredProduct>> {
        Ok(self.locate(id).map(|l| self.stored(l).clone()))
    }

    fn products(&self) -> Result<Vec<StoredProduct>> {
        Ok(self.live_products().cloned().collect())
    }

    fn facets(&self) -> Result<Arc<Facets>> {
        Ok(self
            .facets
            .get_or_init(|| Arc::new(Facets::of(self.live_products())))
            .clone())
    }

    fn text_index(&self) -> Result<Arc<TextIndex>> {
        Ok(self
            .text_index
            .get_or_init(|| {
                let products = self.live_products().cloned().collect();
                Arc::new(TextIndex::build(products, Default::default()))
            })
            .clone())
    }

    fn info(&self) -> StoreInfo {
        let search = match self.base.ann.values().next() {
            Some(g) => format!(
                "hnsw (M {}, ef_construction {}, ef_search unfiltered {}, filtered up to {}) over {} products; exact over {} recent changes",
                g.params.m,
                g.params.ef_construction,
                self.base
                    .ann
                    .iter()
                    .map(|(kind, g)| format!("{kind:?} {}", g.ef_search(1.0)))
                    .collect::<Vec<_>>()
                    .join(", "),
                g.params.ef_search,
                self.base.len(),
                self.delta.len()
            ),
            None => "exact".into(),
        };
        let with_image = self.live_products().filter(|p| p.has_image).count();
        StoreInfo {
            products: self.live,
            products_with_image: with_image,
            model: self.meta.model.clone(),
            dim: self.meta.dim,
            kinds: self.meta.kinds.clone(),
            catalog: self.meta.catalog.clone(),
            search,
            bytes_on_disk: None,
            location: "memory".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::admitted_share;

    #[test]
    fn the_admitted_share_is_not_fooled_by_periodic_fields() {
        // A field cycling every 20 rows (1 in 20 admitted) at sizes whose even spacing
        // would alias with it.
        for rows in [200_000, 44_446, 40_000, 1_000] {
            let share = admitted_share(rows, &|r: usize| r.is_multiple_of(20));
            assert!((0.035..0.065).contains(&share), "{rows} rows: {share}");
        }
        assert_eq!(admitted_share(0, &|_| true), 0.0);
    }
}
