//! Search: turns a query into a vector with the index's model, and ranks products by
//! the chosen vector kind.

use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::Serialize;

use crate::encoder::Model;
use crate::index::{top_k, Index, VectorKind};

/// Which product vectors a query is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Query -> product text vectors.
    Description,
    /// Query -> product image vectors (cross-modal for a text query).
    Image,
    /// Query -> the normalised average of text and image vectors.
    Average,
}

impl Mode {
    pub fn kind(self) -> VectorKind {
        match self {
            Mode::Description => VectorKind::Text,
            Mode::Image => VectorKind::Image,
            Mode::Average => VectorKind::Average,
        }
    }
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

/// Searches one index with the model that built it.
pub struct Searcher<'a> {
    pub index: &'a Index,
    pub model: &'a Model,
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
        Ok(Searcher { index, model })
    }

    /// The query vector of a text.
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.model.text.embed_texts(&[text])?.vectors)
    }

    /// Ranks products by `mode` against a query vector; `exclude` drops a product
    /// (evaluation excludes the query's own product).
    pub fn rank(
        &self,
        query: &[f32],
        mode: Mode,
        k: usize,
        exclude: Option<usize>,
    ) -> Result<Vec<crate::index::Hit>> {
        let kind = mode.kind();
        let Some(vectors) = self.index.vectors(kind) else {
            bail!(
                "this index has no {kind:?} vectors (it holds {:?}); {}",
                self.index.kinds(),
                match mode {
                    Mode::Description => "rebuild it",
                    _ =>
                        "the catalogue has no images, or the index was built without an image tower",
                }
            );
        };
        let products = &self.index.header.products;
        let image_only = mode == Mode::Image;
        Ok(top_k(vectors, self.index.dim(), query, k, |i| {
            Some(i) != exclude && (!image_only || products[i].has_image)
        }))
    }

    /// Text query -> top k rows for display.
    pub fn search_text(&self, text: &str, mode: Mode, k: usize) -> Result<Vec<ResultRow>> {
        let query = self.embed_text(text)?;
        let hits = self.rank(&query, mode, k, None)?;
        Ok(hits
            .iter()
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
            .collect())
    }
}
