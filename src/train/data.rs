//! Image/title pairs held in memory for training: pixels as bytes (a 64x80 canvas is
//! 15 KB, so the whole Myntra train split fits in ~0.6 GB) and the frozen text vectors.

use anyhow::Result;
use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use super::Augment;
use crate::catalog::Product;
use crate::encoder::preprocess::{load_product_image, to_unit_range};
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
                Ok(tower.canvas(&image).into_raw())
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

    /// Pair `i`'s canvas as the catalogue gave it.
    fn canvas(&self, i: usize) -> RgbImage {
        let per = self.height * self.width * 3;
        RgbImage::from_raw(
            self.width as u32,
            self.height as u32,
            self.pixels[i * per..(i + 1) * per].to_vec(),
        )
        .expect("canvas size matches its buffer")
    }

    /// Pair `i`'s canvas as a photo, for encoding as a shopper's upload would be.
    pub fn photo(&self, i: usize) -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(self.canvas(i))
    }

    /// One batch: (B, H, W, 3) pixels, each image augmented with its own seed (in
    /// parallel, and still deterministic), and the (B, dim) text vectors.
    pub fn batch(
        &self,
        rows: &[usize],
        seeds: &[u64],
        augment: &Augment,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let pixels: Vec<f32> = rows
            .par_iter()
            .zip(seeds)
            .flat_map_iter(|(&i, &seed)| to_unit_range(&augment.apply(&self.canvas(i), seed)))
            .collect();
        let mut text = Vec::with_capacity(rows.len() * self.dim);
        for &i in rows {
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

    /// All pixels of the set, unaugmented, in the tower's input range.
    pub fn all_pixels(&self) -> Vec<f32> {
        (0..self.len())
            .flat_map(|i| to_unit_range(&self.canvas(i)))
            .collect()
    }
}
