//! Held-out figures of a trained tower, on products it never saw: can a title find its
//! own photo, and do a title's (or a photo's) nearest photos share its category?

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::PairSet;
use crate::catalog::Product;
use crate::encoder::{ImageEncoder, ImageTower};
use crate::eval::metrics::{precision_at_k, rank_of};
use crate::eval::reframe::{enlarge_and_reframe, OFF_CENTRE};
use crate::store::scan::top_k;

/// Text -> image and photo -> image retrieval figures on held-out pairs.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    /// Held-out images searched over.
    pub images: usize,
    /// Share of titles whose own image ranks first / in the top 10 among all held-out images.
    pub recall_at_1: f64,
    pub recall_at_10: f64,
    /// Titles used as category queries (own product excluded from its results).
    pub queries: usize,
    /// Share of the top-10 images in the query's broad / fine category.
    pub broad_precision_at_10: f64,
    pub fine_precision_at_10: f64,
    /// The same with each query's own photo as the query (itself excluded): what a
    /// shopper's photo search reaches, before any change of framing.
    pub photo_broad_precision_at_10: f64,
    pub photo_fine_precision_at_10: f64,
    /// Mean top-10 overlap (of 10) between a photo as stored and the same photo 10x
    /// larger, off-centre on a white margin, as JPEG ([`OFF_CENTRE`]), over the first
    /// [`REFRAMED_QUERIES`] photo queries: does the tower see a re-framed upload as the
    /// same product?
    pub reframed_overlap_at_10: f64,
    /// The same for a random ranking: the share of the query's category among the images.
    pub broad_chance: f64,
    pub fine_chance: f64,
}

/// Photo queries also asked re-framed: each costs a 640x800 decode and resize.
pub const REFRAMED_QUERIES: usize = 200;

/// Scores every held-out title against every held-out image with `tower`.
pub fn held_out(
    tower: &ImageTower,
    products: &[Product],
    pairs: &PairSet,
    queries: usize,
    seed: u64,
) -> Result<HeldOut> {
    let n = pairs.len();
    let dim = tower.dim();
    let images = tower.embed_pixels(&pairs.all_pixels())?;
    let text = pairs.text_vectors();
    let image_t = Tensor::from_slice(&images, (n, dim), &Device::Cpu)?
        .t()?
        .contiguous()?;
    let (mut r1, mut r10) = (0usize, 0usize);
    for start in (0..n).step_by(1024) {
        let rows = (n - start).min(1024);
        let t = Tensor::from_slice(
            &text[start * dim..(start + rows) * dim],
            (rows, dim),
            &Device::Cpu,
        )?;
        let scores = t.matmul(&image_t)?.to_vec2::<f32>()?;
        for (r, row) in scores.iter().enumerate() {
            let rank = rank_of(row, start + r);
            r1 += usize::from(rank == 1);
            r10 += usize::from(rank <= 10);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(queries.min(n));
    let label = |i: usize, fine: bool| {
        let p = &products[pairs.product_index[i]];
        if fine {
            p.fine.as_deref()
        } else {
            p.broad.as_deref()
        }
    };
    // [text, photo] x [broad, fine] precision sums, and [broad, fine] chance sums.
    let mut precision = [[0.0; 2]; 2];
    let mut chance = [0.0; 2];
    // The photo queries' top 10, kept for the first REFRAMED_QUERIES to compare below.
    let mut stored_top10: Vec<Vec<usize>> = Vec::new();
    for (asked, &q) in order.iter().enumerate() {
        let row = q * dim..(q + 1) * dim;
        for (by, query) in [&text[row.clone()], &images[row]].into_iter().enumerate() {
            let hits = top_k(&images, dim, query, 10, |i| i != q);
            if by == 1 && asked < REFRAMED_QUERIES {
                stored_top10.push(hits.iter().map(|h| h.row).collect());
            }
            for (fine, sum) in precision[by].iter_mut().enumerate() {
                let Some(want) = label(q, fine == 1) else {
                    continue;
                };
                let got: Vec<Option<&str>> = hits.iter().map(|h| label(h.row, fine == 1)).collect();
                *sum += precision_at_k(want, &got, 10);
            }
        }
        for (fine, sum) in chance.iter_mut().enumerate() {
            let Some(want) = label(q, fine == 1) else {
                continue;
            };
            let same = (0..n)
                .filter(|&i| i != q && label(i, fine == 1) == Some(want))
                .count();
            *sum += same as f64 / (n - 1).max(1) as f64;
        }
    }
    let reframed: Vec<usize> = order.iter().copied().take(REFRAMED_QUERIES).collect();
    let uploads: Vec<_> = reframed
        .iter()
        .map(|&q| enlarge_and_reframe(&pairs.photo(q), 10, OFF_CENTRE))
        .collect();
    let upload_vectors = tower.embed_images(&uploads)?.vectors;
    let overlap: usize = reframed
        .iter()
        .zip(&stored_top10)
        .enumerate()
        .map(|(u, (&q, stored))| {
            let upload = &upload_vectors[u * dim..(u + 1) * dim];
            top_k(&images, dim, upload, 10, |i| i != q)
                .iter()
                .filter(|h| stored.contains(&h.row))
                .count()
        })
        .sum();
    let m = order.len().max(1) as f64;
    let [[bp, fp], [pbp, pfp]] = precision;
    let [bc, fc] = chance;
    Ok(HeldOut {
        images: n,
        recall_at_1: r1 as f64 / n.max(1) as f64,
        recall_at_10: r10 as f64 / n.max(1) as f64,
        queries: order.len(),
        broad_precision_at_10: bp / m,
        fine_precision_at_10: fp / m,
        photo_broad_precision_at_10: pbp / m,
        photo_fine_precision_at_10: pfp / m,
        reframed_overlap_at_10: overlap as f64 / reframed.len().max(1) as f64,
        broad_chance: bc / m,
        fine_chance: fc / m,
    })
}
