//! Title feedback: an image-mode list re-scored by how well each product's title agrees
//! with the titles of the list's first results.
//!
//! Photos of different kinds of product can look alike (a white skirt's photo lies near
//! white socks and white tops), while their titles say plainly what they are, and the
//! text tower compares titles with titles far better than the image tower compares
//! photos with photos. The first results of an image search are mostly of the query's
//! kind, so the mean of their titles' vectors says in words what the shopper's photo (or
//! words) most likely show; each product of the list then scores its photo's similarity
//! less how far its title is from that mean. This is pseudo-relevance feedback across
//! the two towers (the visual kind, [`super::feedback`], refines the query within one
//! space). It re-orders the image search's first [`POOL`] products and brings in none,
//! so what is shown is still what the photos found. Written here because it is a few
//! lines of arithmetic over the store's own vectors.

use anyhow::{ensure, Result};

use super::feedback::unit;
use super::{Mode, SAME_PHOTO};
use crate::store::{sort_by_score_then_id, Hit};

/// First results whose titles say what the query shows: visual feedback's default
/// depth (chosen on the Myntra train split), so both read the same first results.
pub const DEPTH: usize = 5;

/// Products of the image search re-ordered, whatever `k` is asked: a list of 10 and
/// the first 10 of a list of 100 are the same products in the same order. A deeper
/// list (a later page) keeps its products beyond these in place, below them.
pub const POOL: usize = 100;

/// The title term's weight in image mode, chosen on the Myntra train split (`eval
/// --sweep-feedback`, weights 0.25 to 2: P@10 fine for titles 0.831 without it, 0.855 at
/// 1; for photos 0.788, 0.817; 2 ties with 1).
pub const DEFAULT_WEIGHT: f32 = 1.0;

/// Largest weight accepted (beyond a few, titles alone order the pool).
pub const MAX_WEIGHT: f32 = 10.0;

/// The weight a vector mode gets unless the request sets one: on in image mode, where
/// only photos are compared; off in average mode and hybrid, whose products' vectors
/// already hold their titles (train split, title queries: average P@10 fine 0.878
/// without it, 0.875 with it; hybrid 0.899, 0.894).
pub fn default_for(mode: Mode) -> f32 {
    match mode {
        Mode::Image => DEFAULT_WEIGHT,
        _ => 0.0,
    }
}

/// Refuses a weight outside 0..=[`MAX_WEIGHT`].
pub fn check(weight: f32) -> Result<()> {
    ensure!(
        (0.0..=MAX_WEIGHT).contains(&weight),
        "title_feedback must be within 0..{MAX_WEIGHT} (got {weight})"
    );
    Ok(())
}

/// Weight of the query itself in the anchor, against the mean of the first [`DEPTH`]
/// titles (both unit length): the first results say what the query most likely shows,
/// and the query says what was asked. Chosen on the Myntra train split (`eval --split
/// train --diversify none`, P@10 fine): at 0 (the first titles alone) titles -> image
/// 0.855, photos 0.817, re-framed uploads 0.770; at 0.5 0.868, 0.820, 0.772; at 1 0.873,
/// 0.820, 0.773; at 2 0.875, 0.821, 0.774.
pub const QUERY_WEIGHT: f32 = 1.0;

/// Products whose titles are nearest the query's vector (by the products' title
/// vectors: what description mode would answer) whose titles join the query's side of
/// the anchor ([`query_side`]). 3 and 10 did as well on the Myntra train split (README,
/// Ranking).
pub const NEAREST: usize = 5;

/// Weight of the nearest titles' mean against the query's own vector (both unit length)
/// on the query's side of the anchor. For a photo, its nearest titles say in words what
/// the photo shows, by another road than its nearest photos' titles. Chosen on the
/// Myntra train split (the same command; P@10 fine): at 0 titles -> image 0.873, photos
/// 0.820, re-framed uploads 0.773; at 0.5 0.873, 0.826, 0.779; at 1 0.872, 0.827, 0.782;
/// at 2 0.872, 0.828, 0.785; at 4 0.871, 0.829, 0.784.
pub const NEAREST_WEIGHT: f32 = 2.0;

/// The unit mean of the vectors of length `dim` among `titles`; `None` when there are
/// none, or they cancel.
fn unit_mean<'a>(titles: impl IntoIterator<Item = &'a Vec<f32>>, dim: usize) -> Option<Vec<f32>> {
    let mut sum = vec![0f32; dim];
    for t in titles.into_iter().filter(|t| t.len() == dim) {
        sum.iter_mut().zip(t).for_each(|(m, x)| *m += x);
    }
    unit(&sum)
}

/// The query's side of title feedback's anchor: the query's own vector (unit length)
/// plus [`NEAREST_WEIGHT`] times the unit mean of `nearest`, the titles of the
/// [`NEAREST`] products whose titles are nearest the query (the query alone when there
/// are none).
pub fn query_side(query: &[f32], nearest: &[Option<Vec<f32>>]) -> Vec<f32> {
    let Some(q) = unit(query) else {
        return query.to_vec();
    };
    match unit_mean(nearest.iter().flatten(), q.len()) {
        Some(m) => q
            .iter()
            .zip(&m)
            .map(|(a, b)| a + NEAREST_WEIGHT * b)
            .collect(),
        None => q,
    }
}

/// Re-scores `hits` (best first) given each one's title vector (unit length, `None`
/// where a product has none, which then agrees with nothing) and the query's side of
/// the anchor ([`query_side`], or the query's vector alone):
/// `score - weight (1 - agreement)`, the agreement being the cosine of its title with
/// the anchor, the unit mean of the first [`DEPTH`] titles' mean and the query's side
/// ([`QUERY_WEIGHT`]), clamped to 0..1. A product whose photo is the query's own
/// ([`SAME_PHOTO`]) keeps its score, and so its first place, whatever its title says.
/// The first [`POOL`] are sorted again; beyond them no title is read (agreement 0), so
/// they keep their order, below the pool. Scores stay at most the photo's similarity.
/// Nothing changes with weight 0 or without a title among the first.
pub fn rescore(hits: &mut [Hit], titles: &[Option<Vec<f32>>], query: &[f32], weight: f32) {
    if weight <= 0.0 || hits.len() != titles.len() {
        return;
    }
    let first: Vec<&Vec<f32>> = titles.iter().take(DEPTH).flatten().collect();
    let Some(dim) = first.first().map(|t| t.len()) else {
        return;
    };
    let Some(mean) = unit_mean(first, dim) else {
        return;
    };
    // A query of another length (none should reach here) leaves the titles' mean alone.
    let anchor = match unit(query) {
        Some(q) if q.len() == dim => {
            let mixed: Vec<f32> = mean
                .iter()
                .zip(&q)
                .map(|(m, x)| m + QUERY_WEIGHT * x)
                .collect();
            unit(&mixed).unwrap_or(mean)
        }
        _ => mean,
    };
    for (i, (hit, title)) in hits.iter_mut().zip(titles).enumerate() {
        if hit.score >= SAME_PHOTO {
            continue;
        }
        let agreement = match title {
            Some(t) if t.len() == dim && i < POOL => {
                t.iter().zip(&anchor).map(|(a, b)| a * b).sum::<f32>()
            }
            _ => 0.0,
        };
        hit.score -= weight * (1.0 - agreement.clamp(0.0, 1.0));
    }
    let pool = hits.len().min(POOL);
    sort_by_score_then_id(&mut hits[..pool]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            score,
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    /// Skirts first, then a sock whose photo looks more like the query than the last
    /// skirt does: the titles bring the skirt forward.
    #[test]
    fn the_first_results_kind_of_title_comes_forward() {
        let skirt = Some(vec![1.0, 0.0]);
        let sock = Some(vec![0.0, 1.0]);
        let mut hits: Vec<Hit> = (0..DEPTH)
            .map(|i| hit(&format!("skirt{i}"), 0.9 - i as f32 * 0.01))
            .chain([hit("sock", 0.80), hit("last skirt", 0.79)])
            .collect();
        let mut titles = vec![skirt.clone(); DEPTH];
        titles.extend([sock, skirt]);
        rescore(&mut hits, &titles, &[], 1.0);
        let order = ids(&hits);
        assert_eq!(order.last(), Some(&"sock"), "{order:?}");
        assert_eq!(order[DEPTH], "last skirt");
        // The skirts' scores are their photos' similarities (their titles agree fully).
        assert!((hits[0].score - 0.9).abs() < 1e-6);
        assert!((hits[DEPTH + 1].score - (0.80 - 1.0)).abs() < 1e-6);
    }

    /// The first titles are mostly socks, but the query asks for a skirt: with the query
    /// in the anchor, a skirt further down comes before a sock whose photo scores a
    /// little higher; with the first titles alone, the sock does.
    #[test]
    fn the_query_pulls_the_anchor_toward_what_was_asked() {
        let (skirt, sock) = (vec![1.0, 0.0], vec![0.0, 1.0]);
        let hits: Vec<Hit> = (0..DEPTH)
            .map(|i| hit(&format!("first{i}"), 0.9 - i as f32 * 0.01))
            .chain([hit("sock", 0.801), hit("skirt", 0.80)])
            .collect();
        let mut titles: Vec<Option<Vec<f32>>> = (0..DEPTH)
            .map(|i| Some(if i < 3 { sock.clone() } else { skirt.clone() }))
            .collect();
        titles.extend([Some(sock.clone()), Some(skirt.clone())]);
        let mut alone = hits.clone();
        rescore(&mut alone, &titles, &[], 1.0);
        let order = ids(&alone);
        assert!(order.iter().position(|&i| i == "sock") < order.iter().position(|&i| i == "skirt"));
        let mut asked = hits;
        rescore(&mut asked, &titles, &[2.0, 0.0], 1.0);
        let order = ids(&asked);
        assert!(order.iter().position(|&i| i == "skirt") < order.iter().position(|&i| i == "sock"));
        // The skirt's agreement is its title's cosine with unit(unit(2, 3) + (1, 0)).
        let mean = [2.0 / 13f32.sqrt(), 3.0 / 13f32.sqrt()];
        let norm = ((mean[0] + 1.0).powi(2) + mean[1].powi(2)).sqrt();
        let skirt_score = asked.iter().find(|h| h.id == "skirt").unwrap().score;
        assert!((skirt_score - (0.80 - (1.0 - (mean[0] + 1.0) / norm))).abs() < 1e-5);
    }

    #[test]
    fn the_query_side_is_the_query_plus_its_nearest_titles_mean() {
        let side = query_side(
            &[2.0, 0.0],
            &[Some(vec![0.0, 1.0]), None, Some(vec![0.0, 1.0])],
        );
        assert_eq!(side, [1.0, NEAREST_WEIGHT]);
        // Without nearest titles, the query alone (unit length).
        assert_eq!(query_side(&[2.0, 0.0], &[None]), [1.0, 0.0]);
        // A zero query is passed on as it is, and changes nothing in `rescore`.
        assert_eq!(query_side(&[0.0, 0.0], &[Some(vec![0.0, 1.0])]), [0.0, 0.0]);
    }

    #[test]
    fn the_query_photo_itself_keeps_first_place_and_its_score() {
        let mut hits = vec![hit("same photo", 1.0), hit("a", 0.95), hit("b", 0.94)];
        let titles = vec![
            Some(vec![0.0, 1.0]),
            Some(vec![1.0, 0.0]),
            Some(vec![1.0, 0.0]),
        ];
        rescore(&mut hits, &titles, &[], 2.0);
        assert_eq!(ids(&hits), ["same photo", "a", "b"]);
        assert_eq!(hits[0].score, 1.0);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }

    /// A later page's products beyond the pool keep their order, below every product
    /// of the pool, even one whose title disagrees entirely.
    #[test]
    fn products_beyond_the_pool_keep_their_order_below_it() {
        let n = POOL + 20;
        let mut hits: Vec<Hit> = (0..n)
            .map(|i| hit(&format!("p{i:03}"), 0.9 - i as f32 * 0.001))
            .collect();
        // Alternate titles along two axes; the last product of the pool points away.
        let mut titles: Vec<Option<Vec<f32>>> = (0..n)
            .map(|i| {
                Some(if i.is_multiple_of(2) {
                    vec![1.0, 0.0]
                } else {
                    vec![0.0, 1.0]
                })
            })
            .collect();
        titles[POOL - 1] = Some(vec![-1.0, 0.0]);
        let tail: Vec<String> = hits[POOL..].iter().map(|h| h.id.clone()).collect();
        rescore(&mut hits, &titles, &[], 1.0);
        let after: Vec<String> = hits[POOL..].iter().map(|h| h.id.clone()).collect();
        assert_eq!(after, tail);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // The pool itself was re-ordered: the first 5 titles are mostly the even axis.
        assert!(hits[..POOL / 2].iter().all(|h| {
            let i: usize = h.id[1..].parse().unwrap();
            i.is_multiple_of(2)
        }));
    }

    #[test]
    fn weight_zero_or_no_titles_leave_the_list_alone() {
        let original = vec![hit("a", 0.9), hit("b", 0.8)];
        let titles = vec![Some(vec![1.0, 0.0]), Some(vec![0.0, 1.0])];
        let mut hits = original.clone();
        rescore(&mut hits, &titles, &[], 0.0);
        assert_eq!(hits, original);
        rescore(&mut hits, &[None, None], &[], 1.0);
        assert_eq!(hits, original);
        // A product without a title agrees with nothing.
        let mut hits = original.clone();
        rescore(&mut hits, &[Some(vec![1.0, 0.0]), None], &[], 0.5);
        assert!((hits[1].score - 0.3).abs() < 1e-6);
    }

    #[test]
    fn weights_out_of_range_are_refused_by_name() {
        assert!(check(1.0).is_ok());
        assert!(check(0.0).is_ok());
        for bad in [-0.1, 10.5, f32::NAN] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.contains("title_feedback"), "{err}");
        }
    }
}
