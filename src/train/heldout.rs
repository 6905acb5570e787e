//! Held-out figures of a trained tower, on products it never saw: can a title find its
//! own photo, and do a title's nearest photos share its category?

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
use crate::store::scan::top_k;

/// Text -> image retrieval figures on held-out pairs.
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
    /// The same for a random ranking: the share of the query's category among the images.
    pub broad_chance: f64,
    pub fine_chance: f64,
}

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
    let (mut bp, mut fp, mut bc, mut fc) = (0.0, 0.0, 0.0, 0.0);
    for &q in &order {
        let hits = top_k(&images, dim, &text[q * dim..(q + 1) * dim], 10, |i| i != q);
        for (fine, precision, chance) in [(false, &mut bp, &mut bc), (true, &mut fp, &mut fc)] {
            let Some(want) = label(q, fine) else { continue };
            let got: Vec<Option<&str>> = hits.iter().map(|h| label(h.row, fine)).collect();
            *precision += precision_at_k(want, &got, 10);
            let same = (0..n)
                .filter(|&i| i != q && label(i, fine) == Some(want))
                .count();
            *chance += same as f64 / (n - 1).max(1) as f64;
        }
    }
    let m = order.len().max(1) as f64;
    Ok(HeldOut {
        images: n,
        recall_at_1: r1 as f64 / n.max(1) as f64,
        recall_at_10: r10 as f64 / n.max(1) as f64,
        queries: order.len(),
        broad_precision_at_10: bp / m,
        fine_precision_at_10: fp / m,
        broad_chance: bc / m,
        fine_chance: fc / m,
    })
}
