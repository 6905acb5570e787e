//! Retrieval metrics. Written here rather than taken from a crate: each is a few lines
//! and the exact definitions (query exclusion, ties) must match the reference experiment.

/// Share of the first `k` results whose label equals the query's label. Fewer than `k`
/// results count the missing ones as misses, as the reference does.
pub fn precision_at_k(query_label: &str, result_labels: &[Option<&str>], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let hits = result_labels
        .iter()
        .take(k)
        .filter(|l| **l == Some(query_label))
        .count();
    hits as f64 / k as f64
}

/// 1-based rank of `target` when `scores` are sorted descending (ties count against
/// the target, so a constant scorer ranks it last, never first).
pub fn rank_of(scores: &[f32], target: usize) -> usize {
    let t = scores[target];
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != target && s >= t)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_counts_matches_among_first_k() {
        let labels = [Some("a"), Some("b"), Some("a"), None, Some("a")];
        assert_eq!(precision_at_k("a", &labels, 2), 0.5);
        assert_eq!(precision_at_k("a", &labels, 5), 0.6);
        // Short result lists count the gap as misses.
        assert_eq!(precision_at_k("a", &labels, 10), 0.3);
    }

    #[test]
    fn rank_counts_ties_against_the_target() {
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 1), 1);
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 0), 3);
        assert_eq!(rank_of(&[0.5, 0.5, 0.5], 0), 3);
    }
}
