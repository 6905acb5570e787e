//! The PostgreSQL store against a real PostgreSQL 16 + pgvector server, started by
//! `scripts/postgres.sh` (which installs it from PyPI on first use), so `cargo test`
//! alone runs these on a fresh machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{http, json_hits, vitrina, Server};

use vitrina::search::{Diversify, Mode, Ranking, Searcher};
use vitrina::store::{
    AnnMode, AnnPolicy, Candidates, Entry, Filter, Hit, Location, Method, Space, StoreMeta,
    StoredProduct, Unavailable, VectorKind,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh")
}

/// Starts (or finds) a server; returns its URL.
fn start_server(env: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/postgres.sh start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The shared test server's URL.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start_server(&[]))
}

/// A URL naming `table` on the shared test server, dropped first (tests own their
/// tables).
fn fresh_table(table: &str) -> String {
    fresh_table_on(server_url(), table)
}

/// A URL naming `table` on the server at `server`, dropped first: a data folder that
/// outlives a run (CI keeps `VITRINA_PG_HOME`) may hold the table from an older model.
fn fresh_table_on(server: &str, table: &str) -> String {
    let url = format!("{server}?table={table}");
    let Location::Postgres(pg) = url.parse::<Location>().unwrap() else {
        unreachable!("a postgres:// URL")
    };
    pg.drop_table().unwrap();
    url
}

const DIM: usize = 8;

fn meta(model: &str) -> StoreMeta {
    StoreMeta {
        model: model.into(),
        model_dir: None,
        dim: DIM,
        kinds: vec![VectorKind::Text, VectorKind::Image, VectorKind::Average],
        catalog: "toy".into(),
    }
}

fn unit(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = [tilt; DIM];
    v[axis % DIM] = 1.0;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Product `i`: text near axis i % 8, image near axis (i + 1) % 8, gender by i % 3.
fn entry(i: usize) -> Entry {
    let text = unit(i, 0.01 * (i as f32 % 7.0));
    let image = unit(i + 1, 0.02);
    let average: Vec<f32> = {
        let s: Vec<f32> = text.iter().zip(&image).map(|(a, b)| a + b).collect();
        let n = s.iter().map(|x| x * x).sum::<f32>().sqrt();
        s.iter().map(|x| x / n).collect()
    };
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "gender".to_string(),
        ["Men", "Women", "Unisex"][i % 3].to_string(),
    );
    attributes.insert("year".to_string(), (2010 + i % 10).to_string());
    Entry {
        product: StoredProduct {
            product: vitrina::catalog::Product {
                id: format!("p{i}"),
                text: format!("product {i}"),
                broad: Some(
                    if i.is_multiple_of(2) {
                        "Shoes"
                    } else {
                        "Apparel"
                    }
                    .into(),
                ),
                fine: None,
                attributes,
                image: None,
            },
            has_image: !i.is_multiple_of(5),
            content_hash: i as u64,
        },
        vectors: [
            (VectorKind::Text, text),
            (VectorKind::Image, image),
            (VectorKind::Average, average),
        ]
        .into_iter()
        .collect(),
    }
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

#[test]
fn schema_writes_filters_and_the_model_record() {
    let url = fresh_table("vitrina_test_schema");
    let location: Location = url.parse().unwrap();
    let mut writer = location.create(&meta("toy-model")).unwrap();
    writer.upsert((0..300).map(entry).collect()).unwrap();
    assert_eq!(writer.current().len(), 300);
    // Re-upserting replaces by id; a batch with a bad vector is refused whole.
    let mut changed = entry(7);
    changed.product.product.text = "renamed".into();
    writer.upsert(vec![changed]).unwrap();
    let mut bad = entry(1000);
    bad.vectors.get_mut(&VectorKind::Text).unwrap()[0] = f32::NAN;
    assert!(writer.upsert(vec![entry(999), bad]).is_err());
    assert_eq!(writer.current().len(), 300, "no half-written batch");
    assert_eq!(
        writer
            .current()
            .product("p7")
            .unwrap()
            .unwrap()
            .product
            .text,
        "renamed"
    );
    let deleted = writer
        .delete(&["p1".to_string(), "nope".to_string()])
        .unwrap();
    assert_eq!(deleted, vec!["p1".to_string()]);

    // Build the HNSW indexes, then ask for filtered results through the graph: a
    // selective filter still returns k (pgvector 0.6 alone would return fewer).
    writer
        .set_ann(AnnPolicy {
            mode: AnnMode::Always,
            ..AnnPolicy::default()
        })
        .unwrap();
    writer.optimize().unwrap();
    drop(writer);
    let live = location.open().unwrap();
    let store = live.current();
    assert_eq!(store.len(), 299);
    assert!(
        live.info().search.contains("HNSW"),
        "{}",
        live.info().search
    );
    let filter = Filter::parse(&["gender=men", "year>=2018", "broad=Shoes"]).unwrap();
    let expected: Vec<String> = store
        .products()
        .unwrap()
        .into_iter()
        .filter(|p| filter.matches(p))
        .map(|p| p.id().to_string())
        .collect();
    assert!(
        expected.len() >= 10 && expected.len() < 30,
        "{}",
        expected.len()
    );
    for method in [Method::Ann, Method::Exact] {
        let c = Candidates {
            filter: Some(&filter),
            method,
            ..Default::default()
        };
        let hits = store
            .top_k(Space::Kind(VectorKind::Text), &unit(3, 0.0), 10, &c)
            .unwrap();
        assert_eq!(hits.len(), 10, "{method:?}");
        assert!(hits.iter().all(|h| expected.contains(&h.id)), "{method:?}");
    }
    // Image mode leaves out products without an image; exclusions hold.
    let c = Candidates {
        with_image_only: true,
        exclude: &["p2"],
        method: Method::Exact,
        ..Default::default()
    };
    let hits = store
        .top_k(Space::Kind(VectorKind::Image), &unit(3, 0.02), 50, &c)
        .unwrap();
    assert_eq!(hits.len(), 50);
    for h in &hits {
        let n: usize = h.id[1..].parse().unwrap();
        assert!(!n.is_multiple_of(5) && n != 2, "{}", h.id);
    }
    // Facets come from the table.
    let facets = store.facets().unwrap();
    assert!(facets.get("gender").is_some_and(|f| f.products == 299));
    assert!(facets.get("year").is_some_and(|f| f.numeric));

    // Another model's vectors are refused, and so is a table of another format.
    let err = location.create(&meta("other-model")).err().unwrap();
    assert!(
        format!("{err:#}").contains("embedded by model `toy-model`"),
        "{err:#}"
    );
    let mut c = postgres::Client::connect(server_url(), postgres::NoTls).unwrap();
    c.execute(
        "UPDATE vitrina_stores SET format = 99 WHERE name = 'vitrina_test_schema'",
        &[],
    )
    .unwrap();
    let err = location.open().err().unwrap();
    assert!(
        format!("{err:#}").contains("another version of vitrina"),
        "{err:#}"
    );
}

#[test]
fn unreachable_servers_and_missing_databases_give_clear_errors() {
    let down: Location = "postgres://postgres@127.0.0.1:1/postgres?table=x"
        .parse()
        .unwrap();
    let err = down.open().err().unwrap();
    assert!(err.downcast_ref::<Unavailable>().is_some(), "{err:#}");
    assert!(
        format!("{err:#}").contains("cannot reach PostgreSQL at postgres://postgres@127.0.0.1:1"),
        "{err:#}"
    );
    let out = vitrina(&[
        "info",
        "--index",
        "postgres://postgres@127.0.0.1:1/postgres",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Is the server running"));

    let base = server_url().rsplit_once('/').unwrap().0.to_string();
    let missing: Location = format!("{base}/no_such_database").parse().unwrap();
    let err = missing.open().err().unwrap();
    assert!(
        format!("{err:#}").contains("create the database first"),
        "{err:#}"
    );
    let err = "postgres://a@b/c?table=Drop Table"
        .parse::<Location>()
        .err()
        .unwrap();
    assert!(err.to_string().contains("table name"), "{err}");
}

/// 1,000 Myntra test-split products indexed into a folder with the built-in model.
fn myntra_folder() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = vitrina(&[
            "index",
            "--catalog",
            "catalogs/myntra.toml",
            "--split",
            "test",
            "--limit",
            "1000",
            "--index",
            dir.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

/// Same ids in the same order, up to score ties: where the ids differ, both stores
/// scored a product equally (to 1e-5; they sum the dot products in different orders),
/// Both lists hold k + 1 hits, so a tie of the k-th with the next one shows.
fn assert_same_ranking(a: &[Hit], b: &[Hit], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {:?} vs {:?}", ids(a), ids(b));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x.score - y.score).abs() < 1e-5,
            "{what}: rank {i}: {} {} vs {} {}: {:?} vs {:?}",
            x.id,
            x.score,
            y.id,
            y.score,
            ids(a),
            ids(b)
        );
    }
    let k = a.len().saturating_sub(1);
    let mut x = ids(&a[..k]);
    let mut y = ids(&b[..k]);
    let clear: Vec<usize> = (0..a.len())
        .filter(|&i| (0..a.len()).all(|j| j == i || (a[i].score - a[j].score).abs() >= 1e-5))
        .collect();
    x.retain(|id| clear.iter().any(|&i| a[i].id == *id));
    y.retain(|id| clear.iter().any(|&i| a[i].id == *id));
    assert_eq!(x, y, "{what}: products without a tie must match in order");
}

/// Result rows (after diversification) agree rank by rank: the same product, or two
/// products the stores scored equally (duplicates in the catalogue: a cluster's
/// representative among equals depends on each store's order of equal scores).
fn same_rows(a: &[(String, f32)], b: &[(String, f32)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.0 == y.0 && (x.1 - y.1).abs() < 1e-4 || (x.1 - y.1).abs() < 1e-6,
            "{what}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn the_embedded_and_postgres_stores_return_the_same_results_on_myntra() {
    let folder = myntra_folder().to_str().unwrap().to_string();
    let url = fresh_table("vitrina_test_parity");
    let out = vitrina(&["copy", "--from", &folder, "--to", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("copied 1000 products"));

    let embedded = folder
        .parse::<Location>()
        .unwrap()
        .open()
        .unwrap()
        .current();
    let pg = url.parse::<Location>().unwrap().open().unwrap().current();

    // And back, into a new folder: the same products and vectors.
    let back = tempfile::tempdir().unwrap();
    let back_dir = back.path().join("copy").to_str().unwrap().to_string();
    let out = vitrina(&["copy", "--from", &url, "--to", &back_dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = back_dir
        .parse::<Location>()
        .unwrap()
        .open()
        .unwrap()
        .current();
    let mut a = embedded.products().unwrap();
    let mut b = copied.products().unwrap();
    a.sort_by(|x, y| x.id().cmp(y.id()));
    b.sort_by(|x, y| x.id().cmp(y.id()));
    assert_eq!(a, b);
    let some: Vec<&str> = a.iter().step_by(97).map(|p| p.id()).collect();
    for kind in [VectorKind::Text, VectorKind::Image, VectorKind::Average] {
        assert_eq!(
            embedded.vectors(kind, &some).unwrap(),
            copied.vectors(kind, &some).unwrap()
        );
    }

    assert_eq!(pg.len(), 1000);
    assert_eq!(pg.meta(), embedded.meta());
    // Facets (counted in SQL there) are the same.
    assert_eq!(
        serde_json::to_value(&*pg.facets().unwrap()).unwrap(),
        serde_json::to_value(&*embedded.facets().unwrap()).unwrap()
    );
    let products = embedded.products().unwrap();
    // 120 products' own vectors as queries (text, image, average), each product left
    // out, with and without a filter on its own category, plus blended scores.
    let mut compared = 0;
    for p in products.iter().step_by(8).take(120) {
        let id = p.id();
        let broad = format!("broad={}", p.product.broad.clone().unwrap_or_default());
        let filter = Filter::parse(&[broad.as_str(), "gender!=Boys"]).unwrap();
        for kind in [VectorKind::Text, VectorKind::Image, VectorKind::Average] {
            let query = embedded.vectors(kind, &[id]).unwrap().remove(0).unwrap();
            for filtered in [false, true] {
                let c = Candidates {
                    exclude: &[id],
                    with_image_only: kind == VectorKind::Image,
                    filter: filtered.then_some(&filter),
                    method: Method::Exact,
                    ef_search: None,
                };
                let a = embedded.top_k(Space::Kind(kind), &query, 11, &c).unwrap();
                let b = pg.top_k(Space::Kind(kind), &query, 11, &c).unwrap();
                assert_same_ranking(&a, &b, &format!("{id} {kind:?} filtered {filtered}"));
                compared += 1;
            }
        }
        let query = embedded
            .vectors(VectorKind::Text, &[id])
            .unwrap()
            .remove(0)
            .unwrap();
        let c = Candidates {
            exclude: &[id],
            ..Default::default()
        };
        let blend = Space::Blend { alpha: 0.3 };
        let a = embedded.top_k(blend, &query, 11, &c).unwrap();
        let b = pg.top_k(blend, &query, 11, &c).unwrap();
        assert_same_ranking(&a, &b, &format!("{id} blend"));
        // An id asked twice is answered twice, as by the embedded store (title feedback
        // reads a list's and the nearest titles' vectors, which may share ids, at once).
        let twice = pg.vectors(VectorKind::Text, &[id, id]).unwrap();
        assert!(twice[0].is_some() && twice[0] == twice[1], "{id}");
    }
    assert_eq!(compared, 720);
    // "More like this" with diversification (k-means over the top 50's image vectors)
    // reads vectors back from each store: same rows.
    for p in products.iter().step_by(50).take(20) {
        for mode in [Mode::Description, Mode::Image, Mode::Average] {
            let mut ranking = Ranking::new(mode, 10);
            ranking.diversify = Diversify::KMeans {
                clusters: 5,
                seed: 7,
            };
            let a = Searcher::stored_vectors_only(&*embedded)
                .similar(p.id(), &ranking)
                .unwrap()
                .unwrap();
            let b = Searcher::stored_vectors_only(&*pg)
                .similar(p.id(), &ranking)
                .unwrap()
                .unwrap();
            let hits = |rows: &[vitrina::search::ResultRow]| {
                rows.iter()
                    .map(|r| (r.id.clone(), r.score))
                    .collect::<Vec<_>>()
            };
            same_rows(
                &hits(&a),
                &hits(&b),
                &format!("{} {mode:?} diversified", p.id()),
            );
        }
    }

    // The CLI: text queries through the model give the same hits on both stores.
    for args in [
        vec!["black leather belt", "--mode", "description"],
        vec![
            "blue denim jeans",
            "--mode",
            "average",
            "--filter",
            "gender=Men",
        ],
        vec!["red dress", "--mode", "image"],
        // BM25 over the same products, fused with the same vector list.
        vec!["leathr belt -brown", "--mode", "hybrid"],
        vec![
            "\"party dress\"",
            "--mode",
            "keyword",
            "--filter",
            "gender=Women",
        ],
    ] {
        let run = |index: &str| {
            let mut a = vec!["search", "--index", index, "--json", "--exact"];
            a.extend(args.iter().copied());
            let out = vitrina(&a);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            json_hits(&out)
                .iter()
                .map(|h| {
                    (
                        h["id"].as_str().unwrap().to_string(),
                        h["score"].as_f64().unwrap() as f32,
                    )
                })
                .collect::<Vec<_>>()
        };
        same_rows(&run(&folder), &run(&url), &format!("{args:?}"));
    }
}

#[test]
fn indexing_syncs_and_upserts_on_postgres() {
    let url = fresh_table("vitrina_test_sync");
    let index = |extra: &[&str]| {
        let mut a = vec![
            "index",
            "--catalog",
            "catalogs/myntra.toml",
            "--split",
            "test",
            "--limit",
            "300",
            "--index",
            &url,
        ];
        a.extend_from_slice(extra);
        let out = vitrina(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let first = index(&[]);
    assert!(first.contains("300 added"), "{first}");
    let again = index(&["--ann"]);
    assert!(again.contains("300 unchanged"), "{again}");
    let info = vitrina(&["info", "--index", &url, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["products"], 300);
    assert!(info["search"].as_str().unwrap().contains("HNSW"), "{info}");

    // Upsert (JSON lines) and delete through the CLI; search sees both.
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("new.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"new-1\", \"text\": \"Bright yellow rain jacket\", \"broad\": \"Apparel\"}\nnot json\n",
    )
    .unwrap();
    let out = vitrina(&["upsert", "--index", &url, jsonl.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("new.jsonl:2: skipped"));
    let search = |q: &str| {
        // No attribute boost: the new product has no colour or type to match "yellow"
        // and "jacket", and catalogue products with both would rightly outrank it.
        let out = vitrina(&[
            "search", "--index", &url, "--json", "-k", "3", "--boost", "0", q,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_hits(&out)
    };
    assert_eq!(search("yellow rain jacket")[0]["id"], "new-1");
    let out = vitrina(&["delete", "--index", &url, "new-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(search("yellow rain jacket")[0]["id"], "new-1");
}

#[test]
fn the_server_answers_503_while_postgres_is_down_and_recovers() {
    // A second PostgreSQL of our own (other port and data folder), so stopping it does
    // not disturb the other tests.
    let home =
        std::env::var("VITRINA_PG_HOME").unwrap_or_else(|_| "/var/tmp/vitrina-postgres".into());
    let data = format!("{home}/outage-test");
    let env = [
        ("VITRINA_PG_PORT", "54339"),
        ("VITRINA_PG_DATA", data.as_str()),
    ];
    let url = fresh_table_on(&start_server(&env), "outage");
    let folder = myntra_folder().to_str().unwrap().to_string();
    let out = vitrina(&["copy", "--from", &folder, "--to", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_server, port) = Server::start(&["--index", &url]);
    let get = |target: &str| http(port, "GET", target, b"").0;
    assert_eq!(get("/api/search?q=black+belt&k=5"), 200);
    let stop = Command::new("bash")
        .arg(script())
        .arg("stop")
        .envs(env)
        .status()
        .unwrap();
    assert!(stop.success());
    assert_eq!(get("/api/search?q=black+belt&k=5"), 503);
    assert_eq!(get("/api/products/1"), 503);
    start_server(&env);
    let started = Instant::now();
    loop {
        if get("/api/search?q=black+belt&k=5") == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "did not recover"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("bash")
        .arg(script())
        .arg("stop")
        .envs(env)
        .status()
        .unwrap();
}
