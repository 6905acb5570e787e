//! A disk cache of text vectors, keyed per text. Training, evaluation and indexing
//! embed the same titles many times; MiniLM costs minutes for a whole catalogue on two
//! cores, a cache hit nothing. One file per model, of fixed-size records appended as
//! vectors are computed, so an interrupted run keeps what it computed and an edited
//! catalogue re-embeds only its changed titles.
//!
//! Record: FNV-1a of the text (u64), whether the text was cut (u32), the vector (f32 x
//! dim), little-endian. A torn last record (a crash mid-append) is ignored. The cache is
//! an optimisation: failing to read or write it never fails a command.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::Result;

use super::{cache_dir, Embeddings, TextEncoder};
use crate::catalog::fnv1a64;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the cache off (or on) for this process: benchmarks of a full build must embed
/// every title, not read it back.
pub fn set_text_cache(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

struct ModelCache {
    vectors: HashMap<u64, (bool, Vec<f32>)>,
}

fn cache_file(model: &str, dim: usize) -> PathBuf {
    cache_dir()
        .join("text-vectors")
        .join(format!("{:016x}-{dim}.vectors", fnv1a64(model.as_bytes())))
}

fn record_len(dim: usize) -> usize {
    12 + dim * 4
}

fn load(model: &str, dim: usize) -> ModelCache {
    let mut vectors = HashMap::new();
    if let Ok(bytes) = std::fs::read(cache_file(model, dim)) {
        for rec in bytes.chunks_exact(record_len(dim)) {
            let key = u64::from_le_bytes(rec[..8].try_into().unwrap());
            let cut = u32::from_le_bytes(rec[8..12].try_into().unwrap()) != 0;
            vectors.insert(key, (cut, bytemuck::pod_collect_to_vec(&rec[12..])));
        }
    }
    ModelCache { vectors }
}

fn caches() -> &'static Mutex<HashMap<String, ModelCache>> {
    static CACHES: OnceLock<Mutex<HashMap<String, ModelCache>>> = OnceLock::new();
    CACHES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn key(model: &str, text: &str) -> u64 {
    let mut k = model.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(text.as_bytes());
    fnv1a64(&k)
}

fn append(model: &str, dim: usize, records: &[(u64, bool, &[f32])]) {
    let path = cache_file(model, dim);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut bytes = Vec::with_capacity(records.len() * record_len(dim));
    for (key, cut, v) in records {
        bytes.extend_from_slice(&key.to_le_bytes());
        bytes.extend_from_slice(&u32::from(*cut).to_le_bytes());
        bytes.extend_from_slice(bytemuck::cast_slice(v));
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        // A file whose length is not a whole number of records holds a torn record from
        // a crash; pad it out so later records stay aligned (the padded one is ignored
        // as garbage with a key no text hashes to in practice).
        let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let rem = len % record_len(dim);
        if rem != 0 {
            let _ = f.write_all(&vec![0u8; record_len(dim) - rem]);
        }
        let _ = f.write_all(&bytes);
    }
}

/// Embeds `texts` with `encoder`, reusing vectors cached for the same model and text.
/// `on_batch` is told how many texts each step covered (for a progress bar).
pub fn embed_texts_cached(
    encoder: &dyn TextEncoder,
    texts: &[&str],
    mut on_batch: impl FnMut(usize),
) -> Result<Embeddings> {
    if !ENABLED.load(Ordering::Relaxed) {
        let out = encoder.embed_texts(texts)?;
        on_batch(texts.len());
        return Ok(out);
    }
    let model = encoder.model_id().to_string();
    let dim = encoder.dim();
    let keys: Vec<u64> = texts.iter().map(|t| key(&model, t)).collect();
    let mut found: Vec<Option<(bool, Vec<f32>)>> = {
        let mut all = caches().lock().unwrap_or_else(|e| e.into_inner());
        let cache = all
            .entry(model.clone())
            .or_insert_with(|| load(&model, dim));
        keys.iter().map(|k| cache.vectors.get(k).cloned()).collect()
    };
    let hits = found.iter().filter(|f| f.is_some()).count();
    if hits > 0 {
        on_batch(hits);
    }
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| found[i].is_none()).collect();
    for chunk in missing.chunks(512) {
        let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let batch = encoder.embed_texts(&batch_texts)?;
        // Which texts were cut is not reported per text; attribute the count to the
        // longest ones, as the tokenizer cuts by length.
        let mut by_len: Vec<usize> = (0..chunk.len()).collect();
        by_len.sort_by_key(|&j| std::cmp::Reverse(batch_texts[j].len()));
        let cut: std::collections::HashSet<usize> =
            by_len.into_iter().take(batch.truncated).collect();
        let mut records = Vec::with_capacity(chunk.len());
        for (j, &i) in chunk.iter().enumerate() {
            let v = batch.vectors[j * dim..(j + 1) * dim].to_vec();
            found[i] = Some((cut.contains(&j), v));
        }
        for &i in chunk {
            let (c, v) = found[i].as_ref().unwrap();
            records.push((keys[i], *c, v.as_slice()));
        }
        append(&model, dim, &records);
        let mut all = caches().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = all.get_mut(&model) {
            for (k, c, v) in &records {
                cache.vectors.insert(*k, (*c, v.to_vec()));
            }
        }
        on_batch(chunk.len());
    }
    let mut out = Embeddings {
        vectors: Vec::with_capacity(texts.len() * dim),
        truncated: 0,
    };
    for f in found {
        let (cut, v) = f.expect("every text embedded");
        out.truncated += usize::from(cut);
        out.vectors.extend(v);
    }
    Ok(out)
}
