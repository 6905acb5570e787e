//! Visual feedback (pseudo-relevance feedback): a vector query is searched once, then
//! again with the mean vector of its top results blended in.
//!
//! The query's best matches say what the shopper's words or photo look like in the
//! catalogue: a title's text vector lies across the modality gap from every photo, and a
//! photo's vector carries its own framing and background, while the mean of the first
//! results' vectors sits where the catalogue keeps that kind of product. This is Rocchio's
//! relevance feedback (1971) with the top results taken as relevant, which image retrieval
//! calls average query expansion (Chum et al., 2007). It costs a second search of the same
//! space and a fetch of `depth` stored vectors. Written here because it is a few lines of
//! arithmetic over the store's own vectors; no crate of the field does it for a custom
//! store.

use anyhow::{ensure, Result};

/// How many of the first results refine the query, and how much the query itself keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    /// Results whose vectors are averaged (0: off).
    pub depth: usize,
    /// The query's own weight against the results' mean, 0..=1 (1: off).
    pub query_weight: f32,
}

/// Deepest feedback accepted: the mean of more results than a page drifts to the
/// catalogue's centre.
pub const MAX_DEPTH: usize = 100;

impl Feedback {
    /// No feedback: one search.
    pub const OFF: Feedback = Feedback {
        depth: 0,
        query_weight: 1.0,
    };

    /// The setting chosen on the Myntra train split (`eval --sweep-feedback`, README
    /// Ranking): the first 5 results, the query keeping half. Within half a point of the
    /// best of 12 settings for every kind of query it serves (titles in image, average
    /// and hybrid mode; photos in image and average mode), and the best all-round.
    pub const DEFAULT: Feedback = Feedback {
        depth: 5,
        query_weight: 0.5,
    };

    /// The default of a vector mode: [`Feedback::DEFAULT`] where photos are compared
    /// (image and average vectors); off in description mode, where titles are compared
    /// with titles and it does not help (train split, title queries: fine P@10 0.863
    /// without, 0.860 with).
    pub fn default_for(mode: super::Mode) -> Feedback {
        match mode {
            super::Mode::Image | super::Mode::Average => Feedback::DEFAULT,
            _ => Feedback::OFF,
        }
    }

    /// A requested setting: `None` when neither value is given (the mode's default
    /// then applies); an unset value takes [`Feedback::DEFAULT`]'s. `depth` within
    /// 0..=100, `query_weight` within 0..=1.
    pub fn requested(depth: Option<usize>, query_weight: Option<f32>) -> Result<Option<Self>> {
        if depth.is_none() && query_weight.is_none() {
            return Ok(None);
        }
        let feedback = Feedback {
            depth: depth.unwrap_or(Feedback::DEFAULT.depth),
            query_weight: query_weight.unwrap_or(Feedback::DEFAULT.query_weight),
        };
        feedback.check()?;
        Ok(Some(feedback))
    }

    /// Refuses a depth above [`MAX_DEPTH`] or a weight outside 0..=1.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.depth <= MAX_DEPTH,
            "feedback must be within 0..={MAX_DEPTH} results (got {})",
            self.depth
        );
        ensure!(
            (0.0..=1.0).contains(&self.query_weight),
            "feedback_weight must be within 0..1 (got {})",
            self.query_weight
        );
        Ok(())
    }

    /// Whether a second search is asked for.
    pub fn is_on(&self) -> bool {
        self.depth > 0 && self.query_weight < 1.0
    }

    /// The refined query: `w q/|q| + (1 - w) mean(found)`, unit length. With nothing
    /// found (or a degenerate sum) the query is returned as it was.
    pub fn refine(&self, query: &[f32], found: &[&[f32]]) -> Vec<f32> {
        let (Some(q), false) = (unit(query), found.is_empty()) else {
            return query.to_vec();
        };
        let share = (1.0 - self.query_weight) / found.len() as f32;
        let mut refined: Vec<f32> = q.iter().map(|x| x * self.query_weight).collect();
        for v in found.iter().filter(|v| v.len() == q.len()) {
            for (r, x) in refined.iter_mut().zip(v.iter()) {
                *r += share * x;
            }
        }
        unit(&refined).unwrap_or_else(|| query.to_vec())
    }
}

/// `v` scaled to unit length; `None` for a zero (or non-finite) vector. (Also the
/// anchor of [`super::title_feedback`].)
pub(super) fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 1e-12 && norm.is_finite()).then(|| v.iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn the_query_moves_towards_its_results_mean_and_stays_unit() {
        let feedback = Feedback {
            depth: 2,
            query_weight: 0.25,
        };
        let query = [2.0, 0.0, 0.0];
        let found: [&[f32]; 2] = [&[0.0, 1.0, 0.0], &[0.0, 0.6, 0.8]];
        let refined = feedback.refine(&query, &found);
        // 0.25 (1, 0, 0) + 0.75 (0, 0.8, 0.4) = (0.25, 0.6, 0.3), then unit length.
        let expected = [0.25f32, 0.6, 0.3];
        assert!((cos(&refined, &expected) - 1.0).abs() < 1e-6, "{refined:?}");
        let norm: f32 = refined.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        assert!(cos(&refined, &[0.0, 0.8, 0.4]) > cos(&query, &[0.0, 0.8, 0.4]));
    }

    #[test]
    fn weight_one_or_nothing_found_leaves_the_query_alone() {
        let query = [0.0, 3.0];
        let found: [&[f32]; 1] = [&[1.0, 0.0]];
        let keep = Feedback {
            depth: 1,
            query_weight: 1.0,
        };
        assert!(!keep.is_on());
        assert!((cos(&keep.refine(&query, &found), &query) - 1.0).abs() < 1e-6);
        let on = Feedback {
            depth: 1,
            query_weight: 0.5,
        };
        assert_eq!(on.refine(&query, &[]), query.to_vec());
        // A zero query (nothing to refine) is returned as it was, not NaN.
        assert_eq!(on.refine(&[0.0, 0.0], &found), vec![0.0, 0.0]);
    }

    #[test]
    fn out_of_range_settings_are_refused_by_name() {
        let err = Feedback::requested(Some(101), None).unwrap_err();
        assert!(err.to_string().contains("feedback"), "{err}");
        let err = Feedback::requested(Some(10), Some(1.5)).unwrap_err();
        assert!(err.to_string().contains("feedback_weight"), "{err}");
        assert_eq!(Feedback::requested(None, None).unwrap(), None);
        let depth_only = Feedback::requested(Some(0), None).unwrap().unwrap();
        assert_eq!(depth_only.depth, 0);
        assert!(!depth_only.is_on());
        assert_eq!(
            Feedback::requested(None, Some(0.25)).unwrap(),
            Some(Feedback {
                depth: Feedback::DEFAULT.depth,
                query_weight: 0.25
            })
        );
    }
}
