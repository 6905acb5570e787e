//! Catalogue -> encoders -> index: embeds every product and assembles the index,
//! reporting progress and everything that went wrong along the way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::catalog::{Catalog, Split};
use crate::encoder::Model;
use crate::index::{Header, Index, StoredProduct, VectorKind};

/// Products embedded per step of the progress bar.
const STEP: usize = 256;

/// What indexing did, for the closing summary.
#[derive(Debug, Default)]
pub struct Report {
    pub indexed: usize,
    pub truncated_texts: usize,
    pub elapsed: Duration,
}

impl Report {
    pub fn items_per_second(&self) -> f64 {
        self.indexed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A progress bar with rate and ETA, hidden when stderr is not a terminal.
pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Embeds the catalogue's products with `model` and returns the index.
pub fn build(
    catalog: &Catalog,
    split: Split,
    model: &Model,
    show_progress: bool,
) -> Result<(Index, Report)> {
    let started = Instant::now();
    let products = &catalog.products;
    let dim = model.dim();
    let bar = if show_progress {
        progress_bar(products.len(), "embedding titles")
    } else {
        ProgressBar::hidden()
    };
    let mut text = Vec::with_capacity(products.len() * dim);
    let mut report = Report::default();
    for chunk in products.chunks(STEP) {
        let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
        let out = model.text.embed_texts(&texts)?;
        report.truncated_texts += out.truncated;
        text.extend_from_slice(&out.vectors);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let header = Header {
        model: model.id(),
        dim,
        catalog: catalog.spec.name.clone(),
        split: split.name().to_string(),
        products: products
            .iter()
            .map(|p| StoredProduct {
                product: p.clone(),
                has_image: false,
            })
            .collect(),
        blocks: Vec::new(),
    };
    let mut vectors = BTreeMap::new();
    vectors.insert(VectorKind::Text, text);
    report.indexed = products.len();
    report.elapsed = started.elapsed();
    Ok((Index::new(header, vectors)?, report))
}
