//! Search: turns a query (text, image, or both) into a vector with the index's own
//! model, ranks products by the chosen vectors, and optionally diversifies the list.

pub mod diversify;
pub mod keyword;

use std::borrow::Cow;

use anyhow::{bail, ensure, Result};
use clap::ValueEnum;
use image::DynamicImage;
use serde::Serialize;

pub use diversify::Diversify;

use crate::encoder::{fuse, fuse_rows, Model};
use crate::index::{top_k, Hit, Index, VectorKind};

/// Which product vectors a query is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
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

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Description, Mode::Image, Mode::Average];

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
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub rank: usize,
    pub score: f32,
    pub id: String,
    pub title: String,
    pub broad: Option<String>,
    pub fine: Option<String>,
}

/// How to rank: which vectors, how many, and the list's post-processing.
#[derive(Debug, Clone, Copy)]
pub struct Ranking {
    pub mode: Mode,
    pub k: usize,
    /// Text weight of the product-side fusion in `average` mode; 0.5 is the stored
    /// average vector (the reference's equal weights).
    pub alpha: f32,
    pub diversify: Diversify,
}

impl Ranking {
    pub fn new(mode: Mode, k: usize) -> Self {
        Ranking {
            mode,
            k,
            alpha: 0.5,
            diversify: Diversify::None,
        }
    }
}

/// Searches one index with the model that built it.
pub struct Searcher<'a> {
    pub index: &'a Index,
    /// Needed only to embed new queries; ranking by stored vectors works without it.
    model: Option<&'a Model>,
}

impl<'a> Searcher<'a> {
    /// Pairs an index with a model, refusing a model other than the index's own: vectors
    /// from two models live in different spaces and their scores mean nothing together.
    pub fn new(index: &'a Index, model: &'a Model) -> Result<Self> {
        if index.header.model != model.id() || index.dim() != model.dim() {
            bail!(
                "this index was built with model `{}` ({}-d), but the query model is `{}` ({}-d); \
                 search with the index's model or rebuild the index",
                index.header.model,
                index.dim(),
                model.id(),
                model.dim()
            );
        }
        Ok(Searcher {
            index,
            model: Some(model),
        })
    }

    /// A searcher that ranks by query vectors taken from the index itself (evaluation),
    /// so it needs no model.
    pub fn stored_vectors_only(index: &'a Index) -> Self {
        Searcher { index, model: None }
    }

    fn model(&self) -> Result<&'a Model> {
        self.model
            .ok_or_else(|| anyhow::anyhow!("this searcher has no model to embed new queries"))
    }

    /// The query's vector: the text's, the image's, or their weighted fusion.
    pub fn embed(&self, query: &Query) -> Result<Vec<f32>> {
        let text = match &query.text {
            Some(t) if !t.trim().is_empty() => Some(self.model()?.text.embed_texts(&[t])?.vectors),
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

    /// The product vectors a mode ranks by. Average mode with `alpha != 0.5` fuses
    /// text and image vectors on the fly.
    pub fn product_vectors(&self, mode: Mode, alpha: f32) -> Result<Cow<'a, [f32]>> {
        let index = self.index;
        let missing = |kind: VectorKind| {
            anyhow::anyhow!(
                "this index has no {kind:?} vectors (it holds {:?}): the catalogue `{}` has no images, \
                 or the index was built without an image tower",
                index.kinds(),
                index.header.catalog
            )
        };
        if mode == Mode::Average && (alpha - 0.5).abs() > 1e-6 {
            ensure!((0.0..=1.0).contains(&alpha), "alpha must be within 0..1");
            let text = index
                .vectors(VectorKind::Text)
                .ok_or_else(|| missing(VectorKind::Text))?;
            let image = index
                .vectors(VectorKind::Image)
                .ok_or_else(|| missing(VectorKind::Image))?;
            return Ok(Cow::Owned(fuse_rows(text, image, index.dim(), alpha)));
        }
        let kind = mode.kind();
        index
            .vectors(kind)
            .map(Cow::Borrowed)
            .ok_or_else(|| missing(kind))
    }

    /// Ranks products against a query vector over precomputed product vectors;
    /// `exclude` drops one product (evaluation excludes the query's own).
    pub fn rank_over(
        &self,
        vectors: &[f32],
        query: &[f32],
        ranking: &Ranking,
        exclude: Option<usize>,
    ) -> Result<Vec<Hit>> {
        let products = &self.index.header.products;
        let image_only = ranking.mode == Mode::Image;
        let pool = if ranking.diversify == Diversify::None {
            ranking.k
        } else {
            ranking.k.max(diversify::POOL)
        };
        let hits = top_k(vectors, self.index.dim(), query, pool, |i| {
            Some(i) != exclude && (!image_only || products[i].has_image)
        });
        let mut hits = match ranking.diversify {
            Diversify::None => hits,
            method => {
                let image = self.index.vectors(VectorKind::Image).ok_or_else(|| {
                    anyhow::anyhow!("diversification needs image vectors; this index has none")
                })?;
                let d = self.index.dim();
                method.apply(&hits, |i| &image[i * d..(i + 1) * d])
            }
        };
        hits.truncate(ranking.k);
        Ok(hits)
    }

    /// Ranks products against a query vector.
    pub fn rank(
        &self,
        query: &[f32],
        ranking: &Ranking,
        exclude: Option<usize>,
    ) -> Result<Vec<Hit>> {
        let vectors = self.product_vectors(ranking.mode, ranking.alpha)?;
        self.rank_over(&vectors, query, ranking, exclude)
    }

    /// Query -> result rows for display.
    pub fn search(&self, query: &Query, ranking: &Ranking) -> Result<Vec<ResultRow>> {
        let vector = self.embed(query)?;
        let hits = self.rank(&vector, ranking, None)?;
        Ok(self.rows(&hits))
    }

    /// Hits -> rows with the products' fields.
    pub fn rows(&self, hits: &[Hit]) -> Vec<ResultRow> {
        hits.iter()
            .enumerate()
            .map(|(r, hit)| {
                let p = &self.index.product(hit.index).product;
                ResultRow {
                    rank: r + 1,
                    score: hit.score,
                    id: p.id.clone(),
                    title: p.text.clone(),
                    broad: p.broad.clone(),
                    fine: p.fine.clone(),
                }
            })
            .collect()
    }
}
