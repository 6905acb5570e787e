//! Hybrid search: one ranked list from the keyword (BM25) list and the vector list.
//!
//! Two methods, as in the engines shoppers' sites run on: reciprocal rank fusion
//! (Cormack et al., SIGIR 2009; Elasticsearch, OpenSearch, Vespa) uses only ranks, so
//! BM25's unbounded scores and cosine similarities need no common scale; a relative
//! score blend (Weaviate's `relativeScoreFusion`) min-max scales each list's scores to
//! 0..1 and adds them with weights. Method and weight were chosen on the Myntra train
//! split (README, Ranking); both are settable per query.

use std::collections::HashMap;

use anyhow::{bail, ensure, Result};

use crate::store::{sort_by_score_then_id, Hit};

/// How far down each list fusion looks: products below it in both lists are not
/// returned by a hybrid search.
pub const DEPTH: usize = 100;
/// RRF's rank offset (the paper's and most engines' 60): it flattens the head of each
/// list so that one list's first place does not decide alone.
pub const RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusionMethod {
    /// Reciprocal rank fusion: `w / (60 + rank_keyword) + (1 - w) / (60 + rank_vector)`.
    Rrf,
    /// Min-max scaled scores: `w * keyword + (1 - w) * vector`.
    Blend,
}

impl FusionMethod {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rrf" => Ok(FusionMethod::Rrf),
            "blend" => Ok(FusionMethod::Blend),
            other => bail!("unknown fusion {other:?}: use rrf or blend"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FusionMethod::Rrf => "rrf",
            FusionMethod::Blend => "blend",
        }
    }
}

/// How the hybrid mode combines its two lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub method: FusionMethod,
    /// Weight of the keyword list, 0..=1 (the vector list gets the rest).
    pub keyword_weight: f32,
}

impl Default for Fusion {
    /// The setting chosen on the Myntra train split (README, Ranking).
    fn default() -> Self {
        Fusion {
            method: FusionMethod::Rrf,
            keyword_weight: 0.5,
        }
    }
}

impl Fusion {
    /// A fusion from a request's optional method name and keyword weight (unset parts
    /// take the defaults); the CLI and the server share it.
    pub fn parse(method: Option<&str>, keyword_weight: Option<f32>) -> Result<Self> {
        let default = Fusion::default();
        let fusion = Fusion {
            method: method.map_or(Ok(default.method), FusionMethod::parse)?,
            keyword_weight: keyword_weight.unwrap_or(default.keyword_weight),
        };
        fusion.check()?;
        Ok(fusion)
    }

    pub fn check(&self) -> Result<()> {
        ensure!(
            (0.0..=1.0).contains(&self.keyword_weight),
            // NaN is outside too.
            "keyword weight must be within 0..1 (got {})",
            self.keyword_weight
        );
        Ok(())
    }

    pub fn label(&self) -> String {
        format!("{}({})", self.method.name(), self.keyword_weight)
    }

    /// The fused list, best first (equal scores in id order).
    pub fn fuse(&self, keyword: &[Hit], vector: &[Hit]) -> Vec<Hit> {
        let w = self.keyword_weight;
        let mut scores: HashMap<&str, f32> = HashMap::new();
        for (list, weight) in [(keyword, w), (vector, 1.0 - w)] {
            let scaled = match self.method {
                FusionMethod::Rrf => ranks(list),
                FusionMethod::Blend => min_max(list),
            };
            for (hit, s) in list.iter().zip(scaled) {
                *scores.entry(hit.id.as_str()).or_insert(0.0) += weight * s;
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .map(|(id, score)| Hit {
                id: id.to_string(),
                score,
            })
            .collect();
        sort_by_score_then_id(&mut hits);
        hits
    }
}

fn ranks(list: &[Hit]) -> Vec<f32> {
    (0..list.len())
        .map(|r| 1.0 / (RRF_K + r as f32 + 1.0))
        .collect()
}

/// Scores scaled to 0..1 within the list (all 1 when they are equal).
fn min_max(list: &[Hit]) -> Vec<f32> {
    let max = list.iter().map(|h| h.score).fold(f32::MIN, f32::max);
    let min = list.iter().map(|h| h.score).fold(f32::MAX, f32::min);
    list.iter()
        .map(|h| {
            if max > min {
                (h.score - min) / (max - min)
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(ids: &[(&str, f32)]) -> Vec<Hit> {
        ids.iter()
            .map(|&(id, score)| Hit {
                id: id.into(),
                score,
            })
            .collect()
    }

    #[test]
    fn rrf_rewards_agreement_and_weights_move_it() {
        let keyword = hits(&[("a", 9.0), ("b", 5.0), ("c", 1.0)]);
        let vector = hits(&[("b", 0.9), ("d", 0.8), ("a", 0.1)]);
        let even = Fusion::default().fuse(&keyword, &vector);
        let order: Vec<&str> = even.iter().map(|h| h.id.as_str()).collect();
        // b: 1/62 + 1/61; a: 1/61 + 1/63; then d (1/62 alone), c (1/63 alone).
        assert_eq!(order, ["b", "a", "d", "c"]);
        assert!((even[0].score - 0.5 * (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);
        let keyword_only = Fusion {
            method: FusionMethod::Rrf,
            keyword_weight: 1.0,
        }
        .fuse(&keyword, &vector);
        let order: Vec<&str> = keyword_only.iter().map(|h| h.id.as_str()).take(3).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn blend_scales_each_list() {
        let keyword = hits(&[("a", 20.0), ("b", 10.0), ("c", 0.0)]);
        let vector = hits(&[("c", 0.9), ("b", 0.5), ("a", 0.1)]);
        let fused = Fusion {
            method: FusionMethod::Blend,
            keyword_weight: 0.5,
        }
        .fuse(&keyword, &vector);
        // a: 0.5*1 + 0.5*0 = 0.5; b: 0.5*0.5 + 0.5*0.5 = 0.5; c: 0 + 0.5 = 0.5: a tie,
        // listed in id order.
        assert!(
            fused.iter().all(|h| (h.score - 0.5).abs() < 1e-6),
            "{fused:?}"
        );
        assert_eq!(fused[0].id, "a");
        assert!(Fusion {
            method: FusionMethod::Blend,
            keyword_weight: 1.5
        }
        .check()
        .is_err());
    }
}
