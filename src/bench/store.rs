//! Store benchmarks: what keeping a live catalogue costs. A full build, a re-sync of the
//! unchanged catalogue and one with 1% of its titles edited, measured one after the
//! other in one run on the same machine; then upserts one at a time and in batches of
//! 1,000, with and without embedding, and how soon a reader sees a write.

use std::time::Instant;

use anyhow::Result;

use super::{row, Row};
use crate::catalog::Catalog;
use crate::encoder::{set_text_cache, Model};
use crate::indexing::{embed_entries, sync, vector_hash, Report, SyncOptions};
use crate::store::{EmbeddedWriter, Entry, LiveStore, Store, StoreWriter};

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// `n` copies of stored products under new ids (embedding excluded from the timing).
fn copies(store: &dyn Store, tag: &str, n: usize) -> Result<Vec<Entry>> {
    let products = store.products()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = products[i % products.len()].clone();
        let ids = [p.id().to_string()];
        let vectors = store
            .meta()
            .kinds
            .iter()
            .map(|&k| {
                let v = store.vectors(k, &[ids[0].as_str()])?.remove(0);
                Ok((k, v.expect("stored")))
            })
            .collect::<Result<_>>()?;
        p.product.id = format!("{tag}-{i}");
        out.push(Entry {
            product: p,
            vectors,
        });
    }
    Ok(out)
}

/// Runs the store benchmarks on `catalog` in a temporary folder.
pub fn run(catalog: &Catalog, model: &Model) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let n = catalog.products.len();
    let meta = crate::indexing::store_meta(model, &catalog.spec.name, catalog.spec.image.is_some());
    set_text_cache(false);

    let started = Instant::now();
    let mut writer = EmbeddedWriter::create(dir, &meta)?;
    let report = sync(catalog, model, &mut writer, &SyncOptions::default())?;
    writer.compact()?;
    drop(writer);
    let full = secs(started);
    rows.push(row(
        format!("sync: full build of {n} products (every title and image embedded, no cache)"),
        format!(
            "{full:.1} s ({:.0} products/s; titles {:.1} s, images {:.1} s)",
            n as f64 / full,
            report.text_seconds,
            report.image_seconds
        ),
    ));

    let started = Instant::now();
    let mut writer = EmbeddedWriter::create(dir, &meta)?;
    let report = sync(catalog, model, &mut writer, &SyncOptions::default())?;
    drop(writer);
    let same = secs(started);
    rows.push(row(
        format!(
            "sync: the same catalogue again ({} unchanged: hash every title and image, embed nothing)",
            report.unchanged
        ),
        format!("{same:.2} s ({:.0}x faster than the full build)", full / same),
    ));

    let mut edited = Catalog {
        spec: catalog.spec.clone(),
        products: catalog.products.clone(),
        rejected: Vec::new(),
        repaired_lines: Vec::new(),
        cut_lines: Vec::new(),
        placeholder_lines: Vec::new(),
    };
    for p in edited.products.iter_mut().step_by(100) {
        p.text.push_str(" (new season)");
    }
    let started = Instant::now();
    let mut writer = EmbeddedWriter::create(dir, &meta)?;
    let report = sync(&edited, model, &mut writer, &SyncOptions::default())?;
    writer.compact()?;
    let changed = secs(started);
    rows.push(row(
        format!(
            "sync: 1% of titles edited ({} re-embedded, then compacted)",
            report.embedded
        ),
        format!(
            "{changed:.2} s ({:.0}x faster than the full build)",
            full / changed
        ),
    ));

    let started = Instant::now();
    let live = LiveStore::open(dir)?;
    rows.push(row(
        format!("open the store ({n} products, checksums verified)"),
        format!("{:.0} ms", secs(started) * 1e3),
    ));

    // Upserts, embedding excluded: each call is one synced log record.
    let singles = copies(writer.current(), "one", 200)?;
    let started = Instant::now();
    for e in singles {
        writer.upsert(vec![e])?;
    }
    rows.push(row(
        "upserts one at a time, embedding excluded (each synced to disk)",
        format!("{:.0} upserts/s", 200.0 / secs(started)),
    ));
    let batches: Vec<Vec<Entry>> = (0..5)
        .map(|b| copies(writer.current(), &format!("batch{b}"), 1000))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    for batch in batches {
        writer.upsert(batch)?;
    }
    rows.push(row(
        "upserts in batches of 1,000, embedding excluded",
        format!("{:.0} products/s", 5000.0 / secs(started)),
    ));

    // A reader (a running server) sees a write at its next refresh.
    let e = copies(writer.current(), "seen", 1)?;
    live.refresh()?;
    writer.upsert(e)?;
    let started = Instant::now();
    live.refresh()?;
    let seen = secs(started);
    anyhow::ensure!(live.snapshot().product("seen-0")?.is_some(), "not seen");
    rows.push(row(
        "a reader picks up one upsert (refresh after the write)",
        format!("{:.1} ms", seen * 1e3),
    ));

    // Upserts, embedding included.
    let fresh: Vec<_> = catalog
        .products
        .iter()
        .take(1050)
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            p.id = format!("fresh-{i}");
            p.text.push_str(" (restock)");
            p
        })
        .collect();
    let mut report = Report::default();
    let started = Instant::now();
    for p in &fresh[..50] {
        let hash = vector_hash(p).0;
        let entries = embed_entries(
            model,
            &meta,
            std::slice::from_ref(p),
            &[hash],
            writer.current(),
            &mut report,
        )?;
        writer.upsert(entries)?;
    }
    rows.push(row(
        "upserts one at a time, embedding included (title + image)",
        format!("{:.0} upserts/s", 50.0 / secs(started)),
    ));
    let started = Instant::now();
    let batch = &fresh[50..];
    let hashes: Vec<u64> = batch.iter().map(|p| vector_hash(p).0).collect();
    let entries = embed_entries(model, &meta, batch, &hashes, writer.current(), &mut report)?;
    writer.upsert(entries)?;
    rows.push(row(
        "upserts in a batch of 1,000, embedding included",
        format!("{:.0} products/s", batch.len() as f64 / secs(started)),
    ));
    let started = Instant::now();
    writer.compact()?;
    rows.push(row(
        format!(
            "compaction ({} products, {} vector kinds)",
            writer.current().len(),
            writer.current().meta().kinds.len()
        ),
        format!("{:.2} s", secs(started)),
    ));
    set_text_cache(true);
    Ok(rows)
}
