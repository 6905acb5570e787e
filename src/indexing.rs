//! Catalogue -> encoders -> index: embeds every product and assembles the index,
//! reporting progress and everything that went wrong along the way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::catalog::{Catalog, Split};
use crate::encoder::preprocess::load_product_image;
use crate::encoder::{embed_texts_cached, fuse_rows, Model};
use crate::index::{top_k, Header, Index, StoredProduct, VectorKind};

/// Images decoded and embedded per step.
const IMAGE_STEP: usize = 256;

/// What indexing did, for the closing summary.
#[derive(Debug, Default)]
pub struct Report {
    pub indexed: usize,
    pub truncated_texts: usize,
    pub images_embedded: usize,
    /// Products whose image could not be used: (id, reason). Image mode leaves them
    /// out; their image vector (for fusion and diversification) is borrowed from the
    /// product with the closest text.
    pub images_missing: Vec<(String, String)>,
    pub text_seconds: f64,
    pub image_seconds: f64,
    pub elapsed: Duration,
}

impl Report {
    pub fn items_per_second(&self) -> f64 {
        self.indexed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Gives each product without a usable image the image vector of the product whose
/// text is closest to its own. Image mode still leaves such products out (`has_image`
/// stays false); the borrowed look keeps their fused vectors on the same scale as
/// everyone else's. A text vector in place of the missing image would not: text-to-text
/// similarities run far higher than text-to-image ones, so image-less products would
/// crowd the top of every average-mode result list.
fn borrow_missing_images(text: &[f32], image: &mut [f32], has_image: &[bool], dim: usize) {
    let missing: Vec<usize> = (0..has_image.len()).filter(|&i| !has_image[i]).collect();
    if missing.len() == has_image.len() {
        return;
    }
    let borrowed: Vec<(usize, usize)> = missing
        .par_iter()
        .map(|&i| {
            let hit = top_k(text, dim, &text[i * dim..(i + 1) * dim], 1, |j| {
                has_image[j]
            });
            (i, hit[0].index)
        })
        .collect();
    for (i, j) in borrowed {
        image.copy_within(j * dim..(j + 1) * dim, i * dim);
    }
}

/// A progress bar with rate and ETA (indicatif draws it only on a terminal).
pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Embeds the catalogue's products with `model` and returns the index: text vectors
/// always; image and average vectors when the model has an image tower and the
/// catalogue has images.
pub fn build(catalog: &Catalog, split: Split, model: &Model) -> Result<(Index, Report)> {
    let started = Instant::now();
    let products = &catalog.products;
    let dim = model.dim();
    let mut report = Report::default();

    let texts: Vec<&str> = products.iter().map(|p| p.text.as_str()).collect();
    let bar = progress_bar(texts.len(), "embedding titles");
    let embedded = embed_texts_cached(model.text.as_ref(), &texts, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    report.truncated_texts = embedded.truncated;
    let text = embedded.vectors;
    report.text_seconds = started.elapsed().as_secs_f64();

    let mut has_image = vec![false; products.len()];
    let mut vectors = BTreeMap::new();
    let images_started = Instant::now();
    if let (Some(encoder), Some(_)) = (&model.image, &catalog.spec.image) {
        let mut image = vec![0f32; products.len() * dim];
        let bar = progress_bar(products.len(), "embedding images");
        for (c, chunk) in products.chunks(IMAGE_STEP).enumerate() {
            let decoded: Vec<_> = chunk.par_iter().map(load_product_image).collect();
            let mut ok_rows = Vec::new();
            let mut ok_images = Vec::new();
            for (r, (product, result)) in chunk.iter().zip(decoded).enumerate() {
                match result {
                    Ok(img) => {
                        ok_rows.push(c * IMAGE_STEP + r);
                        ok_images.push(img);
                    }
                    Err(reason) => report.images_missing.push((product.id.clone(), reason)),
                }
            }
            let out = encoder.embed_images(&ok_images)?;
            for (row, v) in ok_rows.iter().zip(out.vectors.chunks_exact(dim)) {
                image[row * dim..(row + 1) * dim].copy_from_slice(v);
                has_image[*row] = true;
            }
            report.images_embedded += ok_rows.len();
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        borrow_missing_images(&text, &mut image, &has_image, dim);
        let average = fuse_rows(&text, &image, dim, 0.5);
        vectors.insert(VectorKind::Image, image);
        vectors.insert(VectorKind::Average, average);
    }
    report.image_seconds = images_started.elapsed().as_secs_f64();
    vectors.insert(VectorKind::Text, text);

    let header = Header {
        model: model.id().to_string(),
        model_dir: model
            .source()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf())),
        dim,
        catalog: catalog.spec.name.clone(),
        split: split.name().to_string(),
        products: products
            .iter()
            .zip(&has_image)
            .map(|(p, &has_image)| StoredProduct {
                product: p.clone(),
                has_image,
            })
            .collect(),
        blocks: Vec::new(),
    };
    report.indexed = products.len();
    report.elapsed = started.elapsed();
    Ok((Index::new(header, vectors)?, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_image_is_borrowed_from_the_closest_text_with_an_image() {
        // Texts: 0 ~ 2 (close), 1 far; product 2 has no image.
        let text = [1.0, 0.0, 0.0, 1.0, 0.9, 0.1];
        let mut image = [0.5, 0.5, -1.0, 0.0, 0.0, 0.0];
        borrow_missing_images(&text, &mut image, &[true, true, false], 2);
        assert_eq!(image, [0.5, 0.5, -1.0, 0.0, 0.5, 0.5]);
        // Nothing to borrow from: vectors stay as they are.
        let mut none = [0.0; 4];
        borrow_missing_images(&text[..4], &mut none, &[false, false], 2);
        assert_eq!(none, [0.0; 4]);
    }
}
