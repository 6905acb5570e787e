//! Search: turns a query (text, image, or both) into a vector with the store's own
//! model, ranks products by the chosen vectors, and optionally diversifies the list.

pub mod diversify;
pub mod feedback;
pub mod fusion;
pub mod keyword;
pub mod request;
pub mod syntax;
pub mod title_feedback;

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Result};
use clap::ValueEnum;
use image::DynamicImage;
use serde::Serialize;

pub use diversify::Diversify;
pub use feedback::Feedback;
pub use fusion::{Fusion, FusionMethod};
pub use request::SearchRequest;
pub use syntax::ParsedQuery;

use crate::encoder::{fuse, Model};
use crate::store::filter::{Clause, Test};
use crate::store::text_index::Understood;
use crate::store::{
    sort_by_score_then_id, Candidates, Filter, Hit, Method, Space, Store, StoreMeta, TextQuery,
    VectorKind,
};

/// Which product vectors a query is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Query -> product text vectors.
    Description,
    /// Query -> product image vectors (cross-modal for a text query). Products without
    /// a usable image are left out.
    Image,
    /// Query -> the normalised average of text and image vectors (a product without a
    /// usable image: its text with the image vector of the product closest in text).
    Average,
    /// Query text -> BM25 over titles and category/attribute values (no vectors; a
    /// photo alone cannot be a keyword query).
    Keyword,
    /// Keyword and the index's default vector mode, fused ([`Fusion`]).
    Hybrid,
}

/// Results per query unless the caller says otherwise: the CLI, the server and the page
/// share it, so one query gives one answer everywhere.
pub const DEFAULT_K: usize = 10;
/// The most results one query may ask for.
pub const MAX_K: usize = 200;
/// A product whose photo is this similar (cosine) to a query photo is that very photo:
/// image mode puts it first ([`Searcher::rank_query`]) and title feedback keeps its score.
pub const SAME_PHOTO: f32 = 0.999;
/// At most this many of the catalogue's copies of a query photo are put first.
const SAME_PHOTO_MAX: usize = 10;

/// `k` if it is within 1..=[`MAX_K`].
pub fn check_k(k: usize) -> Result<usize> {
    ensure!(
        (1..=MAX_K).contains(&k),
        "k must be within 1..={MAX_K} (got {k})"
    );
    Ok(k)
}

impl Mode {
    /// The modes that compare vectors only.
    pub const VECTOR: [Mode; 3] = [Mode::Description, Mode::Image, Mode::Average];

    /// The mode used when none is asked for: hybrid, the best at every k on the Myntra
    /// train and test splits (README, Ranking). A photo alone in hybrid mode is ranked
    /// by the vector side, [`Mode::default_vector_for`].
    pub fn default_for(_meta: &StoreMeta) -> Mode {
        Mode::Hybrid
    }

    /// The best vector mode of an index: average, the best vector mode on every
    /// catalogue measured, where the index has image vectors; description on a
    /// text-only index. Hybrid's vector side.
    pub fn default_vector_for(meta: &StoreMeta) -> Mode {
        if meta.kinds.contains(&VectorKind::Average) {
            Mode::Average
        } else {
            Mode::Description
        }
    }

    /// A mode by name (`text` is accepted for description).
    pub fn parse(name: &str) -> Result<Mode> {
        match name {
            "description" | "text" => Ok(Mode::Description),
            "image" => Ok(Mode::Image),
            "average" => Ok(Mode::Average),
            "keyword" => Ok(Mode::Keyword),
            "hybrid" => Ok(Mode::Hybrid),
            other => {
                bail!("unknown mode {other:?}: use description, image, average, keyword or hybrid")
            }
        }
    }

    /// The stored vectors a vector mode compares with (`None`: keyword, hybrid).
    pub fn kind(self) -> Option<VectorKind> {
        match self {
            Mode::Description => Some(VectorKind::Text),
            Mode::Image => Some(VectorKind::Image),
            Mode::Average => Some(VectorKind::Average),
            Mode::Keyword | Mode::Hybrid => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Description => "description",
            Mode::Image => "image",
            Mode::Average => "average",
            Mode::Keyword => "keyword",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// What a shopper asks with.
#[derive(Default)]
pub struct Query {
    pub text: Option<String>,
    pub image: Option<DynamicImage>,
    /// Weight of the text when both text and image are given (0..=1).
    pub text_weight: f32,
}

/// One ranked product, as shown to users and scripts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResultRow {
    pub rank: usize,
    pub score: f32,
    pub id: String,
    pub title: String,
    pub broad: Option<String>,
    pub fine: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub has_image: bool,
}

/// How to rank: which vectors, how many, among which products, and the list's
/// post-processing.
#[derive(Debug, Clone)]
pub struct Ranking {
    pub mode: Mode,
    pub k: usize,
    /// Results skipped before the k returned (the next page of the same list: the
    /// list is ranked `offset + k` deep and its head dropped).
    pub offset: usize,
    /// Text weight of the product-side fusion in `average` mode; 0.5 is the stored
    /// average vector (the reference's equal weights).
    pub alpha: f32,
    pub diversify: Diversify,
    /// Only products that pass it (applied inside the search: k results whenever k
    /// products match).
    pub filter: Filter,
    /// Graph (ANN) or full scan; `Auto` uses the graph where the store has one.
    pub method: Method,
    /// Candidates explored per graph search (default: the store's setting).
    pub ef_search: Option<usize>,
    /// How hybrid mode combines its keyword and vector lists.
    pub fusion: Fusion,
    /// Products with the field values a text query names ("red" -> baseColour Red)
    /// score up to this share more: `score * (1 + boost * share of named fields
    /// matched)`. 0 turns it off.
    pub boost: f32,
    /// Fields whose named values are not boosted (a chip the shopper removed).
    pub ignore: Vec<String>,
    /// Visual feedback: the vector side searched again with its first results' mean
    /// blended into the query ([`feedback`]); `None`: the vector mode's default
    /// ([`Feedback::default_for`]).
    pub feedback: Option<Feedback>,
    /// Title feedback: the vector list re-scored by its products' titles' agreement with
    /// its first results' titles ([`title_feedback`]), this weight; `None`: the vector
    /// mode's default ([`title_feedback::default_for`]; applied only where the index
    /// holds title vectors).
    pub title_feedback: Option<f32>,
}

/// The attribute boost chosen on the Myntra train split (README, Ranking): hybrid mode's
/// P@10 rose up to 0.5 and held at 1.0; average mode's peaked at 0.1-0.2 and fell
/// below 0.5 only past it.
pub const DEFAULT_BOOST: f32 = 0.5;

/// A requested boost (unset: [`DEFAULT_BOOST`]) if it is within 0..=10.
pub fn check_boost(boost: Option<f32>) -> Result<f32> {
    let boost = boost.unwrap_or(DEFAULT_BOOST);
    ensure!(
        (0.0..=10.0).contains(&boost),
        "boost must be within 0..10 (got {boost})"
    );
    Ok(boost)
}

impl Ranking {
    pub fn new(mode: Mode, k: usize) -> Self {
        Ranking {
            mode,
            k,
            offset: 0,
            alpha: 0.5,
            diversify: Diversify::None,
            filter: Filter::default(),
            method: Method::Auto,
            ef_search: None,
            fusion: Fusion::default(),
            boost: DEFAULT_BOOST,
            ignore: Vec::new(),
            feedback: None,
            title_feedback: None,
        }
    }

    /// A ranking of the index described by `meta` with the defaults every front end
    /// shares: no mode given -> [`Mode::default_for`]; `k` checked by [`check_k`].
    pub fn for_index(meta: &StoreMeta, mode: Option<Mode>, k: usize) -> Result<Self> {
        let mode = mode.unwrap_or_else(|| Mode::default_for(meta));
        Ok(Ranking::new(mode, check_k(k)?))
    }

    /// The vector mode behind this ranking in a store described by `meta`: the mode
    /// itself, hybrid's vector side (the index's default mode), or none for keyword.
    pub fn vector_mode(&self, meta: &StoreMeta) -> Option<Mode> {
        match self.mode {
            Mode::Keyword => None,
            Mode::Hybrid => Some(Mode::default_vector_for(meta)),
            vector => Some(vector),
        }
    }

    /// The vector space a vector mode compares queries with.
    pub fn space(&self, mode: Mode) -> Result<Space> {
        let kind = mode
            .kind()
            .ok_or_else(|| anyhow::anyhow!("{} mode compares no vectors", mode.name()))?;
        if mode == Mode::Average && (self.alpha - 0.5).abs() > 1e-6 {
            ensure!(
                (0.0..=1.0).contains(&self.alpha),
                "alpha must be within 0..1"
            );
            return Ok(Space::Blend { alpha: self.alpha });
        }
        Ok(Space::Kind(kind))
    }
}

/// The field values the words name that `ranking` boosts (none with boost 0, none of an
/// ignored field).
fn boosted_values(
    index: &crate::store::TextIndex,
    words: &str,
    ranking: &Ranking,
) -> Vec<Understood> {
    if ranking.boost <= 0.0 {
        return Vec::new();
    }
    let mut found = index.understand(words);
    found.retain(|u| !ranking.ignore.contains(&u.field));
    found
}

/// Whether boosting `plain` (a list asked for `depth` products, best first) already
/// gives the final top `k`: the list holds every candidate (it came back short), or at
/// least `k` of its products match every named value. A product below the list scores
/// less than each of those, and a boost multiplies both by at most the same factor, so
/// a second search for the matching products could not change the top k (exact for one
/// list; for hybrid, which fuses ranks, a close approximation).
fn boost_settled(plain: &[Hit], depth: usize, k: usize, agreement: impl Fn(&str) -> f32) -> bool {
    plain.len() < depth || plain.iter().filter(|h| agreement(&h.id) >= 1.0).count() >= k
}

/// One list from several lists of one vector space: each product once, at its best
/// score, best first. (The same query over overlapping candidates gives a product the
/// same score in each; a query and its feedback-refined form may give two.)
fn union(lists: Vec<Vec<Hit>>) -> Vec<Hit> {
    let mut best: std::collections::HashMap<String, f32> = std::collections::HashMap::new();
    for h in lists.into_iter().flatten() {
        let score = best.entry(h.id).or_insert(h.score);
        *score = score.max(h.score);
    }
    let mut hits: Vec<Hit> = best
        .into_iter()
        .map(|(id, score)| Hit { id, score })
        .collect();
    sort_by_score_then_id(&mut hits);
    hits
}

/// Searches one store with the model that built it.
pub struct Searcher<'a> {
    pub store: &'a dyn Store,
    /// Needed only to embed new queries; ranking by stored vectors works without it.
    model: Option<&'a Model>,
}

impl<'a> Searcher<'a> {
    /// Pairs a store with a model, refusing a model other than the store's own: vectors
    /// from two models live in different spaces and their scores mean nothing together.
    pub fn new(store: &'a dyn Store, model: &'a Model) -> Result<Self> {
        let meta = store.meta();
        if meta.model != model.id() || meta.dim != model.dim() {
            bail!(
                "this index was built with model `{}` ({}-d), but the query model is `{}` ({}-d); \
                 search with the index's model or rebuild the index",
                meta.model,
                meta.dim,
                model.id(),
                model.dim()
            );
        }
        Ok(Searcher {
            store,
            model: Some(model),
        })
    }

    /// A searcher that ranks by query vectors taken from the store itself (evaluation,
    /// "more like this"), so it needs no model.
    pub fn stored_vectors_only(store: &'a dyn Store) -> Self {
        Searcher { store, model: None }
    }

    /// Whether new queries (texts, photos) can be embedded, not only stored vectors ranked.
    pub fn can_embed(&self) -> bool {
        self.model.is_some()
    }

    fn model(&self) -> Result<&'a Model> {
        self.model
            .ok_or_else(|| anyhow::anyhow!("this searcher has no model to embed new queries"))
    }

    /// The query's vector: the text's, the image's, or their weighted fusion.
    pub fn embed(&self, query: &Query) -> Result<Vec<f32>> {
        let (vector, _) = self.embed_parts(
            query.text.as_deref(),
            query.image.as_ref(),
            query.text_weight,
        )?;
        Ok(vector)
    }

    /// The vector a query ranks by, and for a photo alone, the photo's own vector (as the
    /// catalogue's photos are stored), by which its copies in the catalogue are found.
    fn embed_parts(
        &self,
        text: Option<&str>,
        image: Option<&DynamicImage>,
        text_weight: f32,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let text = match text {
            Some(t) if !t.trim().is_empty() => Some(self.model()?.embed_query(t)?),
            _ => None,
        };
        let image = match image {
            Some(img) => Some(self.model()?.image_encoder()?.embed_query_image(img)?),
            None => None,
        };
        match (text, image) {
            (Some(t), Some(i)) => {
                ensure!(
                    (0.0..=1.0).contains(&text_weight),
                    "text weight must be within 0..1"
                );
                Ok((fuse(&t, i.ranked(), text_weight), None))
            }
            (Some(v), None) => Ok((v, None)),
            (None, Some(i)) => Ok((i.ranked().to_vec(), Some(i.own))),
            (None, None) => bail!("the query is empty: give a text, an image, or both"),
        }
    }

    /// Ranks products against a query vector; `exclude` drops products (evaluation
    /// excludes the query's own).
    pub fn rank(&self, query: &[f32], ranking: &Ranking, exclude: &[&str]) -> Result<Vec<Hit>> {
        self.rank_query(Some(query), None, None, ranking, exclude)
    }

    /// Ranks products for a query vector (the vector modes' side) and a parsed query text
    /// (the keyword side; its phrases and exclusions hold in every mode, and a product
    /// id typed as the whole query puts that product first). `photo`, a photo query's own
    /// vector: in image mode, the catalogue's copies of that very photo come first.
    pub fn rank_query(
        &self,
        vector: Option<&[f32]>,
        photo: Option<&[f32]>,
        text: Option<&ParsedQuery>,
        ranking: &Ranking,
        exclude: &[&str],
    ) -> Result<Vec<Hit>> {
        if ranking.offset > 0 {
            let whole = Ranking {
                k: ranking.offset + ranking.k,
                offset: 0,
                ..ranking.clone()
            };
            let mut hits = self.rank_query(vector, photo, text, &whole, exclude)?;
            hits.drain(..ranking.offset.min(hits.len()));
            return Ok(hits);
        }
        let pool = if ranking.diversify == Diversify::None {
            ranking.k
        } else {
            ranking.k.max(diversify::POOL)
        };
        if !ranking.filter.is_empty() {
            ranking.filter.check(&*self.store.facets()?)?;
        }
        ranking.fusion.check()?;
        ranking.diversify.check()?;
        let meta = self.store.meta();
        let vector_mode = ranking.vector_mode(meta);
        let candidates = Candidates {
            exclude,
            with_image_only: vector_mode == Some(Mode::Image),
            filter: (!ranking.filter.is_empty()).then_some(&ranking.filter),
            method: ranking.method,
            ef_search: ranking.ef_search,
        };
        let keywords = text.map(|t| &t.keywords);
        let uses_keywords = matches!(ranking.mode, Mode::Keyword | Mode::Hybrid);
        let text_index = match keywords {
            Some(q) if uses_keywords || q.constrains() || ranking.boost > 0.0 => {
                Some(self.store.text_index()?)
            }
            _ => None,
        };
        // Field values the query names: products with them are fetched too (a list
        // filtered to them, so a photo of a brown bag with "black" reaches black bags
        // beyond the brown ones) and boosted.
        let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let (Some(q), Some(index)) = (keywords, &text_index) {
            for u in boosted_values(index, &q.words, ranking) {
                named.entry(u.field).or_default().push(u.value);
            }
        }
        let boosted_filter = Filter {
            clauses: ranking
                .filter
                .clauses
                .iter()
                .cloned()
                .chain(named.iter().map(|(field, values)| Clause {
                    field: field.clone(),
                    test: Test::AnyOf(values.clone()),
                }))
                .collect(),
        };
        // The products with the named values, searched as any filtered search is: the
        // store walks its graph when the filter admits many products (a gender, a broad
        // category) and scans the admitted ones when it admits few.
        let boosted = Candidates {
            filter: Some(&boosted_filter),
            ..candidates
        };
        // Hybrid looks deeper than it returns: a product far down one list may be high
        // in the other. So does a boosted query: a deeper plain list usually holds enough
        // products with the named values to make the second, filtered search needless
        // (below), and a deeper scan costs about the same.
        let depth = match ranking.mode {
            Mode::Hybrid => (2 * pool).max(fusion::DEPTH),
            _ if !named.is_empty() => pool.max(fusion::DEPTH),
            _ => pool,
        };
        // The list of products with the named values is needed only when one of them
        // could outscore, once boosted, what the plain list already holds.
        // (Always settled when no value is named.)
        let settled = |plain: &[Hit]| match &text_index {
            Some(index) if !named.is_empty() => {
                boost_settled(plain, depth, pool, |id| index.agreement(id, &named))
            }
            _ => true,
        };
        let keyword_hits = match (ranking.mode, keywords, &text_index) {
            (Mode::Keyword | Mode::Hybrid, Some(q), Some(index)) => {
                let plain = index.search(q, depth, &candidates);
                Some(if settled(&plain) {
                    plain
                } else {
                    union(vec![plain, index.search(q, depth, &boosted)])
                })
            }
            (Mode::Keyword, ..) => bail!("keyword mode needs a query text"),
            _ => None,
        };
        let vector_hits = match vector_mode {
            Some(mode) => {
                let query = vector
                    .ok_or_else(|| anyhow::anyhow!("{} mode needs a query vector", mode.name()))?;
                let held = match (keywords, &text_index) {
                    (Some(q), Some(index)) if q.constrains() => Some(index.admits_all(q)),
                    _ => None,
                };
                let admits = held.as_ref().map(|f| f as &dyn Fn(&str) -> bool);
                let space = ranking.space(mode)?;
                // Each product keeps its better score of the two searches, so what the
                // query itself matches best is not lost to the refined query.
                let feedback = ranking.feedback.unwrap_or(Feedback::default_for(mode));
                let (refined, first) =
                    self.feedback(space, query, feedback, &candidates, admits)?;
                let asked = query;
                let query = refined.as_deref().unwrap_or(query);
                let titles = self.title_weight(ranking, mode)?;
                // Title feedback re-orders a pool of a fixed depth, so that a page of k
                // is the first k of any longer list.
                let depth = if titles > 0.0 {
                    depth.max(title_feedback::POOL)
                } else {
                    depth
                };
                let mut lists = vec![self.vector_hits(space, query, depth, &candidates, admits)?];
                if !settled(&lists[0]) {
                    lists.push(self.vector_hits(space, query, depth, &boosted, admits)?);
                }
                if !first.is_empty() {
                    lists.push(first);
                }
                let mut hits = match lists.len() {
                    1 => lists.remove(0),
                    _ => union(lists),
                };
                if titles > 0.0 {
                    // The titles nearest the query itself join the anchor; their vectors
                    // are read with the list's, in one read of the store.
                    let text = Space::Kind(VectorKind::Text);
                    let nearest = self.vector_hits(
                        text,
                        asked,
                        title_feedback::NEAREST,
                        &candidates,
                        admits,
                    )?;
                    let ids: Vec<&str> =
                        hits.iter().chain(&nearest).map(|h| h.id.as_str()).collect();
                    let mut vectors = self.store.vectors(VectorKind::Text, &ids)?;
                    let nearest = vectors.split_off(hits.len());
                    let side = title_feedback::query_side(asked, &nearest);
                    title_feedback::rescore(&mut hits, &vectors, &side, titles);
                }
                Some(hits)
            }
            None => None,
        };
        let mut hits = match (keyword_hits, vector_hits) {
            (Some(k), Some(v)) => ranking.fusion.fuse(&k, &v),
            (Some(h), None) | (None, Some(h)) => h,
            (None, None) => Vec::new(),
        };
        if let (false, Some(index)) = (named.is_empty(), &text_index) {
            for h in &mut hits {
                h.score += h.score.abs() * ranking.boost * index.agreement(&h.id, &named);
            }
            sort_by_score_then_id(&mut hits);
        }
        let mut hits = match ranking.diversify {
            Diversify::None => hits,
            method => {
                ensure!(
                    meta.kinds.contains(&VectorKind::Image),
                    "diversification needs image vectors; this index has none"
                );
                let n = hits.len().min(diversify::POOL);
                let ids: Vec<&str> = hits[..n].iter().map(|h| h.id.as_str()).collect();
                let vectors: Vec<Vec<f32>> = self
                    .store
                    .vectors(VectorKind::Image, &ids)?
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| vec![0.0; meta.dim]))
                    .collect();
                method.apply(&hits, |i| vectors[i].as_slice())
            }
        };
        if let Some(text) = text {
            self.pin_product(&mut hits, &text.raw, &candidates)?;
        }
        if let (Some(photo), Some(Mode::Image)) = (photo, vector_mode) {
            self.pin_same_photo(&mut hits, photo, &candidates)?;
        }
        hits.truncate(ranking.k);
        Ok(hits)
    }

    /// The `depth` best products of a vector space among `candidates`, held to `admits`
    /// (a query's phrases and exclusions): the store is asked for more until enough
    /// pass or none are left, so exclusions never make a list short.
    fn vector_hits(
        &self,
        space: Space,
        query: &[f32],
        depth: usize,
        candidates: &Candidates,
        admits: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Vec<Hit>> {
        let meta = self.store.meta();
        let needed = match space {
            Space::Kind(kind) => vec![kind],
            Space::Blend { .. } => vec![VectorKind::Text, VectorKind::Image],
        };
        for kind in needed {
            ensure!(
                meta.kinds.contains(&kind),
                "this index has no {kind:?} vectors (it holds {:?}): the catalogue `{}` has no images, \
                 or it was indexed without an image tower",
                meta.kinds,
                meta.catalog
            );
        }
        let Some(admits) = admits else {
            return self.store.top_k(space, query, depth, candidates);
        };
        let mut asked = depth.saturating_mul(4).max(1);
        loop {
            let hits = self.store.top_k(space, query, asked, candidates)?;
            let exhausted = hits.len() < asked || asked >= self.store.len();
            let mut kept: Vec<Hit> = hits.into_iter().filter(|h| admits(&h.id)).collect();
            if kept.len() >= depth || exhausted {
                kept.truncate(depth);
                return Ok(kept);
            }
            asked = asked.saturating_mul(8).min(self.store.len());
        }
    }

    /// The title feedback weight of a ranking in vector mode `mode`: the request's
    /// (refused on an index without title vectors) or the mode's default (0 there).
    fn title_weight(&self, ranking: &Ranking, mode: Mode) -> Result<f32> {
        let has_titles = self.store.meta().kinds.contains(&VectorKind::Text);
        match ranking.title_feedback {
            Some(weight) => {
                title_feedback::check(weight)?;
                ensure!(
                    weight == 0.0 || has_titles,
                    "title feedback needs the products' title vectors; this index has none"
                );
                Ok(weight)
            }
            None if has_titles => Ok(title_feedback::default_for(mode)),
            None => Ok(0.0),
        }
    }

    /// Visual feedback ([`feedback`]): the query's first `feedback.depth` results and
    /// the query refined by their vectors (`None`, and no results, when it is off).
    fn feedback(
        &self,
        space: Space,
        query: &[f32],
        feedback: Feedback,
        candidates: &Candidates,
        admits: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<(Option<Vec<f32>>, Vec<Hit>)> {
        if !feedback.is_on() {
            return Ok((None, Vec::new()));
        }
        feedback.check()?;
        let first = self.vector_hits(space, query, feedback.depth, candidates, admits)?;
        let ids: Vec<&str> = first.iter().map(|h| h.id.as_str()).collect();
        let found = self.space_vectors(space, &ids)?;
        let found: Vec<&[f32]> = found.iter().flatten().map(Vec::as_slice).collect();
        Ok((Some(feedback.refine(query, &found)), first))
    }

    /// The vectors of products in `space`, one per id: a kind's stored vector, or a
    /// blend's product vector (`alpha t + (1 - alpha) i`, normalised, as its scores
    /// are); `None` where one is missing.
    fn space_vectors(&self, space: Space, ids: &[&str]) -> Result<Vec<Option<Vec<f32>>>> {
        Ok(match space {
            Space::Kind(kind) => self.store.vectors(kind, ids)?,
            Space::Blend { alpha } => {
                let text = self.store.vectors(VectorKind::Text, ids)?;
                let image = self.store.vectors(VectorKind::Image, ids)?;
                text.into_iter()
                    .zip(image)
                    .map(|(t, i)| Some(fuse(&t?, &i?, alpha)))
                    .collect()
            }
        })
    }

    /// A product id (or code) typed as the whole query: that product first, if it may
    /// be returned at all.
    fn pin_product(&self, hits: &mut Vec<Hit>, raw: &str, candidates: &Candidates) -> Result<()> {
        if raw.is_empty() || raw.contains(char::is_whitespace) {
            return Ok(());
        }
        let Some(product) = self.store.product(raw)? else {
            return Ok(());
        };
        if !candidates.admits(&product) {
            return Ok(());
        }
        hits.retain(|h| h.id != raw);
        let score = hits.first().map_or(1.0, |h| h.score);
        hits.insert(
            0,
            Hit {
                id: raw.to_string(),
                score,
            },
        );
        Ok(())
    }

    /// Products whose stored photo is the query photo itself (cosine with its own vector
    /// at least [`SAME_PHOTO`]) first, at that similarity, best first. A
    /// photo query ranks by the mean of its views (`query_views.rs`), which is near its
    /// own vector but not equal to it, so without this a shopper's upload of a catalogue
    /// photo would not be sure to find that very product first.
    fn pin_same_photo(
        &self,
        hits: &mut Vec<Hit>,
        photo: &[f32],
        candidates: &Candidates,
    ) -> Result<()> {
        let space = Space::Kind(VectorKind::Image);
        let same: Vec<Hit> = self
            .store
            .top_k(space, photo, SAME_PHOTO_MAX, candidates)?
            .into_iter()
            .filter(|h| h.score >= SAME_PHOTO)
            .collect();
        hits.retain(|h| same.iter().all(|s| s.id != h.id));
        hits.splice(0..0, same);
        Ok(())
    }

    /// "More like this": the products closest to a stored product, by its own stored
    /// vectors (no model needed; keyword and hybrid modes also match its title), the
    /// product itself left out; filters and diversification apply as in any search.
    /// `Ok(None)` when there is no such product.
    pub fn similar(&self, id: &str, ranking: &Ranking) -> Result<Option<Vec<ResultRow>>> {
        let Some(product) = self.store.product(id)? else {
            return Ok(None);
        };
        // The product's own vector in the mode's space (a blend of both, or none).
        let query = match ranking.vector_mode(self.store.meta()) {
            None => None,
            Some(mode) => {
                let space = ranking.space(mode)?;
                let vector = self.space_vectors(space, &[id])?.remove(0);
                if vector.is_none() && matches!(space, Space::Blend { .. }) {
                    return Ok(None);
                }
                vector
            }
        };
        // Keyword and hybrid modes also match the product's title (no operators, no id).
        let title = matches!(ranking.mode, Mode::Keyword | Mode::Hybrid).then(|| ParsedQuery {
            raw: String::new(),
            keywords: TextQuery::words(&product.product.text),
            embed_text: product.product.text.clone(),
        });
        let hits = self.rank_query(query.as_deref(), None, title.as_ref(), ranking, &[id])?;
        Ok(Some(self.rows(&hits, ranking.offset)?))
    }

    /// Query -> result rows for display. The text is parsed for phrases, exclusions and
    /// a product id ([`syntax`]); the model embeds it without those operators.
    pub fn search(&self, query: &Query, ranking: &Ranking) -> Result<Vec<ResultRow>> {
        // With a photo, the words modify the photo (boosts, phrases, exclusions) rather
        // than rank on their own: a BM25 list for "in black" is every title with "in"
        // or "black". Hybrid then ranks by its vector side.
        let photo_ranking;
        let ranking = if ranking.mode == Mode::Hybrid && query.image.is_some() {
            photo_ranking = Ranking {
                mode: Mode::default_vector_for(self.store.meta()),
                ..ranking.clone()
            };
            &photo_ranking
        } else {
            ranking
        };
        let mut text = query.text.as_deref().map(syntax::parse);
        if let (Mode::Hybrid, Some(t)) = (ranking.mode, &mut text) {
            // A misspelling misleads the text tower too: embed the corrected words.
            if let Some(corrected) = self.store.text_index()?.correct(&t.embed_text) {
                t.embed_text = corrected;
            }
        }
        let (vector, photo) = match ranking.vector_mode(self.store.meta()) {
            None => (None, None),
            Some(_) => {
                let (vector, photo) = self.embed_parts(
                    text.as_ref().map(|t| t.embed_text.as_str()),
                    query.image.as_ref(),
                    query.text_weight,
                )?;
                (Some(vector), photo)
            }
        };
        if ranking.mode == Mode::Keyword && query.image.is_some() {
            bail!(
                "keyword mode searches words only: search a photo in image, average or hybrid mode"
            );
        }
        let hits = self.rank_query(
            vector.as_deref(),
            photo.as_deref(),
            text.as_ref(),
            ranking,
            &[],
        )?;
        self.rows(&hits, ranking.offset)
    }

    /// What the words of a query text name in this catalogue (field values, boosted
    /// unless the ranking ignores their field), for the response's removable chips.
    pub fn understand(&self, text: &str, ranking: &Ranking) -> Result<Vec<Understood>> {
        if ranking.boost <= 0.0 || text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed = syntax::parse(text);
        let index = self.store.text_index()?;
        Ok(boosted_values(&index, &parsed.keywords.words, ranking))
    }

    /// Hits -> rows with the products' fields (a product deleted meanwhile is skipped),
    /// ranked from `offset + 1`.
    pub fn rows(&self, hits: &[Hit], offset: usize) -> Result<Vec<ResultRow>> {
        let mut rows = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(p) = self.store.product(&hit.id)? else {
                continue;
            };
            rows.push(ResultRow {
                rank: offset + rows.len() + 1,
                score: hit.score,
                id: p.product.id,
                title: p.product.text,
                broad: p.product.broad,
                fine: p.product.fine,
                attributes: p.product.attributes,
                has_image: p.has_image,
            });
        }
        Ok(rows)
    }
}
