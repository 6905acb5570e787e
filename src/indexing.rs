//! Catalogue -> encoders -> store: keeps a store in step with a catalogue.
//!
//! A product is known by its id. A sync embeds only what changed: each stored product
//! records a hash of what its vectors were computed from (text and image bytes), so an
//! unchanged product costs one hash, a product whose other fields changed (categories,
//! attributes, image path) is rewritten with its old vectors, and only new products or
//! changed texts and images are embedded. Products are written in batches of
//! [`BATCH`], each one durable once written: a sync killed half-way resumes where it
//! stopped.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rayon::prelude::*;

use crate::catalog::{fnv1a64, Catalog, Product};
use crate::encoder::preprocess::load_product_image;
use crate::encoder::{embed_texts_cached, fuse, Model};
use crate::progress::Progress;
use crate::store::{
    Candidates, Entry, MemoryStore, Snapshot, Space, Store, StoreMeta, StoreWriter, StoredProduct,
    VectorKind,
};

/// Products embedded and written per batch (one write-ahead-log record each).
pub const BATCH: usize = 256;

/// What a sync does with stored products that the catalogue no longer has.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Delete them (otherwise they are kept and counted).
    pub prune: bool,
}

/// What indexing did, for the closing summary.
#[derive(Debug, Default)]
pub struct Report {
    /// New products.
    pub added: usize,
    /// Products that changed (re-embedded, or rewritten with their old vectors when only
    /// fields that do not feed the vectors changed).
    pub updated: usize,
    /// Of `updated`, those whose vectors were reused.
    pub updated_without_embedding: usize,
    pub unchanged: usize,
    pub pruned: usize,
    /// Stored products absent from the catalogue, kept (no `--prune`).
    pub absent_kept: usize,
    /// Products embedded in this run.
    pub embedded: usize,
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
    pub fn embedded_per_second(&self) -> f64 {
        self.embedded as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The store description for a model and a catalogue: text vectors always; image and
/// average vectors when the model has an image tower and the catalogue has images.
pub fn store_meta(model: &Model, catalog: &str, with_images: bool) -> StoreMeta {
    let mut kinds = vec![VectorKind::Text];
    if with_images && model.image.is_some() {
        kinds.extend([VectorKind::Image, VectorKind::Average]);
    }
    StoreMeta {
        model: model.id().to_string(),
        model_dir: model
            .source()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf())),
        dim: model.dim(),
        kinds,
        catalog: catalog.to_string(),
    }
}

/// Hash of what a product's vectors are computed from: its text and its image bytes
/// (or the fact that it has none), and the turn the image's EXIF tag asks for, if any:
/// indexes built before photos were turned hold such photos' vectors sideways, and the
/// turn in the hash makes a sync re-embed exactly those. Also says whether the image
/// file could be read.
pub fn vector_hash(product: &Product) -> (u64, bool) {
    let mut key = product.text.as_bytes().to_vec();
    key.push(0);
    let readable = match product.image.as_deref().map(std::fs::read) {
        Some(Ok(bytes)) => {
            key.extend_from_slice(&bytes);
            let turn = crate::encoder::preprocess::exif_orientation(&bytes);
            if turn != image::metadata::Orientation::NoTransforms {
                key.extend_from_slice(format!("\0turned {}", turn.to_exif()).as_bytes());
            }
            true
        }
        Some(Err(_)) => {
            key.extend_from_slice(b"\0unreadable image");
            false
        }
        None => {
            key.extend_from_slice(b"\0no image");
            false
        }
    };
    (fnv1a64(&key), readable)
}

/// Embeds products (text; image and average when the store has them) into entries.
/// A product without a usable image borrows the image vector of the product whose text
/// is closest to its own, among this batch and `store`. Image mode still leaves such
/// products out (`has_image` stays false); the borrowed look keeps their fused vectors
/// on the same scale as everyone else's. A text vector in place of the missing image
/// would not: text-to-text similarities run far higher than text-to-image ones, so
/// image-less products would crowd the top of every average-mode result list.
pub fn embed_entries(
    model: &Model,
    meta: &StoreMeta,
    products: &[Product],
    hashes: &[u64],
    store: &dyn Store,
    report: &mut Report,
) -> Result<Vec<Entry>> {
    let dim = meta.dim;
    let started = Instant::now();
    let texts: Vec<&str> = products.iter().map(|p| p.text.as_str()).collect();
    let embedded = embed_texts_cached(model.text.as_ref(), &texts, |_| {})?;
    report.truncated_texts += embedded.truncated;
    let text = embedded.vectors;
    report.text_seconds += started.elapsed().as_secs_f64();

    let with_images = meta.kinds.contains(&VectorKind::Image);
    let mut image = vec![0f32; products.len() * dim];
    let mut has_image = vec![false; products.len()];
    if with_images {
        let started = Instant::now();
        let encoder = model.image_encoder()?;
        let decoded: Vec<_> = products.par_iter().map(load_product_image).collect();
        let mut ok_rows = Vec::new();
        let mut ok_images = Vec::new();
        for (r, (product, result)) in products.iter().zip(decoded).enumerate() {
            match result {
                Ok(img) => {
                    ok_rows.push(r);
                    ok_images.push(img);
                }
                Err(reason) => report.images_missing.push((product.id.clone(), reason)),
            }
        }
        let out = encoder.embed_images(&ok_images)?;
        for (&row, v) in ok_rows.iter().zip(out.vectors.chunks_exact(dim)) {
            image[row * dim..(row + 1) * dim].copy_from_slice(v);
            has_image[row] = true;
        }
        report.images_embedded += ok_rows.len();
        borrow_missing_images(&text, &mut image, &has_image, dim, store)?;
        report.image_seconds += started.elapsed().as_secs_f64();
    }
    report.embedded += products.len();
    Ok(products
        .iter()
        .enumerate()
        .map(|(r, p)| {
            let t = text[r * dim..(r + 1) * dim].to_vec();
            let mut vectors = std::collections::BTreeMap::new();
            if with_images {
                let i = image[r * dim..(r + 1) * dim].to_vec();
                vectors.insert(VectorKind::Average, fuse(&t, &i, 0.5));
                vectors.insert(VectorKind::Image, i);
            }
            vectors.insert(VectorKind::Text, t);
            Entry {
                product: StoredProduct {
                    product: p.clone(),
                    has_image: has_image[r],
                    content_hash: hashes[r],
                },
                vectors,
            }
        })
        .collect())
}

/// See [`embed_entries`]: fills the image rows of products without one.
fn borrow_missing_images(
    text: &[f32],
    image: &mut [f32],
    has_image: &[bool],
    dim: usize,
    store: &dyn Store,
) -> Result<()> {
    for i in (0..has_image.len()).filter(|&i| !has_image[i]) {
        let q = &text[i * dim..(i + 1) * dim];
        let local = crate::store::scan::top_k(text, dim, q, 1, |j| has_image[j]);
        let stored = store.top_k(
            Space::Kind(VectorKind::Text),
            q,
            1,
            &Candidates {
                with_image_only: true,
                ..Candidates::default()
            },
        )?;
        // The closer of the best in this batch and the best already stored.
        let from_store = match (local.first(), stored.first()) {
            (Some(l), Some(s)) => s.score > l.score,
            (None, Some(_)) => true,
            _ => false,
        };
        let borrowed: Option<Vec<f32>> = if from_store {
            store
                .vectors(VectorKind::Image, &[&stored[0].id])?
                .remove(0)
        } else {
            local
                .first()
                .map(|h| image[h.row * dim..(h.row + 1) * dim].to_vec())
        };
        if let Some(v) = borrowed {
            image[i * dim..(i + 1) * dim].copy_from_slice(&v);
        }
    }
    Ok(())
}

/// Brings `writer`'s store in step with the catalogue's (selected) products.
pub fn sync(
    catalog: &Catalog,
    model: &Model,
    writer: &mut dyn StoreWriter,
    options: &SyncOptions,
) -> Result<Report> {
    let started = Instant::now();
    let mut report = Report::default();
    let meta = writer.current().meta().clone();
    let existing: HashMap<String, StoredProduct> = writer
        .current()
        .products()?
        .into_iter()
        .map(|p| (p.id().to_string(), p))
        .collect();
    let hashed: Vec<(u64, bool)> = catalog.products.par_iter().map(vector_hash).collect();
    let with_images = meta.kinds.contains(&VectorKind::Image);
    if with_images
        && catalog.spec.image.is_some()
        && !catalog.products.is_empty()
        && !hashed.iter().any(|h| h.1)
    {
        let example = catalog.products[0]
            .image
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        bail!(
            "catalogue `{}`: none of its {} image paths can be read (the first is {example}); \
             check `image` in the catalogue file, or remove it if the catalogue has no images",
            catalog.spec.name,
            catalog.products.len()
        );
    }

    let mut to_embed: Vec<(usize, u64)> = Vec::new();
    let mut refresh: Vec<(usize, u64, bool)> = Vec::new();
    for (i, (p, &(hash, _))) in catalog.products.iter().zip(&hashed).enumerate() {
        match existing.get(&p.id) {
            None => {
                report.added += 1;
                to_embed.push((i, hash));
            }
            Some(s) if s.content_hash == hash => {
                if s.product == *p {
                    report.unchanged += 1;
                } else {
                    report.updated += 1;
                    report.updated_without_embedding += 1;
                    refresh.push((i, hash, s.has_image));
                }
            }
            Some(_) => {
                report.updated += 1;
                to_embed.push((i, hash));
            }
        }
    }

    for chunk in refresh.chunks(BATCH) {
        let ids: Vec<&str> = chunk
            .iter()
            .map(|&(i, ..)| catalog.products[i].id.as_str())
            .collect();
        let mut kinds = Vec::new();
        for &kind in &meta.kinds {
            kinds.push((kind, writer.current().vectors(kind, &ids)?));
        }
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(j, &(i, hash, has_image))| Entry {
                product: StoredProduct {
                    product: catalog.products[i].clone(),
                    has_image,
                    content_hash: hash,
                },
                vectors: kinds
                    .iter()
                    .map(|(k, v)| (*k, v[j].clone().expect("stored product")))
                    .collect(),
            })
            .collect();
        writer.upsert(entries)?;
    }

    let bar = Progress::new(to_embed.len(), "embedding products");
    for chunk in to_embed.chunks(BATCH) {
        let products: Vec<Product> = chunk
            .iter()
            .map(|&(i, _)| catalog.products[i].clone())
            .collect();
        let hashes: Vec<u64> = chunk.iter().map(|&(_, h)| h).collect();
        let entries = embed_entries(
            model,
            &meta,
            &products,
            &hashes,
            writer.current(),
            &mut report,
        )?;
        writer.upsert(entries)?;
        bar.inc(chunk.len());
    }
    bar.finish();

    let listed: HashSet<&str> = catalog.products.iter().map(|p| p.id.as_str()).collect();
    let absent: Vec<String> = existing
        .keys()
        .filter(|id| !listed.contains(id.as_str()))
        .cloned()
        .collect();
    if options.prune {
        report.pruned = writer.delete(&absent)?.len();
    } else {
        report.absent_kept = absent.len();
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Embeds a catalogue into a store in RAM (evaluation without a folder, tests).
pub fn build_in_memory(catalog: &Catalog, model: &Model) -> Result<(Snapshot, Report)> {
    let meta = store_meta(model, &catalog.spec.name, catalog.spec.image.is_some());
    let mut store = MemoryStore::new(meta);
    let report = sync(catalog, model, &mut store, &SyncOptions::default())?;
    Ok((store.into_snapshot(), report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreMeta;

    #[test]
    fn a_missing_image_is_borrowed_from_the_closest_text_with_an_image() {
        let meta = StoreMeta {
            model: "m".into(),
            model_dir: None,
            dim: 2,
            kinds: vec![VectorKind::Text, VectorKind::Image, VectorKind::Average],
            catalog: "c".into(),
        };
        let empty = MemoryStore::new(meta);
        // Texts: 0 ~ 2 (close), 1 far; product 2 has no image.
        let text = [1.0, 0.0, 0.0, 1.0, 0.9, 0.1];
        let mut image = [0.5, 0.5, -1.0, 0.0, 0.0, 0.0];
        borrow_missing_images(&text, &mut image, &[true, true, false], 2, empty.current()).unwrap();
        assert_eq!(image, [0.5, 0.5, -1.0, 0.0, 0.5, 0.5]);
        // Nothing to borrow from: vectors stay as they are.
        let mut none = [0.0; 4];
        borrow_missing_images(&text[..4], &mut none, &[false, false], 2, empty.current()).unwrap();
        assert_eq!(none, [0.0; 4]);
    }

    /// A photo without an EXIF turn hashes as it always did (text, NUL, image bytes),
    /// so upgrading re-embeds nothing; a photo with one hashes differently, so the next
    /// sync re-embeds it upright in place of the sideways vector an older index holds.
    #[test]
    fn only_photos_with_an_exif_turn_change_their_hash() {
        use crate::encoder::preprocess::fixtures::{exif_block, tagged};
        let dir = tempfile::tempdir().unwrap();
        let product = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            Product {
                id: name.into(),
                text: "Black leather belt".into(),
                broad: None,
                fine: None,
                attributes: Default::default(),
                image: Some(path),
            }
        };
        let as_before =
            |bytes: &[u8]| fnv1a64(&[b"Black leather belt\0".as_slice(), bytes].concat());
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let plain = tagged(format, exif_block(1));
            assert_eq!(
                vector_hash(&product("plain", &plain)),
                (as_before(&plain), true)
            );
            let turned = tagged(format, exif_block(6));
            let (hash, readable) = vector_hash(&product("turned", &turned));
            assert!(readable);
            assert_ne!(hash, as_before(&turned), "{format:?}");
        }
    }
}
