//! Search: turns a query (text, image, or both) into a vector with the store's own
//! model, ranks products by the chosen vectors, and optionally diversifies the list.

pub mod diversify;
pub mod keyword;

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Result};
use clap::ValueEnum;
use image::DynamicImage;
use serde::Serialize;

pub use diversify::Diversify;

use crate::encoder::{fuse, Model};
use crate::store::{Candidates, Filter, Hit, Method, Space, Store, StoreMeta, VectorKind};

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
}

/// Results per query unless the caller says otherwise: the CLI, the server and the page
/// share it, so one query gives one answer everywhere.
pub const DEFAULT_K: usize = 10;
/// The most results one query may ask for.
pub const MAX_K: usize = 200;

/// `k` if it is within 1..=[`MAX_K`].
pub fn check_k(k: usize) -> Result<usize> {
    ensure!(
        (1..=MAX_K).contains(&k),
        "k must be within 1..={MAX_K} (got {k})"
    );
    Ok(k)
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Description, Mode::Image, Mode::Average];

    /// The mode used when none is asked for: average, the best on every catalogue
    /// measured (README, the reference experiment), where the index has image vectors;
    /// description on a text-only index.
    pub fn default_for(meta: &StoreMeta) -> Mode {
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
            other => bail!("unknown mode {other:?}: use description, image or average"),
        }
    }

    pub fn kind(self) -> VectorKind {
        match self {
            Mode::Description => VectorKind::Text,
            Mode::Image => VectorKind::Image,
            Mode::Average => VectorKind::Average,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Description => "description",
            Mode::Image => "image",
            Mode::Average => "average",
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
}

impl Ranking {
    pub fn new(mode: Mode, k: usize) -> Self {
        Ranking {
            mode,
            k,
            alpha: 0.5,
            diversify: Diversify::None,
            filter: Filter::default(),
            method: Method::Auto,
            ef_search: None,
        }
    }

    /// A ranking of the index described by `meta` with the defaults every front end
    /// shares: no mode given -> [`Mode::default_for`]; `k` checked by [`check_k`].
    pub fn for_index(meta: &StoreMeta, mode: Option<Mode>, k: usize) -> Result<Self> {
        let mode = mode.unwrap_or_else(|| Mode::default_for(meta));
        Ok(Ranking::new(mode, check_k(k)?))
    }

    /// The vector space this ranking compares queries with.
    pub fn space(&self) -> Result<Space> {
        if self.mode == Mode::Average && (self.alpha - 0.5).abs() > 1e-6 {
            ensure!(
                (0.0..=1.0).contains(&self.alpha),
                "alpha must be within 0..1"
            );
            return Ok(Space::Blend { alpha: self.alpha });
        }
        Ok(Space::Kind(self.mode.kind()))
    }
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

    fn model(&self) -> Result<&'a Model> {
        self.model
            .ok_or_else(|| anyhow::anyhow!("this searcher has no model to embed new queries"))
    }

    /// The query's vector: the text's, the image's, or their weighted fusion.
    pub fn embed(&self, query: &Query) -> Result<Vec<f32>> {
        let text = match &query.text {
            Some(t) if !t.trim().is_empty() => Some(self.model()?.embed_query(t)?),
            _ => None,
        };
        let image = match &query.image {
            Some(img) => Some(
                self.model()?
                    .image_encoder()?
                    .embed_images(std::slice::from_ref(img))?
                    .vectors,
            ),
            None => None,
        };
        match (text, image) {
            (Some(t), Some(i)) => {
                ensure!(
                    (0.0..=1.0).contains(&query.text_weight),
                    "text weight must be within 0..1"
                );
                Ok(fuse(&t, &i, query.text_weight))
            }
            (Some(v), None) | (None, Some(v)) => Ok(v),
            (None, None) => bail!("the query is empty: give a text, an image, or both"),
        }
    }

    /// Ranks products against a query vector; `exclude` drops products (evaluation
    /// excludes the query's own).
    pub fn rank(&self, query: &[f32], ranking: &Ranking, exclude: &[&str]) -> Result<Vec<Hit>> {
        let pool = if ranking.diversify == Diversify::None {
            ranking.k
        } else {
            ranking.k.max(diversify::POOL)
        };
        if !ranking.filter.is_empty() {
            ranking.filter.check(&*self.store.facets()?)?;
        }
        let candidates = Candidates {
            exclude,
            with_image_only: ranking.mode == Mode::Image,
            filter: (!ranking.filter.is_empty()).then_some(&ranking.filter),
            method: ranking.method,
            ef_search: ranking.ef_search,
        };
        let space = ranking.space()?;
        let needed = match space {
            Space::Kind(kind) => vec![kind],
            Space::Blend { .. } => vec![VectorKind::Text, VectorKind::Image],
        };
        let meta = self.store.meta();
        for kind in needed {
            ensure!(
                meta.kinds.contains(&kind),
                "this index has no {kind:?} vectors (it holds {:?}): the catalogue `{}` has no images, \
                 or it was indexed without an image tower",
                meta.kinds,
                meta.catalog
            );
        }
        let hits = self.store.top_k(space, query, pool, &candidates)?;
        let mut hits = match ranking.diversify {
            Diversify::None => hits,
            method => {
                ensure!(
                    self.store.meta().kinds.contains(&VectorKind::Image),
                    "diversification needs image vectors; this index has none"
                );
                let n = hits.len().min(diversify::POOL);
                let ids: Vec<&str> = hits[..n].iter().map(|h| h.id.as_str()).collect();
                let dim = self.store.meta().dim;
                let vectors: Vec<Vec<f32>> = self
                    .store
                    .vectors(VectorKind::Image, &ids)?
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| vec![0.0; dim]))
                    .collect();
                method.apply(&hits, |i| vectors[i].as_slice())
            }
        };
        hits.truncate(ranking.k);
        Ok(hits)
    }

    /// "More like this": the products closest to a stored product, by its own stored
    /// vectors (no model needed), the product itself left out; filters and
    /// diversification apply as in any search. `Ok(None)` when there is no such product.
    pub fn similar(&self, id: &str, ranking: &Ranking) -> Result<Option<Vec<ResultRow>>> {
        // The product's own vectors; none for an unknown id (one lookup, no separate
        // existence check).
        let vector = |kind: VectorKind| -> Result<Option<Vec<f32>>> {
            Ok(self.store.vectors(kind, &[id])?.remove(0))
        };
        let query = match ranking.space()? {
            Space::Kind(kind) => vector(kind)?,
            Space::Blend { alpha } => match (vector(VectorKind::Text)?, vector(VectorKind::Image)?)
            {
                (Some(t), Some(i)) => Some(fuse(&t, &i, alpha)),
                _ => None,
            },
        };
        let Some(query) = query else {
            return Ok(None);
        };
        let hits = self.rank(&query, ranking, &[id])?;
        Ok(Some(self.rows(&hits)?))
    }

    /// Query -> result rows for display.
    pub fn search(&self, query: &Query, ranking: &Ranking) -> Result<Vec<ResultRow>> {
        let vector = self.embed(query)?;
        let hits = self.rank(&vector, ranking, &[])?;
        self.rows(&hits)
    }

    /// Hits -> rows with the products' fields (a product deleted meanwhile is skipped).
    pub fn rows(&self, hits: &[Hit]) -> Result<Vec<ResultRow>> {
        let mut rows = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(p) = self.store.product(&hit.id)? else {
                continue;
            };
            rows.push(ResultRow {
                rank: rows.len() + 1,
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
