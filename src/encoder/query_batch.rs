//! Text queries that arrive together are encoded together. A transformer on a CPU is far
//! cheaper per text in a batch than one text at a time (all-MiniLM-L6-v2 under ONNX
//! Runtime on 2 cores, probed while other work ran: about 7 ms for one query, about 2.7 ms
//! each in a batch of 8; `vitrina bench --suite serve` measures the server with and
//! without batching), and a busy server has many queries waiting while one is encoded:
//! the encoder runs one batch at a time anyway.
//!
//! No thread and no timer: the first caller to find nobody encoding becomes the leader,
//! takes everything queued (up to [`MAX_BATCH`]), encodes it and hands each caller its
//! vector; callers that arrive meanwhile queue for the next batch. A lone query is
//! encoded at once, so batching never adds latency when the server is idle. Written by
//! hand because the batching crates we know of (e.g. `batched-fn`) run a background
//! thread with a fixed wait, which is the latency we are avoiding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};

use anyhow::{anyhow, ensure, Result};

use super::TextEncoder;

/// The most texts encoded in one run by default: bounds the time the last one waits.
pub const MAX_BATCH: usize = 32;

#[derive(Default)]
struct State {
    /// Texts waiting for a batch, with the ticket of the caller who asked.
    queue: Vec<(u64, String)>,
    /// Answers not yet taken by their callers, by ticket (errors as text: one failed
    /// batch answers several callers).
    answers: HashMap<u64, std::result::Result<Vec<f32>, String>>,
    next_ticket: u64,
    encoding: bool,
}

/// Combines concurrent single-text queries into batches (see the module comment).
pub struct QueryBatcher {
    max_batch: usize,
    state: Mutex<State>,
    answered: Condvar,
    /// Batches run and texts encoded, for the server's figures.
    runs: AtomicU64,
    texts: AtomicU64,
}

impl Default for QueryBatcher {
    fn default() -> Self {
        QueryBatcher::new(MAX_BATCH)
    }
}

impl QueryBatcher {
    /// Batches of at most `max_batch` texts (1: every query encoded alone).
    pub fn new(max_batch: usize) -> Self {
        QueryBatcher {
            max_batch: max_batch.max(1),
            state: Mutex::default(),
            answered: Condvar::new(),
            runs: AtomicU64::new(0),
            texts: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held while encoding, and every change under it is one call
        // that cannot panic halfway, so a poisoned lock still holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `text`'s vector from `encoder`, encoded in one batch with whatever other queries
    /// are waiting.
    pub fn embed(&self, text: &str, encoder: &dyn TextEncoder) -> Result<Vec<f32>> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, text.to_string()));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer.map_err(|e| anyhow!(e));
            }
            if state.encoding {
                state = self
                    .answered
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.encoding = true;
            let take = state.queue.len().min(self.max_batch);
            let batch: Vec<(u64, String)> = state.queue.drain(..take).collect();
            drop(state);
            // Every text taken must be answered, even if the encoder panics: its caller
            // would otherwise wait for ever.
            let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.encode(&batch, encoder)
            }))
            .unwrap_or_else(|_| {
                let failed = || Err("the text encoder failed unexpectedly".to_string());
                batch.iter().map(|(t, _)| (*t, failed())).collect()
            });
            state = self.lock();
            state.answers.extend(answers);
            state.encoding = false;
            self.answered.notify_all();
        }
    }

    /// One answer per queued text. When the batch fails, each text is tried alone, so
    /// one text the encoder rejects does not fail the queries batched with it.
    fn encode(
        &self,
        batch: &[(u64, String)],
        encoder: &dyn TextEncoder,
    ) -> Vec<(u64, std::result::Result<Vec<f32>, String>)> {
        let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
        self.runs.fetch_add(1, Relaxed);
        self.texts.fetch_add(texts.len() as u64, Relaxed);
        let dim = encoder.dim();
        let rows = |texts: &[&str]| -> Result<Vec<Vec<f32>>> {
            let vectors = encoder.embed_texts(texts)?.vectors;
            ensure!(
                vectors.len() == texts.len() * dim,
                "the text encoder returned {} numbers for {} texts of {dim} dimensions",
                vectors.len(),
                texts.len()
            );
            Ok(vectors.chunks_exact(dim).map(<[f32]>::to_vec).collect())
        };
        match rows(&texts) {
            Ok(vectors) => batch
                .iter()
                .map(|(t, _)| *t)
                .zip(vectors.into_iter().map(Ok))
                .collect(),
            Err(_) if batch.len() > 1 => batch
                .iter()
                .map(|(ticket, text)| {
                    let one = rows(&[text.as_str()]).map(|mut v| v.remove(0));
                    (*ticket, one.map_err(|e| format!("{e:#}")))
                })
                .collect(),
            Err(e) => vec![(batch[0].0, Err(format!("{e:#}")))],
        }
    }

    /// (batches run, texts encoded) since start: their ratio is the mean batch size.
    pub fn stats(&self) -> (u64, u64) {
        (self.runs.load(Relaxed), self.texts.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Embeddings;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    /// A slow encoder whose vector is the text's length and first byte, so each caller
    /// can check it got its own answer; it rejects texts containing "bad".
    struct Slow {
        calls: AtomicUsize,
        largest: AtomicUsize,
    }

    impl TextEncoder for Slow {
        fn model_id(&self) -> &str {
            "slow"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> {
            assert!(!texts.contains(&"panic"), "the encoder broke");
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(texts.len(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            ensure!(!texts.iter().any(|t| t.contains("bad")), "bad text");
            let vectors = texts
                .iter()
                .flat_map(|t| [t.len() as f32, t.as_bytes()[0] as f32])
                .collect();
            Ok(Embeddings {
                vectors,
                truncated: 0,
            })
        }
    }

    fn slow() -> Arc<Slow> {
        Arc::new(Slow {
            calls: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
        })
    }

    /// Runs `texts` as concurrent callers released together; answers in input order.
    fn concurrently(
        batcher: &Arc<QueryBatcher>,
        encoder: &Arc<Slow>,
        texts: &[&str],
    ) -> Vec<std::result::Result<Vec<f32>, String>> {
        let start = Arc::new(Barrier::new(texts.len()));
        let handles: Vec<_> = texts
            .iter()
            .map(|text| {
                let (batcher, encoder, start) = (batcher.clone(), encoder.clone(), start.clone());
                let text = text.to_string();
                std::thread::spawn(move || {
                    start.wait();
                    batcher
                        .embed(&text, encoder.as_ref())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn concurrent_queries_share_batches_and_each_gets_its_own_vector() {
        let (batcher, encoder) = (Arc::new(QueryBatcher::default()), slow());
        let texts: Vec<String> = (0..24).map(|i| format!("{}query", "x".repeat(i))).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let answers = concurrently(&batcher, &encoder, &refs);
        for (text, answer) in texts.iter().zip(&answers) {
            assert_eq!(
                answer.as_ref().unwrap(),
                &vec![text.len() as f32, text.as_bytes()[0] as f32]
            );
        }
        // 24 callers released at once while each run takes 30 ms: the first runs alone
        // or nearly, the rest wait and go together.
        let calls = encoder.calls.load(Ordering::SeqCst);
        assert!(calls < 24 / 2, "{calls} runs for 24 concurrent queries");
        assert!(encoder.largest.load(Ordering::SeqCst) > 1);
        assert_eq!(batcher.stats(), (calls as u64, 24));
    }

    #[test]
    fn a_lone_query_runs_at_once_and_batches_are_bounded() {
        let (batcher, encoder) = (Arc::new(QueryBatcher::default()), slow());
        assert_eq!(
            batcher.embed("abc", encoder.as_ref()).unwrap(),
            vec![3.0, 97.0]
        );
        assert_eq!(encoder.calls.load(Ordering::SeqCst), 1);
        let texts: Vec<String> = (0..3 * MAX_BATCH).map(|i| format!("q{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert!(concurrently(&batcher, &encoder, &refs)
            .iter()
            .all(Result::is_ok));
        assert!(encoder.largest.load(Ordering::SeqCst) <= MAX_BATCH);

        let (alone, encoder) = (Arc::new(QueryBatcher::new(1)), slow());
        assert!(concurrently(&alone, &encoder, &refs[..8])
            .iter()
            .all(Result::is_ok));
        assert_eq!(encoder.largest.load(Ordering::SeqCst), 1);
        assert_eq!(alone.stats(), (8, 8));
    }

    #[test]
    fn a_failing_text_fails_only_its_own_query() {
        let (batcher, encoder) = (Arc::new(QueryBatcher::default()), slow());
        let texts = ["a bad one", "red dress", "blue shoes", "watch", "bag"];
        let texts: Vec<&str> = texts.iter().cycle().take(15).copied().collect();
        let answers = concurrently(&batcher, &encoder, &texts);
        for (text, answer) in texts.iter().zip(&answers) {
            match answer {
                Ok(v) => assert_eq!(v[0], text.len() as f32, "{text}"),
                Err(e) => {
                    assert!(text.contains("bad"), "{text} failed: {e}");
                    assert!(e.contains("bad text"), "{e}");
                }
            }
        }
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 3);
    }

    #[test]
    fn a_panicking_encoder_answers_every_caller_and_the_batcher_goes_on() {
        let (batcher, encoder) = (Arc::new(QueryBatcher::default()), slow());
        let texts: Vec<&str> = ["panic", "red dress", "watch"].repeat(4);
        let answers = concurrently(&batcher, &encoder, &texts);
        let failed = answers.iter().filter(|a| a.is_err()).count();
        assert!(failed >= 4, "{failed} failed");
        assert!(answers.iter().flatten().all(|v| v[1] != b'p' as f32));
        assert_eq!(
            batcher.embed("after", encoder.as_ref()).unwrap(),
            vec![5.0, 97.0]
        );
    }
}
