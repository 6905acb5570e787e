//! The embedded store beside redb, on the same synthetic products (44,446 products x
//! 3 vectors x 384 floats, the Myntra index's shape), in one run:
//!
//! ```sh
//! cargo run --release --example store_peers [PRODUCTS]
//! ```
//!
//! Measures what the store does all day: synced single upserts, batches of 1,000, and
//! opening the store with every vector loaded into the arrays a search scans. This is
//! the measurement behind the choice of a write-ahead log + array file over an embedded
//! database (README, "Why a log and an array file").

use std::collections::BTreeMap;
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use vitrina::catalog::Product;
use vitrina::store::{
    EmbeddedWriter, Entry, LiveStore, Store, StoreMeta, StoreWriter, StoredProduct, VectorKind,
};

const DIM: usize = 384;
const KINDS: [VectorKind; 3] = [VectorKind::Text, VectorKind::Image, VectorKind::Average];
const PRODUCTS: TableDefinition<&str, &[u8]> = TableDefinition::new("products");

fn entry(i: usize) -> Entry {
    let mut vectors = BTreeMap::new();
    for (k, kind) in KINDS.iter().enumerate() {
        let mut v: Vec<f32> = (0..DIM)
            .map(|j| (((i * 31 + j * 7 + k * 13) % 97) as f32 - 48.0) / 48.0)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        vectors.insert(*kind, v);
    }
    Entry {
        product: StoredProduct {
            product: Product {
                id: format!("p{i}"),
                text: format!("Product number {i} in a fine colour"),
                broad: Some("Topwear".into()),
                fine: Some("Tshirts".into()),
                attributes: [("gender".to_string(), "Men".to_string())].into(),
                image: Some(format!("/data/images/{i}.jpg").into()),
            },
            has_image: true,
            content_hash: i as u64,
        },
        vectors,
    }
}

/// The same record a store keeps per product: fields as JSON, then the vectors.
fn record(e: &Entry) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&e.product).unwrap();
    let json_len = bytes.len() as u32;
    for kind in KINDS {
        bytes.extend_from_slice(bytemuck::cast_slice(&e.vectors[&kind]));
    }
    bytes.extend_from_slice(&json_len.to_le_bytes());
    bytes
}

fn rate(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of products"))
        .unwrap_or(44_446);
    let entries: Vec<Entry> = (0..n).map(entry).collect();
    let singles: Vec<Entry> = (n..n + 300).map(entry).collect();
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // vitrina's embedded store.
    let ours = tempfile::tempdir().unwrap();
    let meta = StoreMeta {
        model: "synthetic".into(),
        model_dir: None,
        dim: DIM,
        kinds: KINDS.to_vec(),
        catalog: "synthetic".into(),
    };
    let mut w = EmbeddedWriter::create(ours.path(), &meta).unwrap();
    let started = Instant::now();
    for chunk in entries.chunks(1000) {
        w.upsert(chunk.to_vec()).unwrap();
    }
    let ours_batch = rate(n, started);
    w.compact().unwrap();
    let started = Instant::now();
    for e in &singles {
        w.upsert(vec![e.clone()]).unwrap();
    }
    let ours_single = rate(singles.len(), started);
    w.compact().unwrap();
    drop(w);
    let started = Instant::now();
    let live = LiveStore::open(ours.path()).unwrap();
    let ours_open = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(live.snapshot().len(), n + singles.len());

    // redb: one table, id -> record, the same records.
    let theirs = tempfile::tempdir().unwrap();
    let path = theirs.path().join("store.redb");
    let db = Database::create(&path).unwrap();
    let started = Instant::now();
    for chunk in entries.chunks(1000) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PRODUCTS).unwrap();
            for e in chunk {
                t.insert(e.product.id(), record(e).as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let redb_batch = rate(n, started);
    let started = Instant::now();
    for e in &singles {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PRODUCTS).unwrap();
            t.insert(e.product.id(), record(e).as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let redb_single = rate(singles.len(), started);
    drop(db);
    // Opening = what a reader needs before its first search: every vector in the
    // contiguous arrays the scan reads, plus the products.
    let started = Instant::now();
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(PRODUCTS).unwrap();
    let mut arrays: Vec<Vec<f32>> = (0..3)
        .map(|_| Vec::with_capacity((n + 300) * DIM))
        .collect();
    let mut products = Vec::new();
    for item in t.iter().unwrap() {
        let (_, value) = item.unwrap();
        let bytes = value.value();
        let json_len = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
        let p: StoredProduct = serde_json::from_slice(&bytes[..json_len]).unwrap();
        let floats: &[u8] = &bytes[json_len..bytes.len() - 4];
        for (k, array) in arrays.iter_mut().enumerate() {
            array.extend(
                floats[k * DIM * 4..(k + 1) * DIM * 4]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            );
        }
        products.push(p);
    }
    let redb_open = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(products.len(), n + singles.len());

    rows.push((
        "upserts in batches of 1,000 (products/s)".into(),
        format!("{ours_batch:.0}"),
        format!("{redb_batch:.0}"),
    ));
    rows.push((
        "single upserts, each durable (upserts/s)".into(),
        format!("{ours_single:.0}"),
        format!("{redb_single:.0}"),
    ));
    rows.push((
        format!("open with all {} products loaded for search (ms)", n + 300),
        format!("{ours_open:.0}"),
        format!("{redb_open:.0}"),
    ));
    rows.push((
        "size on disk (MB)".into(),
        format!("{:.1}", dir_bytes(ours.path()) as f64 / 1e6),
        format!("{:.1}", dir_bytes(theirs.path()) as f64 / 1e6),
    ));
    rows.push((
        "a second process writes while a server reads".into(),
        "yes".into(),
        "no (one process opens the file at a time)".into(),
    ));
    println!("| measurement | vitrina store | redb 4 |\n|---|---:|---:|");
    for (what, a, b) in rows {
        println!("| {what} | {a} | {b} |");
    }
}
