//! The built-in text tower: all-MiniLM-L6-v2 (a 6-layer BERT) with sentence-transformers'
//! recipe: mean pooling over real tokens, then L2 norm.
//!
//! Two runtimes compute it from the same safetensors: ONNX Runtime on a graph that
//! `bert_onnx` writes (the default: about 2.5x faster on the CPUs measured, see the
//! README) and candle (no native library needed; the fallback when ONNX Runtime cannot
//! be loaded). Both reproduce sentence-transformers' vectors (tests/minilm_reference.rs).

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{Embeddings, TextEncoder};

/// sentence-transformers' `max_seq_length` for this model (sentence_bert_config.json).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass; sorted by length first so padding stays small.
pub(crate) const CANDLE_BATCH: usize = 128;

/// Environment variable choosing the text tower's runtime (`onnx`, `onnx-int8`, `candle`).
pub const TEXT_BACKEND_ENV: &str = "VITRINA_TEXT_BACKEND";

/// Which runtime computes the built-in text tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextBackend {
    /// candle, float32.
    Candle,
    /// ONNX Runtime, float32: the same vectors as candle, faster.
    Onnx,
    /// ONNX Runtime with int8 dense layers: faster still, but vectors move (cosine about
    /// 0.99 to float32; see the README), so never the default.
    OnnxInt8,
}

impl TextBackend {
    pub const ALL: [TextBackend; 3] = [
        TextBackend::Onnx,
        TextBackend::OnnxInt8,
        TextBackend::Candle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TextBackend::Candle => "candle",
            TextBackend::Onnx => "onnx",
            TextBackend::OnnxInt8 => "onnx-int8",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .with_context(|| {
                format!(
                    "unknown text backend `{name}`; expected one of {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    /// The backend `$VITRINA_TEXT_BACKEND` names, if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(TEXT_BACKEND_ENV) {
            Ok(name) if !name.is_empty() => Self::parse(&name)
                .map(Some)
                .with_context(|| format!("${TEXT_BACKEND_ENV}")),
            _ => Ok(None),
        }
    }
}

/// all-MiniLM-L6-v2 on the CPU.
pub struct MiniLm {
    runtime: Runtime,
    backend: TextBackend,
}

/// Both boxed: each is a kilobyte or two, and which is larger depends on the features
/// (candle's `Device` grows with `cuda`).
enum Runtime {
    Candle(Box<CandleBert>),
    #[cfg(feature = "onnx")]
    Onnx(Box<super::onnx::OnnxText>),
}

struct CandleBert {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
}

fn read_config(dir: &Path) -> Result<Config> {
    let config_path = dir.join("config.json");
    serde_json::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )
    .with_context(|| format!("{} is not a BERT config", config_path.display()))
}

fn read_tokenizer(dir: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", dir.join("tokenizer.json").display()))
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`, on the
    /// runtime `$VITRINA_TEXT_BACKEND` names; unset, on ONNX Runtime, or on candle with a
    /// warning when ONNX Runtime cannot be loaded (the vectors are the same, only slower).
    pub fn load(dir: &Path) -> Result<Self> {
        if let Some(backend) = TextBackend::from_env()? {
            return Self::load_with(dir, backend);
        }
        #[cfg(feature = "onnx")]
        match Self::load_with(dir, TextBackend::Onnx) {
            Ok(model) => return Ok(model),
            Err(why) => eprintln!(
                "warning: text encoding falls back to candle (slower, same vectors): {why:#}\n\
                 (set {TEXT_BACKEND_ENV}=candle to choose it and silence this)"
            ),
        }
        Self::load_with(dir, TextBackend::Candle)
    }

    /// Loads the model on the given runtime.
    pub fn load_with(dir: &Path, backend: TextBackend) -> Result<Self> {
        let runtime = match backend {
            TextBackend::Candle => Runtime::Candle(Box::new(CandleBert::load(dir)?)),
            #[cfg(feature = "onnx")]
            TextBackend::Onnx => Runtime::Onnx(Box::new(onnx_tower(
                dir,
                super::bert_onnx::Precision::F32,
            )?)),
            #[cfg(feature = "onnx")]
            TextBackend::OnnxInt8 => {
                Runtime::Onnx(Box::new(onnx_tower(
                    dir,
                    super::bert_onnx::Precision::Int8,
                )?))
            }
            #[cfg(not(feature = "onnx"))]
            TextBackend::Onnx | TextBackend::OnnxInt8 => anyhow::bail!(
                "text backend `{}` needs ONNX Runtime, but this vitrina was built without the `onnx` feature",
                backend.name()
            ),
        };
        Ok(MiniLm { runtime, backend })
    }

    /// The runtime computing the vectors.
    pub fn backend(&self) -> TextBackend {
        self.backend
    }
}

/// The ONNX Runtime tower: the BERT graph written from the same weights.
#[cfg(feature = "onnx")]
fn onnx_tower(dir: &Path, precision: super::bert_onnx::Precision) -> Result<super::onnx::OnnxText> {
    let config = read_config(dir)?;
    let weights_path = dir.join("model.safetensors");
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("cannot read {}", weights_path.display()))?;
    let graph = super::bert_onnx::sentence_encoder(&weights, &config, precision)
        .with_context(|| format!("{} does not hold BERT weights", weights_path.display()))?;
    drop(weights);
    let session = super::onnx::session_from_memory(&graph, "the generated all-MiniLM-L6-v2 graph")?;
    super::onnx::OnnxText::from_session(
        session,
        read_tokenizer(dir)?,
        MODEL_ID,
        MAX_TOKENS,
        &weights_path,
    )
}

/// The id recorded in indexes: every runtime computes the same model.
const MODEL_ID: &str = "all-MiniLM-L6-v2";

impl CandleBert {
    fn load(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        let mut tokenizer = read_tokenizer(dir)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is only read; it must not be modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .with_context(|| format!("cannot map {}", weights.display()))?;
        let model = BertModel::load(vb, &config)
            .with_context(|| format!("{} does not hold BERT weights", weights.display()))?;
        Ok(CandleBert {
            model,
            tokenizer,
            device,
            dim: config.hidden_size,
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<(Vec<f32>, usize)> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenisation failed: {e}"))?;
        let truncated = encodings
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        let len = encodings[0].get_ids().len();
        let ids: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_ids().to_vec())
            .collect();
        let mask: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let n = texts.len();
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens only: padding must not pull short titles toward zero.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let mut vectors = mean.flatten_all()?.to_vec1::<f32>()?;
        super::normalize_rows(&mut vectors, self.dim);
        Ok((vectors, truncated))
    }
}

impl TextEncoder for MiniLm {
    fn model_id(&self) -> &str {
        MODEL_ID
    }

    fn dim(&self) -> usize {
        match &self.runtime {
            Runtime::Candle(bert) => bert.dim,
            #[cfg(feature = "onnx")]
            Runtime::Onnx(text) => text.dim(),
        }
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> {
        match &self.runtime {
            Runtime::Candle(bert) => bert.embed_texts(texts),
            #[cfg(feature = "onnx")]
            Runtime::Onnx(text) => text.embed_texts(texts),
        }
    }
}

impl CandleBert {
    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![0f32; texts.len() * self.dim];
        let mut truncated = 0;
        for chunk in order.chunks(CANDLE_BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let (out, cut) = self.embed_batch(&batch)?;
            truncated += cut;
            for (row, &i) in out.chunks_exact(self.dim).zip(chunk) {
                vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(row);
            }
        }
        Ok(Embeddings { vectors, truncated })
    }
}
