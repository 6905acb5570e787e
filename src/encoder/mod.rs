//! Encoders put text and images into one vector space. Each model backend implements
//! the same two traits, so the index and search never know which model made a vector.

mod assets;
pub mod backdrop;
#[cfg(feature = "onnx")]
mod bert_onnx;
mod builtin;
mod cache;
pub(crate) mod gelu;
#[cfg(feature = "hub")]
pub mod hub;
mod image_tower;
mod minilm;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx")]
mod onnx_proto;
pub mod preprocess;
mod query_batch;
mod query_cache;
pub mod query_views;
mod tower_dir;

pub use assets::{cache_dir, minilm_dir, MINILM_ENV, MINILM_PACKAGE};
pub use builtin::{builtin_tower, BUILTIN_CARD, BUILTIN_TOWER_NAME, BUILTIN_WEIGHTS};
pub use cache::{embed_texts_cached, set_text_cache};
pub use image_tower::{l2_normalize, ImageTower, TowerConfig, TowerNet};
pub(crate) use minilm::CANDLE_BATCH;
pub use minilm::{MiniLm, TextBackend, TEXT_BACKEND_ENV};
pub use query_batch::{QueryBatcher, MAX_BATCH as MAX_QUERY_BATCH};
pub use query_cache::QueryCache;
pub use tower_dir::{
    is_tower_dir, load_tower_dir, read_tower_dir, tower_id, CARD_FILE, WEIGHTS_FILE,
};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::DynamicImage;

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

/// Turns decoded images into vectors of the same space as its paired text encoder.
/// Each model preprocesses in its own way (`pixels`); batching is shared.
pub trait ImageEncoder: Send + Sync {
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    /// One image as the model's input tensor, flattened.
    fn pixels(&self, image: &DynamicImage) -> Vec<f32>;
    /// Embeds preprocessed images (`pixels` outputs, concatenated); rows L2-normalised.
    fn embed_pixels(&self, pixels: &[f32]) -> Result<Vec<f32>>;
    /// Preprocesses the images in parallel, then embeds them in batches.
    fn embed_images(&self, images: &[DynamicImage]) -> Result<Embeddings> {
        use rayon::prelude::*;
        let pixels: Vec<f32> = images
            .par_iter()
            .flat_map_iter(|img| self.pixels(img))
            .collect();
        Ok(Embeddings {
            vectors: self.embed_pixels(&pixels)?,
            truncated: 0,
        })
    }
    /// The vectors of a photo a shopper searches with: its own, as indexing stores a
    /// photo's, and, from an encoder cheap enough to look at it several ways, the mean
    /// of its views ([`query_views`]).
    fn embed_query_image(&self, image: &DynamicImage) -> Result<query_views::PhotoQuery> {
        Ok(query_views::PhotoQuery {
            own: self.embed_images(std::slice::from_ref(image))?.vectors,
            views: None,
        })
    }
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

/// `normalise(w * a + (1 - w) * b)`: the fused vector of two unit vectors.
pub fn fuse(a: &[f32], b: &[f32], w: f32) -> Vec<f32> {
    let mut v: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(x, y)| w * x + (1.0 - w) * y)
        .collect();
    normalize_rows(&mut v, a.len());
    v
}

/// [`fuse`] applied row by row to two `dim`-wide matrices.
pub fn fuse_rows(a: &[f32], b: &[f32], dim: usize, w: f32) -> Vec<f32> {
    a.chunks_exact(dim)
        .zip(b.chunks_exact(dim))
        .flat_map(|(x, y)| fuse(x, y, w))
        .collect()
}

/// The model an index is built with: a text tower, and an image tower in the same space.
pub struct Model {
    pub text: Box<dyn TextEncoder>,
    pub image: Option<Box<dyn ImageEncoder>>,
    id: String,
    /// The folder of a model that lives outside the binary (ONNX exports).
    source: Option<PathBuf>,
    /// Vectors of text queries seen before (`serve` keeps one; batch work does not).
    query_cache: Option<QueryCache>,
    /// Text queries asked at the same time are encoded in one batch.
    query_batcher: QueryBatcher,
}

impl Model {
    /// Pairs two towers; they must share the output dimension.
    pub fn new(text: Box<dyn TextEncoder>, image: Option<Box<dyn ImageEncoder>>) -> Result<Self> {
        let id = match &image {
            Some(img) => {
                anyhow::ensure!(
                    img.dim() == text.dim(),
                    "image tower `{}` is {}-d but text tower `{}` is {}-d",
                    img.model_id(),
                    img.dim(),
                    text.model_id(),
                    text.dim()
                );
                if img.model_id() == text.model_id() {
                    text.model_id().to_string()
                } else {
                    format!("{}+{}", text.model_id(), img.model_id())
                }
            }
            None => text.model_id().to_string(),
        };
        Ok(Model {
            text,
            image,
            id,
            source: None,
            query_cache: None,
            query_batcher: QueryBatcher::default(),
        })
    }

    /// The built-in model: all-MiniLM-L6-v2 and the image tower trained by `vitrina
    /// train`, whose weights are compiled into the binary. `model_dir` overrides where
    /// the MiniLM files are.
    pub fn builtin(model_dir: Option<&Path>) -> Result<Self> {
        let dir = minilm_dir(model_dir)?;
        let text = MiniLm::load(&dir)?;
        let tower = builtin_tower().context("the built-in image tower does not load")?;
        Model::new(Box::new(text), Some(Box::new(tower)))
    }

    /// A model from a folder: an ONNX CLIP export (jina-clip layout: `onnx/text_model.onnx`,
    /// `onnx/vision_model.onnx`, `tokenizer.json`, `preprocessor_config.json`), an image
    /// tower trained by `vitrina train` (its `--out` folder: `card.json`,
    /// `image_tower.safetensors`; paired with the built-in MiniLM), or the MiniLM files
    /// of the built-in model.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if looks_like_onnx(dir) {
            return Self::onnx(dir);
        }
        if is_tower_dir(dir) {
            let text = MiniLm::load(&minilm_dir(None)?)?;
            let tower = load_tower_dir(dir)?;
            let mut model = Model::new(Box::new(text), Some(Box::new(tower)))?;
            model.source = Some(dir.to_path_buf());
            return Ok(model);
        }
        Self::builtin(Some(dir))
    }

    /// A model by name: `builtin`, or a CLIP export kept in the cache under
    /// `models/NAME` (e.g. `jina-clip-v1`).
    pub fn named(name: &str) -> Result<Self> {
        if name == "builtin" {
            return Self::builtin(None);
        }
        let dir = named_model_dir(name);
        #[cfg(feature = "onnx")]
        if onnx::check_model_dir(&dir).is_err() {
            #[cfg(feature = "hub")]
            let fetched = hub::fetch(name, &dir);
            #[cfg(not(feature = "hub"))]
            let fetched: Result<()> = Err(anyhow::anyhow!(
                "this vitrina was built without the `hub` feature"
            ));
            if let Err(why) = fetched {
                let missing = onnx::check_model_dir(&dir).unwrap_err();
                return Err(missing.context(format!(
                    "model `{name}` is not in the cache and could not be downloaded ({why:#})"
                )));
            }
        }
        Self::onnx(&dir)
    }

    #[cfg(feature = "onnx")]
    fn onnx(dir: &Path) -> Result<Self> {
        onnx::check_model_dir(dir)?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "onnx-model".into());
        let id = format!("onnx:{name}");
        let text = onnx::OnnxText::load(dir, &id)?;
        let image = onnx::OnnxVision::load(dir, &id)?;
        let mut model = Model::new(Box::new(text), Some(Box::new(image)))?;
        model.source = Some(dir.to_path_buf());
        Ok(model)
    }

    #[cfg(not(feature = "onnx"))]
    fn onnx(dir: &Path) -> Result<Self> {
        anyhow::bail!(
            "{} holds an ONNX model, but this vitrina was built without the `onnx` feature",
            dir.display()
        )
    }

    /// Keeps the vectors of up to `capacity` distinct text queries (0: none).
    pub fn with_query_cache(mut self, capacity: usize) -> Self {
        self.query_cache = std::num::NonZeroUsize::new(capacity).map(QueryCache::new);
        self
    }

    /// The query cache, if this model keeps one.
    pub fn query_cache(&self) -> Option<&QueryCache> {
        self.query_cache.as_ref()
    }

    /// Encodes at most `max_batch` text queries asked at the same time in one run (1:
    /// each alone).
    pub fn with_query_batch(mut self, max_batch: usize) -> Self {
        self.query_batcher = QueryBatcher::new(max_batch);
        self
    }

    /// Batches of text queries encoded together, for the server's figures.
    pub fn query_batcher(&self) -> &QueryBatcher {
        &self.query_batcher
    }

    /// One text query's vector, from the query cache when it has been seen before, else
    /// encoded in one batch with the queries asked at the same time.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let embed = || self.query_batcher.embed(text, self.text.as_ref());
        match &self.query_cache {
            Some(cache) => cache.get_or_embed(text, embed),
            None => embed(),
        }
    }

    /// The id recorded in an index, so queries are embedded by the same model.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dim(&self) -> usize {
        self.text.dim()
    }

    /// The folder the model was loaded from, if it lives outside the binary.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The image tower, or an error saying this model has none.
    pub fn image_encoder(&self) -> Result<&dyn ImageEncoder> {
        self.image
            .as_deref()
            .with_context(|| format!("model `{}` has no image tower", self.id))
    }
}

fn looks_like_onnx(dir: &Path) -> bool {
    dir.join("onnx").is_dir()
}

/// Where a named model lives in the cache.
pub fn named_model_dir(name: &str) -> PathBuf {
    cache_dir().join("models").join(name)
}
