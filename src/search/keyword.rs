//! The keyword baseline: TF-IDF over titles with cosine similarity, the bar every
//! embedding mode must clear in `vitrina eval`.
//!
//! Same definition as scikit-learn's `TfidfVectorizer` defaults (lowercase, tokens of
//! two or more word characters, raw term counts, smooth idf `ln((1+n)/(1+df)) + 1`, L2
//! norm), so the figures compare with the usual Python baseline. Written here because
//! it is an inverted index of a few dozen lines; a full-text engine would be far more.
//! The store's BM25 index ([`crate::store::TextIndex`]) is what keyword and hybrid
//! search use; this stays as the baseline.

use std::collections::HashMap;

use crate::store::scan::RowHit;

/// Lowercased tokens of two or more alphanumeric characters (sklearn's `(?u)\b\w\w+\b`).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| t.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect()
}

/// A TF-IDF index over a list of documents.
pub struct Tfidf {
    vocab: HashMap<String, usize>,
    idf: Vec<f32>,
    /// Term -> (document, weight) postings; weights are of L2-normalised documents.
    postings: Vec<Vec<(u32, f32)>>,
    docs: usize,
}

impl Tfidf {
    pub fn new(documents: &[&str]) -> Self {
        let mut vocab: HashMap<String, usize> = HashMap::new();
        let mut counts: Vec<Vec<(usize, f32)>> = Vec::with_capacity(documents.len());
        for doc in documents {
            let mut tf: HashMap<usize, f32> = HashMap::new();
            for token in tokenize(doc) {
                let next = vocab.len();
                let id = *vocab.entry(token).or_insert(next);
                *tf.entry(id).or_default() += 1.0;
            }
            let mut tf: Vec<(usize, f32)> = tf.into_iter().collect();
            tf.sort_unstable_by_key(|&(t, _)| t);
            counts.push(tf);
        }
        let mut df = vec![0usize; vocab.len()];
        for doc in &counts {
            for &(t, _) in doc {
                df[t] += 1;
            }
        }
        let n = documents.len() as f32;
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        let mut postings = vec![Vec::new(); vocab.len()];
        for (d, doc) in counts.iter().enumerate() {
            let norm = doc
                .iter()
                .map(|&(t, c)| (c * idf[t]).powi(2))
                .sum::<f32>()
                .sqrt();
            for &(t, c) in doc {
                postings[t].push((d as u32, c * idf[t] / norm));
            }
        }
        Tfidf {
            vocab,
            idf,
            postings,
            docs: documents.len(),
        }
    }

    /// The `k` documents most similar to `query`, best first (ties by document order),
    /// skipping documents for which `keep` is false. Documents sharing no term with the
    /// query are not returned.
    pub fn search(&self, query: &str, k: usize, keep: impl Fn(usize) -> bool) -> Vec<RowHit> {
        let mut tf: HashMap<usize, f32> = HashMap::new();
        for token in tokenize(query) {
            if let Some(&t) = self.vocab.get(&token) {
                *tf.entry(t).or_default() += 1.0;
            }
        }
        let norm = tf
            .iter()
            .map(|(&t, &c)| (c * self.idf[t]).powi(2))
            .sum::<f32>()
            .sqrt();
        let mut scores = vec![0f32; self.docs];
        for (&t, &c) in &tf {
            let w = c * self.idf[t] / norm;
            for &(d, v) in &self.postings[t] {
                scores[d as usize] += w * v;
            }
        }
        let mut hits: Vec<RowHit> = scores
            .iter()
            .enumerate()
            .filter(|&(d, &s)| s > 0.0 && keep(d))
            .map(|(row, &score)| RowHit { row, score })
            .collect();
        let by_score = |a: &RowHit, b: &RowHit| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row));
        if hits.len() > k {
            hits.select_nth_unstable_by(k, by_score);
            hits.truncate(k);
        }
        hits.sort_by(by_score);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_matches_sklearn_default_pattern() {
        assert_eq!(
            tokenize("Men's Blue T-shirt, XL a"),
            ["men", "blue", "shirt", "xl"]
        );
    }

    #[test]
    fn rare_shared_terms_outrank_common_ones() {
        let docs = [
            "black leather belt",
            "black cotton shirt",
            "brown leather belt",
            "black jeans",
        ];
        let index = Tfidf::new(&docs);
        let hits = index.search("black leather belt", 4, |_| true);
        assert_eq!(hits[0].row, 0);
        assert!(
            (hits[0].score - 1.0).abs() < 1e-5,
            "identical document scores 1"
        );
        // "leather belt" (rare) beats "black" (common).
        assert_eq!(hits[1].row, 2);
        let hits = index.search("black leather belt", 4, |d| d != 0);
        assert_eq!(hits[0].row, 2);
        assert!(index.search("sandals", 4, |_| true).is_empty());
    }
}
