//! Encoders put text and images into one vector space. Each model backend implements
//! the same two traits, so the index and search never know which model made a vector.

mod assets;
mod minilm;

pub use assets::{cache_dir, minilm_dir, MINILM_ENV, MINILM_PACKAGE};
pub use minilm::MiniLm;

use std::path::Path;

use anyhow::Result;

/// Vectors for a batch of inputs: row-major `count x dim`, each row L2-normalised.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    pub vectors: Vec<f32>,
    /// How many inputs were longer than the model's limit and were cut.
    pub truncated: usize,
}

/// Turns texts into vectors of the shared space.
pub trait TextEncoder: Send + Sync {
    /// Identifies the model, so an index refuses queries embedded by another.
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings>;
}

/// L2-normalises each `dim`-long row in place; zero rows stay zero.
pub fn normalize_rows(vectors: &mut [f32], dim: usize) {
    for row in vectors.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// The model an index is built with: a text tower, and an image tower in the same space.
pub struct Model {
    pub text: Box<dyn TextEncoder>,
}

impl Model {
    /// The built-in model; `model_dir` overrides where the MiniLM files are.
    pub fn builtin(model_dir: Option<&Path>) -> Result<Self> {
        let dir = minilm_dir(model_dir)?;
        Ok(Model {
            text: Box::new(MiniLm::load(&dir)?),
        })
    }

    /// The id recorded in an index, so queries are embedded by the same model.
    pub fn id(&self) -> String {
        self.text.model_id().to_string()
    }

    pub fn dim(&self) -> usize {
        self.text.dim()
    }
}
