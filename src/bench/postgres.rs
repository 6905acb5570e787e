//! The embedded store beside PostgreSQL + pgvector, through the same `Store` /
//! `StoreWriter` traits, on the same vectors in one run: bulk load, HNSW build, query
//! latency (exact and HNSW, unfiltered and with a filter matching 5% of products),
//! recall@10 of HNSW against each store's exact answer, and durable single upserts.
//!
//! The vectors are those of the ANN benchmark (an index's own, then noisy copies up to
//! `rows`); product `i` gets the attribute `shard = i % 20`, so `shard=0` matches 5%.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::ann::{bench_vectors, fmt, timing, DIM_QUERIES};
use super::{row, Row};
use crate::catalog::Product;
use crate::store::{
    AnnMode, AnnPolicy, Candidates, Entry, Filter, Location, Method, Space, StoreMeta,
    StoredProduct, VectorKind,
};

/// Queries per measurement (of the ANN benchmark's 500): PostgreSQL's exact scans of
/// 200k rows take a while.
const QUERIES: usize = 200;
const BATCH: usize = 1000;
const SINGLE_UPSERTS: usize = 200;

fn entry(i: usize, v: &[f32]) -> Entry {
    let mut attributes = BTreeMap::new();
    attributes.insert("shard".to_string(), (i % 20).to_string());
    Entry {
        product: StoredProduct {
            product: Product {
                id: format!("b{i}"),
                text: format!("benchmark product {i}"),
                broad: None,
                fine: None,
                attributes,
                image: None,
            },
            has_image: false,
            content_hash: i as u64,
        },
        vectors: [(VectorKind::Text, v.to_vec())].into_iter().collect(),
    }
}

/// Runs both stores on `rows` vectors made from the index at `index`; `postgres` is a
/// URL whose table (default `vitrina_bench`) is replaced.
pub fn run(index: &Path, postgres: &str, rows: usize) -> Result<Vec<Row>> {
    let v = bench_vectors(index, rows)?;
    let dim = v.dim;
    let meta = StoreMeta {
        model: "bench".into(),
        model_dir: None,
        dim,
        kinds: vec![VectorKind::Text],
        catalog: "bench".into(),
    };
    let mut out = vec![row(
        format!(
            "vectors: {rows} x {dim} ({} of the index's {:?} vectors, then noisy copies); {QUERIES} title vectors as queries; \
             filter `shard=0` matches 5%",
            v.source_rows, v.kind
        ),
        "",
    )];
    let tmp = tempfile::tempdir()?;
    let url = if postgres.contains("table=") {
        postgres.to_string()
    } else {
        let sep = if postgres.contains('?') { '&' } else { '?' };
        format!("{postgres}{sep}table=vitrina_bench")
    };
    drop_table(&url)?;
    let stores = [
        ("embedded", Location::Folder(tmp.path().join("bench"))),
        ("PostgreSQL", url.parse::<Location>()?),
    ];
    let queries: Vec<&[f32]> = v.queries.chunks_exact(dim).take(QUERIES).collect();
    const { assert!(QUERIES <= DIM_QUERIES) };
    let filter = Filter::parse(&["shard=0"])?;
    for (name, location) in &stores {
        // Bulk load without graphs, then build them: two figures.
        let mut writer = location.create(&meta)?;
        writer.set_ann(AnnPolicy {
            mode: AnnMode::Never,
            ..AnnPolicy::default()
        })?;
        let t = Instant::now();
        for (c, chunk) in v.base.chunks(dim * BATCH).enumerate() {
            let entries = chunk
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, x)| entry(c * BATCH + j, x))
                .collect();
            writer.upsert(entries)?;
        }
        writer.optimize()?;
        out.push(row(
            format!("{name}: bulk load, batches of {BATCH}"),
            format!(
                "{:.1} s ({:.0} products/s)",
                t.elapsed().as_secs_f64(),
                rows as f64 / t.elapsed().as_secs_f64()
            ),
        ));
        let policy = AnnPolicy {
            mode: AnnMode::Always,
            ..AnnPolicy::default()
        };
        writer.set_ann(policy)?;
        let t = Instant::now();
        writer.optimize()?;
        out.push(row(
            format!(
                "{name}: HNSW build (M {}, ef_construction {})",
                policy.params.m, policy.params.ef_construction
            ),
            format!("{:.1} s", t.elapsed().as_secs_f64()),
        ));
        drop(writer);
        let store = location.open()?.current();
        for filtered in [false, true] {
            let label = if filtered { "filter 5%" } else { "unfiltered" };
            let mut truth = Vec::new();
            let mut ms = Vec::new();
            // Auto: the HNSW index, except where the store routes a selective filter to
            // an exact scan (the embedded store below 10% of products; PostgreSQL when
            // the index scan comes back short): what a search gets by default.
            for method in [Method::Exact, Method::Auto] {
                ms.clear();
                let (mut found, mut returned) = (0, 0);
                for (qi, q) in queries.iter().enumerate() {
                    let c = Candidates {
                        filter: filtered.then_some(&filter),
                        method,
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let hits = store.top_k(Space::Kind(VectorKind::Text), q, 10, &c)?;
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    let ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
                    returned += ids.len();
                    if method == Method::Exact {
                        truth.push(ids);
                    } else {
                        found += ids.iter().filter(|id| truth[qi].contains(id)).count();
                    }
                }
                let what = if method == Method::Exact {
                    "exact".to_string()
                } else {
                    format!(
                        "default search (HNSW ef_search {}): recall@10 {:.3}, {:.1} results",
                        policy.params.ef_search,
                        found as f64 / (10 * queries.len()) as f64,
                        returned as f64 / queries.len() as f64
                    )
                };
                out.push(row(
                    format!("{name}: {label}, {what}"),
                    fmt(&timing(ms.clone())),
                ));
            }
        }
        drop(store);
        // Durable single-product upserts (each its own synced batch / transaction).
        let mut writer = location.writer()?;
        let t = Instant::now();
        for i in 0..SINGLE_UPSERTS {
            let r = i % rows;
            writer.upsert(vec![entry(r, &v.base[r * dim..(r + 1) * dim])])?;
        }
        out.push(row(
            format!("{name}: single upserts, each durable"),
            format!(
                "{:.0} upserts/s",
                SINGLE_UPSERTS as f64 / t.elapsed().as_secs_f64()
            ),
        ));
        writer.finish()?;
    }
    drop_table(&url)?;
    Ok(out)
}

/// Starts from an empty table (a previous run's is dropped).
fn drop_table(url: &str) -> Result<()> {
    let Location::Postgres(pg) = url.parse::<Location>()? else {
        anyhow::bail!("--postgres takes a postgres:// URL");
    };
    pg.drop_table()
}
