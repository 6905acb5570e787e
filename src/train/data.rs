//! Image/title pairs held in memory for training: pixels as bytes (a 64x80 canvas is
//! 15 KB, so the whole Myntra train split fits in ~0.6 GB) and the frozen text vectors.

use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::catalog::Product;
use crate::encoder::preprocess::{fit_on_white, load_product_image};
use crate::encoder::TowerConfig;

/// A product whose image could not be used, and why.
#[derive(Debug, Clone)]
pub struct RejectedImage {
    pub id: String,
    pub reason: String,
}

/// Training pairs: row i of `pixels` goes with row i of `text`.
pub struct PairSet {
    /// Index of each pair's product in the list it was built from.
    pub product_index: Vec<usize>,
    pixels: Vec<u8>,
    text: Vec<f32>,
    height: usize,
    width: usize,
    dim: usize,
}

impl PairSet {
    /// Decodes every product's image (in parallel); `text` holds one vector per product.
    pub fn build(
        products: &[Product],
        text: &[f32],
        dim: usize,
        tower: &TowerConfig,
    ) -> (Self, Vec<RejectedImage>) {
        let decoded: Vec<Result<Vec<u8>, String>> = products
            .par_iter()
            .map(|p| {
                let image = load_product_image(p)?;
                Ok(fit_on_white(&image, tower.width as u32, tower.height as u32).into_raw())
            })
            .collect();
        let mut set = PairSet {
            product_index: Vec::new(),
            pixels: Vec::new(),
            text: Vec::new(),
            height: tower.height,
            width: tower.width,
            dim,
        };
        let mut rejected = Vec::new();
        for (i, (product, result)) in products.iter().zip(decoded).enumerate() {
            match result {
                Ok(pixels) => {
                    set.product_index.push(i);
                    set.pixels.extend_from_slice(&pixels);
                    set.text.extend_from_slice(&text[i * dim..(i + 1) * dim]);
                }
                Err(reason) => rejected.push(RejectedImage {
                    id: product.id.clone(),
                    reason,
                }),
            }
        }
        (set, rejected)
    }

    pub fn len(&self) -> usize {
        self.product_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.product_index.is_empty()
    }

    /// Pixels of pair `i` as the tower's [-1, 1] input, mirrored if `flip`.
    fn pixels_f32(&self, i: usize, flip: bool, out: &mut Vec<f32>) {
        let (h, w) = (self.height, self.width);
        let img = &self.pixels[i * h * w * 3..(i + 1) * h * w * 3];
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let p = (y * w + sx) * 3;
                out.extend(img[p..p + 3].iter().map(|&v| v as f32 / 127.5 - 1.0));
            }
        }
    }

    /// One batch: (B, H, W, 3) pixels and (B, dim) text vectors.
    pub fn batch(
        &self,
        rows: &[usize],
        flips: &[bool],
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let mut pixels = Vec::with_capacity(rows.len() * self.height * self.width * 3);
        let mut text = Vec::with_capacity(rows.len() * self.dim);
        for (&i, &flip) in rows.iter().zip(flips) {
            self.pixels_f32(i, flip, &mut pixels);
            text.extend_from_slice(&self.text[i * self.dim..(i + 1) * self.dim]);
        }
        let b = rows.len();
        Ok((
            Tensor::from_vec(pixels, (b, self.height, self.width, 3), device)?,
            Tensor::from_vec(text, (b, self.dim), device)?,
        ))
    }

    /// The text vectors, row-major, in pair order.
    pub fn text_vectors(&self) -> &[f32] {
        &self.text
    }

    /// All pixels of the set, unflipped, in the tower's input range.
    pub fn all_pixels(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.pixels.len());
        for i in 0..self.len() {
            self.pixels_f32(i, false, &mut out);
        }
        out
    }
}
