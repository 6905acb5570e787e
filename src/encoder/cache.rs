//! A disk cache of text vectors. Training and evaluation embed the same titles many
//! times; MiniLM costs minutes for a whole catalogue on two cores, a cache hit
//! milliseconds. Keyed by a hash of the model id and every text, so any change to
//! either misses.

use std::path::PathBuf;

use anyhow::Result;

use super::{cache_dir, Embeddings, TextEncoder};
use crate::catalog::fnv1a64;

fn cache_file(model: &str, texts: &[&str]) -> PathBuf {
    let mut key = Vec::new();
    key.extend_from_slice(model.as_bytes());
    for t in texts {
        key.push(0);
        key.extend_from_slice(t.as_bytes());
    }
    cache_dir()
        .join("text-vectors")
        .join(format!("{:016x}-{}.f32", fnv1a64(&key), texts.len()))
}

/// Embeds `texts` with `encoder`, reusing vectors cached by an earlier identical call.
/// `on_batch` is told how many texts each computed batch held (for a progress bar).
///
/// Cache file: the truncation count as u64 little-endian, then the vectors as f32.
pub fn embed_texts_cached(
    encoder: &dyn TextEncoder,
    texts: &[&str],
    mut on_batch: impl FnMut(usize),
) -> Result<Embeddings> {
    let path = cache_file(encoder.model_id(), texts);
    let want = 8 + texts.len() * encoder.dim() * 4;
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == want {
            on_batch(texts.len());
            return Ok(Embeddings {
                truncated: u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize,
                vectors: bytemuck::pod_collect_to_vec(&bytes[8..]),
            });
        }
    }
    let mut out = Embeddings {
        vectors: Vec::with_capacity(texts.len() * encoder.dim()),
        truncated: 0,
    };
    for chunk in texts.chunks(512) {
        let batch = encoder.embed_texts(chunk)?;
        out.vectors.extend(batch.vectors);
        out.truncated += batch.truncated;
        on_batch(chunk.len());
    }
    // The cache is an optimisation: failing to write it must not fail the command.
    if let Some(dir) = path.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            if let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) {
                let mut bytes = (out.truncated as u64).to_le_bytes().to_vec();
                bytes.extend_from_slice(bytemuck::cast_slice(&out.vectors));
                if std::fs::write(tmp.path(), bytes).is_ok() {
                    let _ = tmp.persist(&path);
                }
            }
        }
    }
    Ok(out)
}
