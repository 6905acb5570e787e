//! Vectors of text queries seen before. Shops see the same queries again and again (the
//! head of the query distribution), and encoding the text is most of a query's time (about
//! 6 ms of 8 with the HNSW index), so a repeated query skips it. Keyed by the exact text:
//! whether two spellings give the same vector depends on the model's tokenizer.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use lru::LruCache;

/// A bounded least-recently-used map from query text to its vector.
pub struct QueryCache {
    entries: Mutex<LruCache<String, Arc<[f32]>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl QueryCache {
    pub fn new(capacity: NonZeroUsize) -> Self {
        QueryCache {
            entries: Mutex::new(LruCache::new(capacity)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached vector of `text`, or `embed()`'s, which is then kept. The lock is not
    /// held while embedding: two first requests for one text both embed it.
    pub fn get_or_embed(
        &self,
        text: &str,
        embed: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        if let Some(v) = self.lock().get(text) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.to_vec());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let vector = embed()?;
        self.lock()
            .put(text.to_string(), Arc::from(vector.as_slice()));
        Ok(vector)
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<[f32]>>> {
        // A panic elsewhere cannot leave the map half-updated in a way that matters here.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_queries_are_served_from_the_cache_and_the_oldest_goes_first() {
        let cache = QueryCache::new(NonZeroUsize::new(2).unwrap());
        let calls = std::cell::Cell::new(0);
        let embed = |x: f32| {
            calls.set(calls.get() + 1);
            Ok(vec![x, 1.0 - x])
        };
        assert_eq!(
            cache.get_or_embed("red dress", || embed(0.1)).unwrap(),
            [0.1, 0.9]
        );
        // A hit returns the stored vector without embedding again.
        assert_eq!(
            cache.get_or_embed("red dress", || embed(0.7)).unwrap(),
            [0.1, 0.9]
        );
        assert_eq!((calls.get(), cache.stats()), (1, (1, 1)));
        cache.get_or_embed("blue jeans", || embed(0.2)).unwrap();
        cache.get_or_embed("red dress", || embed(0.7)).unwrap(); // now most recent
        cache.get_or_embed("black belt", || embed(0.3)).unwrap(); // evicts blue jeans
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get_or_embed("red dress", || embed(0.9)).unwrap(),
            [0.1, 0.9]
        );
        assert_eq!(
            cache.get_or_embed("blue jeans", || embed(0.4)).unwrap(),
            [0.4, 0.6]
        );
        // A failed embedding is returned and nothing is kept.
        assert!(cache.get_or_embed("bad", || anyhow::bail!("no")).is_err());
        assert_eq!(
            cache.get_or_embed("bad", || embed(0.5)).unwrap(),
            [0.5, 0.5]
        );
    }
}
