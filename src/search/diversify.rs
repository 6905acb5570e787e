//! Visual diversification of a ranked list, so the first results cover different looks
//! rather than ten photos of the same black t-shirt.
//!
//! - k-means: the reference method. Cluster the top `pool` results' image vectors into
//!   `k` groups, then take one item per cluster in turn (clusters in the order of their
//!   best item, each cluster's items in score order).
//! - MMR (Carbonell & Goldstein 1998): greedily pick the item maximising
//!   `lambda * score - (1 - lambda) * max image similarity to the items already picked`.
//! - Near-duplicate demotion: walk the list in score order and move an item whose
//!   photo is closer than `threshold` (image cosine) to a photo already kept to after
//!   the kept ones. It never reorders distinct looks, so it costs little relevance:
//!   it is what a shop means by "not ten photos of the same t-shirt".
//!
//! k-means is written here because it runs on 50 points: a crate (linfa) would bring
//! ndarray and a BLAS for a loop of a few hundred lines of arithmetic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::store::Hit;

/// Results reordered by the reference method: the top 50.
pub const POOL: usize = 50;
/// MMR's default trade-off, and `--diversify` alone: the most variety for at most one
/// point of P@10 on the Myntra train split's trade-off curve (+11% visual distance for
/// -0.6 points; README, Diversification).
pub const MMR_LAMBDA: f32 = 0.8;
/// Dedup's default near-duplicate threshold (image cosine): the evaluation's own
/// definition of a near duplicate; on the train split it removed all of them for -0.4
/// points of P@10 fine.
pub const DEDUP_THRESHOLD: f32 = 0.97;
/// Clusters for k-means diversification.
pub const CLUSTERS: usize = 5;
const KMEANS_ITERATIONS: usize = 50;

/// How to diversify a result list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Diversify {
    None,
    KMeans { clusters: usize, seed: u64 },
    Mmr { lambda: f32 },
    Dedup { threshold: f32 },
}

impl Diversify {
    /// A method by name (`none`, `kmeans`, `mmr`, `dedup`; empty is none) with its
    /// parameter where given (else MMR's [`MMR_LAMBDA`], dedup's [`DEDUP_THRESHOLD`]),
    /// checked as [`Diversify::check`] does.
    pub fn parse(
        name: &str,
        lambda: Option<f32>,
        threshold: Option<f32>,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let method = match name {
            "none" | "" => Diversify::None,
            "kmeans" => Diversify::KMeans {
                clusters: CLUSTERS,
                seed,
            },
            "mmr" => Diversify::Mmr {
                lambda: lambda.unwrap_or(MMR_LAMBDA),
            },
            "dedup" => Diversify::Dedup {
                threshold: threshold.unwrap_or(DEDUP_THRESHOLD),
            },
            other => {
                anyhow::bail!("unknown diversify {other:?}: use none, kmeans, mmr or dedup")
            }
        };
        method.check()?;
        Ok(method)
    }

    pub fn label(&self) -> String {
        match self {
            Diversify::None => "none".into(),
            Diversify::KMeans { .. } => "kmeans".into(),
            Diversify::Mmr { lambda } => format!("mmr({lambda})"),
            Diversify::Dedup { threshold } => format!("dedup({threshold})"),
        }
    }

    /// Refuses parameters outside their range (NaN included).
    pub fn check(&self) -> anyhow::Result<()> {
        match *self {
            Diversify::Mmr { lambda } if !(0.0..=1.0).contains(&lambda) => {
                anyhow::bail!("lambda must be within 0..1 (got {lambda})")
            }
            Diversify::Dedup { threshold } if !(-1.0..=1.0).contains(&threshold) => {
                anyhow::bail!("threshold must be within -1..1 (got {threshold})")
            }
            _ => Ok(()),
        }
    }

    /// Reorders `hits` (best first); `image(i)` gives the image vector of `hits[i]`.
    /// Only the first [`POOL`] hits are reordered; the rest keep their place.
    pub fn apply<'a>(&self, hits: &[Hit], image: impl Fn(usize) -> &'a [f32]) -> Vec<Hit> {
        let n = hits.len().min(POOL);
        let (pool, rest) = hits.split_at(n);
        let vectors: Vec<&[f32]> = (0..n).map(image).collect();
        let mut out = match *self {
            Diversify::None => pool.to_vec(),
            Diversify::KMeans { clusters, seed } => {
                round_robin(pool, &kmeans(&vectors, clusters, seed))
            }
            Diversify::Mmr { lambda } => mmr(pool, &vectors, lambda),
            Diversify::Dedup { threshold } => dedup(pool, &vectors, threshold),
        };
        out.extend_from_slice(rest);
        out
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lloyd's k-means with k-means++ seeding; returns each point's cluster. Deterministic
/// for a given seed. With fewer points than `k`, each point is its own cluster.
pub fn kmeans(points: &[&[f32]], k: usize, seed: u64) -> Vec<usize> {
    let n = points.len();
    if n <= k {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // k-means++: each next centre is drawn with probability proportional to its squared
    // distance from the nearest centre chosen so far.
    let mut centres: Vec<Vec<f32>> = vec![points[rng.random_range(0..n)].to_vec()];
    let mut nearest: Vec<f32> = points.iter().map(|p| sq_dist(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f32 = nearest.iter().sum();
        let next = if total <= 0.0 {
            // All remaining points coincide with a centre: any point will do.
            rng.random_range(0..n)
        } else {
            let mut target = rng.random_range(0.0..total);
            let mut chosen = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                if target < d {
                    chosen = i;
                    break;
                }
                target -= d;
            }
            chosen
        };
        centres.push(points[next].to_vec());
        for (d, p) in nearest.iter_mut().zip(points) {
            *d = d.min(sq_dist(p, centres.last().unwrap()));
        }
    }
    let mut assign = vec![usize::MAX; n];
    for _ in 0..KMEANS_ITERATIONS {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let best = (0..k)
                .min_by(|&a, &b| sq_dist(p, &centres[a]).total_cmp(&sq_dist(p, &centres[b])))
                .unwrap();
            if assign[i] != best {
                assign[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let dim = points[0].len();
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&&[f32]> = points
                .iter()
                .zip(&assign)
                .filter(|(_, &a)| a == c)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue; // An empty cluster keeps its centre.
            }
            *centre = (0..dim)
                .map(|j| members.iter().map(|p| p[j]).sum::<f32>() / members.len() as f32)
                .collect();
        }
    }
    assign
}

/// One item per cluster in turn. Clusters are visited in the order of their best item;
/// within a cluster, items keep their order in `hits`.
pub fn round_robin(hits: &[Hit], clusters: &[usize]) -> Vec<Hit> {
    let mut order: Vec<usize> = Vec::new();
    for &c in clusters {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    let mut queues: Vec<std::collections::VecDeque<Hit>> = order
        .iter()
        .map(|&c| {
            hits.iter()
                .zip(clusters)
                .filter(|(_, &a)| a == c)
                .map(|(h, _)| h.clone())
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(hits.len());
    while out.len() < hits.len() {
        for q in queues.iter_mut() {
            if let Some(h) = q.pop_front() {
                out.push(h);
            }
        }
    }
    out
}

/// Maximal marginal relevance over the whole list; `lambda = 1` keeps the ranking.
/// Scores are divided by the best one first, so relevance is on the 0..1 scale of the
/// image similarity it is traded against, whatever ranked the list (cosines, BM25,
/// reciprocal-rank fusion).
pub fn mmr(hits: &[Hit], vectors: &[&[f32]], lambda: f32) -> Vec<Hit> {
    let n = hits.len();
    let top = hits
        .first()
        .map_or(1.0, |h| h.score.abs())
        .max(f32::MIN_POSITIVE);
    let relevance: Vec<f32> = hits.iter().map(|h| h.score / top).collect();
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    let mut max_sim = vec![f32::NEG_INFINITY; n];
    let mut taken = vec![false; n];
    for _ in 0..n {
        let value = |i: usize| {
            let redundancy = if picked.is_empty() { 0.0 } else { max_sim[i] };
            lambda * relevance[i] - (1.0 - lambda) * redundancy
        };
        // Ties go to the better-ranked item, so lambda = 1 is exactly the input order.
        let best = (0..n)
            .filter(|&i| !taken[i])
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) if value(b) >= value(i) => Some(b),
                _ => Some(i),
            })
            .unwrap();
        taken[best] = true;
        picked.push(best);
        for i in 0..n {
            max_sim[i] = max_sim[i].max(dot(vectors[i], vectors[best]));
        }
    }
    picked.into_iter().map(|i| hits[i].clone()).collect()
}

/// Items whose photo is within `threshold` (cosine) of a photo kept before them move
/// after the kept items, in their order; the kept ones keep theirs.
pub fn dedup(hits: &[Hit], vectors: &[&[f32]], threshold: f32) -> Vec<Hit> {
    let mut kept: Vec<usize> = Vec::new();
    let mut later: Vec<usize> = Vec::new();
    for i in 0..hits.len() {
        if kept
            .iter()
            .any(|&j| dot(vectors[i], vectors[j]) > threshold)
        {
            later.push(i);
        } else {
            kept.push(i);
        }
    }
    kept.into_iter()
        .chain(later)
        .map(|i| hits[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(n: usize) -> Vec<Hit> {
        (0..n)
            .map(|i| Hit {
                id: i.to_string(),
                score: 1.0 - i as f32 * 0.01,
            })
            .collect()
    }

    #[test]
    fn kmeans_recovers_separable_clusters() {
        // Three tight groups far apart, interleaved in input order.
        let centres = [[10.0f32, 0.0], [0.0, 10.0], [-10.0, -10.0]];
        let points: Vec<Vec<f32>> = (0..30)
            .map(|i| {
                let c = centres[i % 3];
                vec![
                    c[0] + (i as f32 * 0.37).sin() * 0.5,
                    c[1] + (i as f32 * 0.71).cos() * 0.5,
                ]
            })
            .collect();
        let refs: Vec<&[f32]> = points.iter().map(Vec::as_slice).collect();
        for seed in 0..5 {
            let assign = kmeans(&refs, 3, seed);
            for i in 0..30 {
                for j in 0..30 {
                    assert_eq!(
                        assign[i] == assign[j],
                        i % 3 == j % 3,
                        "seed {seed}: points {i}, {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn kmeans_is_deterministic_and_handles_few_points() {
        let points: Vec<Vec<f32>> = (0..20)
            .map(|i| vec![(i * 7 % 13) as f32, (i % 5) as f32])
            .collect();
        let refs: Vec<&[f32]> = points.iter().map(Vec::as_slice).collect();
        assert_eq!(kmeans(&refs, 4, 9), kmeans(&refs, 4, 9));
        assert_eq!(kmeans(&refs[..3], 5, 0), [0, 1, 2]);
    }

    #[test]
    fn round_robin_takes_one_per_cluster_in_turn() {
        let h = hits(6);
        // Clusters by rank: a a b a c b
        let out = round_robin(&h, &[0, 0, 1, 0, 2, 1]);
        let idx: Vec<usize> = out.iter().map(|h| h.id.parse::<usize>().unwrap()).collect();
        assert_eq!(idx, [0, 2, 4, 1, 5, 3]);
    }

    #[test]
    fn mmr_with_lambda_one_is_the_plain_ranking() {
        let h = hits(10);
        let vectors: Vec<Vec<f32>> = (0..10).map(|i| vec![1.0, i as f32 * 0.1]).collect();
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        assert_eq!(mmr(&h, &refs, 1.0), h);
    }

    #[test]
    fn mmr_with_low_lambda_skips_near_duplicates() {
        let h = hits(3);
        let vectors = [vec![1.0f32, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let idx: Vec<usize> = mmr(&h, &refs, 0.5)
            .iter()
            .map(|h| h.id.parse::<usize>().unwrap())
            .collect();
        assert_eq!(idx, [0, 2, 1]);
    }

    #[test]
    fn dedup_moves_near_duplicates_after_distinct_looks() {
        let a = [1.0f32, 0.0];
        let a2 = [0.99f32, 0.141];
        let b = [0.0f32, 1.0];
        let vectors: Vec<&[f32]> = vec![&a, &a2, &b, &a];
        let out = dedup(&hits(4), &vectors, 0.95);
        let ids: Vec<&str> = out.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["0", "2", "1", "3"]);
        let out = dedup(&hits(4), &vectors, 1.0);
        assert_eq!(out, hits(4), "a threshold of 1 keeps the ranking");
    }

    #[test]
    fn apply_only_reorders_the_pool() {
        let h = hits(60);
        let vectors: Vec<Vec<f32>> = (0..60).map(|i| vec![(i % 5) as f32 * 10.0, 0.0]).collect();
        let out = Diversify::KMeans {
            clusters: 5,
            seed: 0,
        }
        .apply(&h, |i| vectors[i].as_slice());
        assert_eq!(&out[POOL..], &h[POOL..]);
        let first: std::collections::HashSet<usize> = out[..5]
            .iter()
            .map(|h| h.id.parse::<usize>().unwrap() % 5)
            .collect();
        assert_eq!(
            first.len(),
            5,
            "the first five results come from five different looks"
        );
        let mut sorted: Vec<usize> = out[..POOL]
            .iter()
            .map(|h| h.id.parse::<usize>().unwrap())
            .collect();
        sorted.sort();
        assert_eq!(sorted, (0..POOL).collect::<Vec<_>>());
    }
}
