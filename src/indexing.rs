//! Catalogue -> encoders -> index: embeds every product and assembles the index,
//! reporting progress and everything that went wrong along the way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::catalog::{Catalog, Split};
use crate::encoder::preprocess::load_image;
use crate::encoder::{embed_texts_cached, fuse, Model};
use crate::index::{Header, Index, StoredProduct, VectorKind};

/// Images decoded and embedded per step.
const IMAGE_STEP: usize = 256;

/// What indexing did, for the closing summary.
#[derive(Debug, Default)]
pub struct Report {
    pub indexed: usize,
    pub truncated_texts: usize,
    pub images_embedded: usize,
    /// Products whose image could not be used: (id, reason). They keep their text
    /// vector; their average vector is the text vector; image mode skips them.
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

/// A progress bar with rate and ETA, hidden when `visible` is false (not a terminal).
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
            let decoded: Vec<_> = chunk
                .par_iter()
                .map(|p| match &p.image {
                    Some(path) => load_image(path).map_err(|e| format!("{e:#}")),
                    None => Err("no image path".to_string()),
                })
                .collect();
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
        let average: Vec<f32> = (0..products.len())
            .flat_map(|i| {
                let t = &text[i * dim..(i + 1) * dim];
                if has_image[i] {
                    fuse(t, &image[i * dim..(i + 1) * dim], 0.5)
                } else {
                    t.to_vec()
                }
            })
            .collect();
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
