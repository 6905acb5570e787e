//! The built-in text tower: all-MiniLM-L6-v2 (a 6-layer BERT) run with candle, with
//! sentence-transformers' recipe: mean pooling over real tokens, then L2 norm.

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
const BATCH: usize = 128;

/// all-MiniLM-L6-v2 on the CPU.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("cannot read {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not a BERT config", config_path.display()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
            anyhow::anyhow!("cannot load {}: {e}", dir.join("tokenizer.json").display())
        })?;
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
        Ok(MiniLm {
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
        "all-MiniLM-L6-v2"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![0f32; texts.len() * self.dim];
        let mut truncated = 0;
        for chunk in order.chunks(BATCH) {
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
