//! The whole path on real Myntra products with the built-in model: catalogue -> both
//! towers -> index on disk -> search by text and by image, through the library and the
//! `vitrina` binary.

use std::path::{Path, PathBuf};

mod common;
use common::{exchange, http, http_with, json_hits, vitrina, Server};
use std::sync::OnceLock;

use vitrina::catalog::{Catalog, CatalogSpec, Split};
use vitrina::encoder::preprocess::load_image;
use vitrina::encoder::{minilm_dir, MiniLm, Model};
use vitrina::indexing::{self, SyncOptions};
use vitrina::search::{Mode, Query, Ranking, Searcher, SAME_PHOTO};
use vitrina::store::{EmbeddedWriter, LiveStore, Snapshot, Store};

/// 1,500 products of the test split (never seen by the image tower), indexed once.
fn index_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let spec = CatalogSpec::from_file(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml"),
        )
        .unwrap();
        let mut catalog = Catalog::load(&spec).unwrap();
        catalog.select(Split::Test, Some(1500));
        let model = Model::builtin(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let meta = indexing::store_meta(&model, "myntra", true);
        let mut writer = EmbeddedWriter::create(dir.path(), &meta).unwrap();
        let report =
            indexing::sync(&catalog, &model, &mut writer, &SyncOptions::default()).unwrap();
        writer.compact().unwrap();
        assert_eq!(report.added, 1500);
        assert_eq!(report.embedded, 1500);
        // Some Myntra rows have no image file: reported, kept with their text vector.
        assert_eq!(report.images_embedded + report.images_missing.len(), 1500);
        assert!(!report.images_missing.is_empty());
        let path = dir.path().to_path_buf();
        (dir, path)
    })
    .1
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::builtin(None).unwrap())
}

/// The test index, as a snapshot.
fn open_index() -> std::sync::Arc<Snapshot> {
    LiveStore::open(index_dir()).unwrap().snapshot()
}

fn fine_of_top(index: &Snapshot, query: &Query, mode: Mode, k: usize) -> Vec<String> {
    let searcher = Searcher::new(index, model()).unwrap();
    searcher
        .search(query, &Ranking::new(mode, k))
        .unwrap()
        .into_iter()
        .map(|r| r.fine.unwrap_or_default())
        .collect()
}

fn text(q: &str) -> Query {
    Query {
        text: Some(q.into()),
        ..Query::default()
    }
}

#[test]
fn text_search_finds_the_right_category_in_every_mode() {
    let index = open_index();
    let top = fine_of_top(&index, &text("black leather belt"), Mode::Description, 5);
    assert!(top.iter().all(|f| f == "Belts"), "{top:?}");
    for mode in [Mode::Image, Mode::Average] {
        let top = fine_of_top(&index, &text("blue denim jeans"), mode, 10);
        let jeans = top.iter().filter(|f| *f == "Jeans").count();
        assert!(jeans >= 6, "{mode:?}: {top:?}");
    }
    let top = fine_of_top(&index, &text("women's watch"), Mode::Image, 10);
    assert!(
        top.iter().filter(|f| *f == "Watches").count() >= 6,
        "{top:?}"
    );
}

#[test]
fn a_product_photo_finds_its_own_product_first() {
    let index = open_index();
    let searcher = Searcher::new(&*index, model()).unwrap();
    let mut checked = 0;
    for p in index
        .products()
        .unwrap()
        .iter()
        .filter(|p| p.has_image)
        .take(20)
    {
        let image = load_image(p.product.image.as_ref().unwrap()).unwrap();
        let query = Query {
            image: Some(image),
            ..Query::default()
        };
        let rows = searcher
            .search(&query, &Ranking::new(Mode::Image, 1))
            .unwrap();
        assert!(
            rows[0].score > 0.999,
            "{}: best score {}",
            p.product.id,
            rows[0].score
        );
        // Identical photos exist in the catalogue, so only the score must be ~1.
        checked += 1;
        // The photo's copies come first; the rest of the page is ranked by the mean of
        // its views (`query_views.rs`), as a re-framed upload of it would be.
        let page = searcher
            .search(&query, &Ranking::new(Mode::Image, 10))
            .unwrap();
        let copies = page.iter().take_while(|r| r.score >= SAME_PHOTO).count();
        assert!(copies >= 1, "{}: {page:?}", p.product.id);
        let viewed = searcher.embed(&query).unwrap();
        let ranked: Vec<String> = searcher
            .rank(&viewed, &Ranking::new(Mode::Image, 10), &[])
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .filter(|id| page[..copies].iter().all(|r| &r.id != id))
            .collect();
        let rest: Vec<&String> = page[copies..].iter().map(|r| &r.id).collect();
        assert_eq!(rest, ranked[..rest.len()].iter().collect::<Vec<_>>());
        assert!(page[copies].score < SAME_PHOTO, "{page:?}");
    }
    assert_eq!(checked, 20);
}

#[test]
fn an_index_refuses_queries_from_another_model() {
    let index = open_index();
    let text_only = Model::new(
        Box::new(MiniLm::load(&minilm_dir(None).unwrap()).unwrap()),
        None,
    )
    .unwrap();
    let err = Searcher::new(&*index, &text_only)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("built with model"), "{err}");
}

#[test]
fn cli_search_prints_json_hits_and_clear_errors() {
    let dir = index_dir().to_str().unwrap();
    let out = vitrina(&[
        "search",
        "--index",
        dir,
        "-k",
        "3",
        "--json",
        "--mode",
        "average",
        "red dress",
    ]);
    let hits = json_hits(&out);
    assert_eq!(hits.len(), 3);
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(h["rank"], i + 1);
        for field in ["score", "id", "title", "broad", "fine"] {
            assert!(h.get(field).is_some(), "{field} missing in {h}");
        }
    }
    let table = vitrina(&[
        "search",
        "--index",
        dir,
        "--diversify",
        "kmeans",
        "black leather belt",
    ]);
    assert!(table.status.success());
    assert_eq!(String::from_utf8_lossy(&table.stdout).lines().count(), 11);

    let missing = vitrina(&["search", "--index", "/nonexistent/idx", "x"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("no index at /nonexistent/idx/index.vitrina"));
    let bad_image = vitrina(&[
        "search",
        "--index",
        dir,
        "--image",
        "/nonexistent/photo.jpg",
    ]);
    assert!(String::from_utf8_lossy(&bad_image.stderr).contains("/nonexistent/photo.jpg"));
}

#[test]
fn a_text_only_catalogue_says_image_modes_are_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/fashion200k.toml");
    let idx = dir.path().to_str().unwrap();
    let out = vitrina(&[
        "index",
        "--catalog",
        catalog.to_str().unwrap(),
        "--index",
        idx,
        "--limit",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vitrina(&["search", "--index", idx, "--mode", "image", "black dress"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Image vectors") && err.contains("fashion200k"),
        "{err}"
    );
    let ok = vitrina(&["search", "--index", idx, "--json", "black dress"]);
    assert!(ok.status.success());
}

#[test]
fn http_server_answers_text_and_image_searches() {
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&["--index", &dir]);
    let (status, body) = http(port, "GET", "/health", b"");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["products"], 1500);

    let (status, body) = http(
        port,
        "GET",
        "/api/search?q=black%20leather%20belt&k=5&mode=description",
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let result: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let hits = result["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0]["fine"], "Belts");

    let index = open_index();
    let products = index.products().unwrap();
    let product = products.iter().find(|p| p.has_image).unwrap();
    let photo = std::fs::read(product.product.image.as_ref().unwrap()).unwrap();
    let (status, body) = http(
        port,
        "POST",
        "/api/search?mode=image&k=3&diversify=kmeans",
        &photo,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let result: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(result["hits"][0]["score"].as_f64().unwrap() > 0.999);
    assert_eq!(result["diversify"], "kmeans");

    let (status, body) = http(port, "POST", "/api/search?mode=image", b"not an image");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("cannot decode image"));
    let (status, body) = http(port, "GET", "/api/search?q=x&mode=sideways", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("unknown mode"));
    let (status, _) = http(port, "GET", "/api/search", b"");
    assert_eq!(status, 400);

    let (status, body) = http(port, "GET", &format!("/images/{}", product.product.id), b"");
    assert_eq!(status, 200);
    assert_eq!(body, photo);
    let (status, _) = http(port, "GET", "/images/no-such-product", b"");
    assert_eq!(status, 404);
    let (status, body) = http(port, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<title>vitrina"));
}

#[test]
fn filters_hold_in_every_mode_and_return_k_whenever_k_match() {
    use vitrina::search::{diversify, Diversify};
    use vitrina::store::{Filter, StoredProduct, VectorKind};
    let index = open_index();
    let searcher = Searcher::new(&*index, model()).unwrap();
    let products = index.products().unwrap();
    let by_id: std::collections::HashMap<&str, &StoredProduct> =
        products.iter().map(|p| (p.id(), p)).collect();
    let cases: [&[&str]; 5] = [
        &["broad=Shoes"],
        &["gender=Men,Unisex", "broad=Topwear"],
        &["year>=2016", "gender!=Men"],
        &["baseColour=Red", "year<2013"],
        &["fine=Jeans", "gender=Women"],
    ];
    let mut checked = 0;
    for clauses in cases {
        let filter = Filter::parse(clauses).unwrap();
        for mode in [Mode::Description, Mode::Image, Mode::Average, Mode::Hybrid] {
            let matching = products
                .iter()
                .filter(|p| filter.matches(p) && (mode != Mode::Image || p.has_image))
                .count();
            assert!(matching > 0, "{clauses:?}");
            for div in [
                Diversify::None,
                Diversify::KMeans {
                    clusters: diversify::CLUSTERS,
                    seed: 0,
                },
            ] {
                let mut ranking = Ranking::new(mode, 20);
                ranking.filter = filter.clone();
                ranking.diversify = div;
                // A query about something else: the filter must still fill the page.
                let rows = searcher
                    .search(&text("black leather belt"), &ranking)
                    .unwrap();
                assert_eq!(rows.len(), matching.min(20), "{clauses:?} {mode:?} {div:?}");
                for r in &rows {
                    assert!(filter.matches(by_id[r.id.as_str()]), "{clauses:?}: {r:?}");
                }
                checked += 1;
            }
        }
        // By a stored product's vector ("more like this"), itself excluded.
        let seed = products.iter().find(|p| filter.matches(p)).unwrap();
        let v = index.vectors(VectorKind::Average, &[seed.id()]).unwrap()[0]
            .clone()
            .unwrap();
        let mut ranking = Ranking::new(Mode::Average, 10);
        ranking.filter = filter.clone();
        let hits = Searcher::stored_vectors_only(&*index)
            .rank(&v, &ranking, &[seed.id()])
            .unwrap();
        assert!(hits
            .iter()
            .all(|h| h.id != seed.id() && filter.matches(by_id[h.id.as_str()])));
    }
    assert_eq!(checked, 40);
}

#[test]
fn filters_from_the_cli_and_http_and_their_errors() {
    let dir = index_dir().to_str().unwrap().to_string();
    let out = vitrina(&[
        "search",
        "--index",
        &dir,
        "--json",
        "-k",
        "15",
        "--mode",
        "average",
        "--filter",
        "gender=Women",
        "--filter",
        "year>=2015",
        "shoes",
    ]);
    let hits = json_hits(&out);
    assert_eq!(hits.len(), 15);
    for h in &hits {
        assert_eq!(h["attributes"]["gender"], "Women", "{h}");
        assert!(
            h["attributes"]["year"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
                >= 2015.0
        );
    }
    let bad = vitrina(&["search", "--index", &dir, "--filter", "colour=Red", "shoes"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success()
            && err.contains("unknown field `colour`")
            && err.contains("baseColour"),
        "{err}"
    );
    let bad = vitrina(&["search", "--index", &dir, "--filter", "year>=soon", "shoes"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a number"));

    let (_server, port) = Server::start(&["--index", &dir]);
    let (status, body) = http(
        port,
        "GET",
        "/api/search?q=watch&k=12&mode=image&filter=broad:Watches&filter=gender:Men,Unisex",
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let hits = r["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    for h in hits {
        assert_eq!(h["broad"], "Watches");
        assert!(
            ["Men", "Unisex"].contains(&h["attributes"]["gender"].as_str().unwrap()),
            "{h}"
        );
    }
    // The same search as a JSON body.
    let request = br#"{"q": "watch", "k": 12, "mode": "image", "filter": ["broad=Watches", "gender=Men,Unisex"]}"#;
    let (status, body) = common::http_with(
        port,
        "POST",
        "/api/search",
        &["Content-Type: application/json"],
        request,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["hits"].as_array().unwrap().len(), 12);
    assert!(r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["broad"] == "Watches" && h["attributes"]["gender"] != "Women"));
    let (status, _) = common::http_with(
        port,
        "POST",
        "/api/search",
        &["Content-Type: application/json"],
        b"{\"q\": ",
    );
    assert_eq!(status, 400);
    let (status, body) = http(port, "GET", "/api/search?q=watch&filter=nope:1", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("unknown field `nope`"));
    // A decompression bomb: a 57-byte PNG claiming 100,000 x 100,000 pixels.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (
            &b"IHDR"[..],
            [
                &100_000u32.to_be_bytes()[..],
                &100_000u32.to_be_bytes(),
                &[8, 2, 0, 0, 0],
            ]
            .concat(),
        ),
        (
            b"IDAT",
            vec![0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ),
        (b"IEND", vec![]),
    ] {
        bomb.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let body = [kind, &data].concat();
        bomb.extend_from_slice(&body);
        bomb.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }
    let (status, body) = http(port, "POST", "/api/search?mode=image", &bomb);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("megapixels"));
    let (status, body) = http(port, "GET", "/api/facets", b"");
    assert_eq!(status, 200);
    let f: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(f["fields"][0]["field"], "broad");
    let year = f["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["field"] == "year")
        .unwrap();
    assert_eq!(year["numeric"], true);
}

#[test]
fn more_like_this_leaves_the_product_out_and_respects_filters() {
    use vitrina::store::Filter;
    let index = open_index();
    let searcher = Searcher::stored_vectors_only(&*index);
    let products = index.products().unwrap();
    let mut same_type = 0;
    for p in products.iter().filter(|p| p.has_image).take(20) {
        for mode in [
            Mode::Description,
            Mode::Image,
            Mode::Average,
            Mode::Keyword,
            Mode::Hybrid,
        ] {
            let rows = searcher
                .similar(p.id(), &Ranking::new(mode, 10))
                .unwrap()
                .unwrap();
            assert_eq!(rows.len(), 10);
            assert!(rows.iter().all(|r| r.id != p.id()), "{mode:?}: itself");
            if mode == Mode::Image {
                same_type += rows.iter().filter(|r| r.fine == p.product.fine).count();
            }
        }
        let mut ranking = Ranking::new(Mode::Average, 10);
        ranking.filter = Filter::parse(&["gender=Women"]).unwrap();
        let rows = searcher.similar(p.id(), &ranking).unwrap().unwrap();
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r.attributes["gender"] == "Women"));
    }
    // "Visually similar" finds the same fine type far above chance (about 5%): the
    // built-in tower's photo-to-photo fine precision is about 0.6 (118 of 200 here).
    assert!(same_type >= 100, "{same_type} of 200");
    assert!(searcher
        .similar("no-such-id", &Ranking::new(Mode::Image, 5))
        .unwrap()
        .is_none());

    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&["--index", &dir]);
    let id = products[0].id();
    let (status, body) = http(
        port,
        "GET",
        &format!("/api/products/{id}/similar?k=4&filter=gender:Men,Unisex"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["mode"], "hybrid");
    let hits = r["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 4);
    assert!(hits.iter().all(|h| h["id"] != id));
    assert_eq!(http(port, "GET", "/api/products/nope/similar", b"").0, 404);
    let out = vitrina(&["similar", "--index", &dir, id, "--json", "-k", "3"]);
    assert_eq!(json_hits(&out).len(), 3);
}

fn signal(server: &Server, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn every_error_has_one_json_shape_and_signals_reload_or_stop_the_server() {
    let dir = index_dir().to_str().unwrap().to_string();
    let (mut server, port) = Server::start(&["--index", &dir]);
    for (method, target, want) in [
        ("GET", "/api/search?q=belt&k=abc", 400),
        ("GET", "/api/search?q=belt&lambda=x", 400),
        ("GET", "/api/search?q=belt&k=0", 400),
        (
            "GET",
            "/api/search?q=belt&mode=image&title_feedback=20",
            400,
        ),
        ("GET", "/api/products/no-such-id", 404),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/api/search", 405),
        ("PUT", "/api/products/x", 403),
    ] {
        let (status, body) = http(port, method, target, b"");
        assert_eq!(status, want, "{method} {target}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {target}: not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{method} {target}: {v}"
        );
    }
    let (status, body) = http(port, "GET", "/ready", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // SIGHUP re-reads the store and never stops the server.
    signal(&server, "HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(http(port, "GET", "/health", b"").0, 200);
    assert!(server
        .wait_exit(std::time::Duration::from_millis(10))
        .is_none());
    // SIGTERM stops it cleanly.
    signal(&server, "TERM");
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("the server did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_saturated_server_answers_503_with_retry_after_instead_of_queueing() {
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) =
        Server::start(&["--index", &dir, "--max-searches", "1", "--queue-ms", "0"]);
    let photo = open_index()
        .products()
        .unwrap()
        .into_iter()
        .find(|p| p.has_image)
        .and_then(|p| p.product.image)
        .unwrap();
    let bytes = std::fs::read(photo).unwrap();
    let statuses: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let bytes = bytes.clone();
                s.spawn(move || {
                    http(
                        port,
                        "POST",
                        "/api/search?mode=average&k=50&diversify=kmeans&q=shirt",
                        &bytes,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<&Vec<u8>> = statuses
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, b)| b)
        .collect();
    assert!(
        ok >= 1,
        "{:?}",
        statuses.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert!(
        !busy.is_empty(),
        "8 photo queries at once, one at a time allowed: none refused"
    );
    assert_eq!(ok + busy.len(), 8);
    let v: serde_json::Value = serde_json::from_slice(busy[0]).unwrap();
    assert_eq!(v["error"]["code"], "unavailable");
    // Retry-After is sent with every 503.
    use std::io::{Read, Write};
    let mut raw = String::new();
    let started = std::time::Instant::now();
    while !raw.contains(" 503 ") && started.elapsed() < std::time::Duration::from_secs(30) {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let head = format!(
                        "POST /api/search?mode=average&k=50&diversify=kmeans HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                        bytes.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(&bytes).unwrap();
                    let mut out = Vec::new();
                    stream.read_to_end(&mut out).unwrap();
                    String::from_utf8_lossy(&out).to_string()
                })
            })
            .collect();
        for t in threads {
            let r = t.join().unwrap();
            if r.contains(" 503 ") {
                raw = r;
            }
        }
    }
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
}

#[test]
fn idle_connections_are_closed_and_a_full_server_serves_the_next_client_when_one_frees() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&[
        "--index",
        &dir,
        "--max-connections",
        "2",
        "--idle-timeout-ms",
        "1000",
    ]);
    // Two clients connect and send nothing: they hold both slots.
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // A third client is served once the idle ones are closed, not before, not never.
    let started = Instant::now();
    let (status, _) = http(port, "GET", "/health", b"");
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // And the idle ones were closed by the server.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "an idle connection was left open");
    }
}

/// A client trickling its request header a byte at a time (slowloris) keeps the idle timer
/// from firing, but not the header timeout: the server closes it, and still serves others.
#[test]
fn a_header_trickled_byte_by_byte_is_cut_off_at_the_header_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&[
        "--index",
        &dir,
        "--header-timeout-ms",
        "1500",
        "--idle-timeout-ms",
        "30000",
    ]);
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let mut closed_after = None;
    while started.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(250));
        let mut buf = [0u8; 512];
        let gone = match slow.read(&mut buf) {
            Ok(_) => true, // an answer (408) or end of stream: either way, cut off
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
            Err(_) => true,
        };
        if gone || slow.write_all(b"X").is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the trickling client was never cut off");
    assert!(
        closed_after >= Duration::from_millis(1000) && closed_after < Duration::from_secs(5),
        "{closed_after:?}"
    );
    let (status, _) = http(port, "GET", "/health", b"");
    assert_eq!(status, 200);
}

/// CORS is off unless asked for; with `--cors-origin`, a listed origin's preflight and
/// requests are allowed and any other origin gets no CORS headers; a malformed origin is
/// refused at start.
#[test]
fn cors_allows_only_the_listed_origins() {
    let dir = index_dir().to_str().unwrap().to_string();
    let preflight = [
        "Origin: https://shop.example",
        "Access-Control-Request-Method: GET",
    ];
    let (_plain, port) = Server::start(&["--index", &dir]);
    let (_, head, _) = exchange(
        port,
        "GET",
        "/health",
        &["Origin: https://shop.example"],
        b"",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    let (_cors, port) = Server::start(&["--index", &dir, "--cors-origin", "https://shop.example"]);
    let (status, head, _) = exchange(port, "OPTIONS", "/api/search", &preflight, b"");
    assert!(status == 200 || status == 204, "{status} {head}");
    assert!(
        head.contains("access-control-allow-origin: https://shop.example"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-methods"), "{head}");
    let (status, head, _) = exchange(
        port,
        "GET",
        "/api/search?q=belt&k=2",
        &["Origin: https://shop.example"],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: https://shop.example"),
        "{head}"
    );
    let (_, head, _) = exchange(
        port,
        "GET",
        "/api/search?q=belt&k=2",
        &["Origin: https://evil.example"],
        b"",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    let out = vitrina(&[
        "serve",
        "--index",
        &dir,
        "--addr",
        "127.0.0.1:0",
        "--cors-origin",
        "shop.example/path",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--cors-origin"),
        "{err}"
    );
}

/// `/openapi.json` is an OpenAPI 3 document that covers every route the server answers,
/// documents only routes that exist, and whose schema references all resolve.
#[test]
fn the_openapi_document_covers_every_route() {
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&["--index", &dir]);
    let (status, body) = http(port, "GET", "/openapi.json", b"");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let served = [
        ("/", "get"),
        ("/openapi.json", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/search", "get"),
        ("/api/search", "post"),
        ("/api/facets", "get"),
        ("/api/products/{id}/similar", "get"),
        ("/images/{id}", "get"),
        ("/api/products/{id}", "get"),
        ("/api/products/{id}", "put"),
        ("/api/products/{id}", "delete"),
    ];
    for (path, method) in served {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    // Every documented route is answered (not the router's 404/405 fallbacks).
    let id = open_index().products().unwrap()[0].product.id.clone();
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let target = path.replace("{id}", &id);
            let (status, body) = http(port, &method.to_uppercase(), &target, b"");
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no such route") && status != 405,
                "{method} {path}: {status} {text}"
            );
        }
    }
    // Every $ref names a schema of the document.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = String::from_utf8_lossy(&body).to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }
    assert!(schemas.contains_key("SearchResponse") && schemas.contains_key("ErrorBody"));
}

/// The CLI and the server share their defaults (average mode on an index with images,
/// k = 10) and their limits (k = 0 is an error in both), so one query gives one answer.
#[test]
fn cli_and_server_share_defaults_and_limits() {
    let dir = index_dir().to_str().unwrap().to_string();
    let ids = |hits: &[serde_json::Value]| -> Vec<String> {
        hits.iter().map(|h| h["id"].to_string()).collect()
    };
    let plain = json_hits(&vitrina(&[
        "search",
        "--index",
        &dir,
        "--json",
        "red party dress",
    ]));
    let hybrid = json_hits(&vitrina(&[
        "search",
        "--index",
        &dir,
        "--json",
        "--mode",
        "hybrid",
        "red party dress",
    ]));
    assert_eq!(plain.len(), 10);
    assert_eq!(ids(&plain), ids(&hybrid));
    let (_server, port) = Server::start(&["--index", &dir]);
    let (status, body) = http(port, "GET", "/api/search?q=red%20party%20dress", b"");
    assert_eq!(status, 200);
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["mode"], "hybrid");
    assert_eq!(ids(r["hits"].as_array().unwrap()), ids(&plain));
    // The words understood as field values come back as chips.
    let understood: Vec<(String, String)> = r["understood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["field"].as_str().unwrap().into(),
                u["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        understood.contains(&("baseColour".into(), "Red".into())),
        "{understood:?}"
    );
    let (_, body) = http(
        port,
        "GET",
        "/api/search?q=red%20party%20dress&ignore=baseColour",
        b"",
    );
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(r["understood"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["field"] != "baseColour"));

    let zero = vitrina(&["search", "--index", &dir, "-k", "0", "belt"]);
    let err = String::from_utf8_lossy(&zero.stderr);
    assert!(
        !zero.status.success() && err.contains("k must be within 1..=200"),
        "{err}"
    );
    let (status, body) = http(port, "GET", "/api/search?q=belt&k=0", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("k must be within 1..=200"));
}

#[test]
fn pages_continue_the_same_list_in_the_cli_and_the_api() {
    let dir = index_dir().to_str().unwrap().to_string();
    let ids = |hits: &[serde_json::Value]| -> Vec<String> {
        hits.iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    let cli = |extra: &[&str]| {
        let mut args = vec!["search", "--index", &dir, "--json", "--diversify", "mmr"];
        args.extend_from_slice(extra);
        args.push("blue shirt");
        json_hits(&vitrina(&args))
    };
    let whole = cli(&["-k", "30"]);
    let second = cli(&["-k", "10", "--offset", "10"]);
    assert_eq!(ids(&second), ids(&whole)[10..20]);
    assert_eq!(second[0]["rank"], 11);
    let (_server, port) = Server::start(&["--index", &dir]);
    let page = |offset: usize| -> serde_json::Value {
        let target = format!("/api/search?q=blue%20shirt&diversify=mmr&k=10&offset={offset}");
        let (status, body) = http(port, "GET", &target, b"");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    };
    let (first, third) = (page(0), page(20));
    assert_eq!(first["next_offset"], 10);
    assert_eq!(ids(first["hits"].as_array().unwrap()), ids(&whole)[..10]);
    assert_eq!(ids(third["hits"].as_array().unwrap()), ids(&whole)[20..30]);
    assert_eq!(third["offset"], 20);
    // The JSON body pages the same way; a page past the last product has no next.
    let (_, body) = http_with(
        port,
        "POST",
        "/api/search",
        &["Content-Type: application/json"],
        br#"{"q": "blue shirt", "diversify": "mmr", "k": 10, "offset": 10}"#,
    );
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ids(r["hits"].as_array().unwrap()), ids(&second));
    let (_, body) = http(
        port,
        "GET",
        "/api/search?q=sunglasses&mode=keyword&k=100",
        b"",
    );
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let found = r["hits"].as_array().unwrap().len();
    assert!(found > 0 && found < 100, "{found}");
    assert!(r.get("next_offset").is_none(), "{r}");
    // Too deep: the same error in both.
    let (status, body) = http(port, "GET", "/api/search?q=belt&k=10&offset=995", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("offset + k must be at most 1000"));
    let deep = vitrina(&["search", "--index", &dir, "--offset", "995", "belt"]);
    assert!(String::from_utf8_lossy(&deep.stderr).contains("offset + k must be at most 1000"));
}

/// Parses a float32 `.npy` matrix as `vitrina embed` writes it: (rows, dim, values).
fn read_npy(bytes: &[u8]) -> (usize, usize, Vec<f32>) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap();
    let shape: Vec<usize> = shape
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let values: Vec<f32> = bytes[10 + len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(values.len(), shape[0] * shape[1]);
    (shape[0], shape[1], values)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embed_writes_the_vectors_the_index_stores() {
    use vitrina::store::VectorKind;
    let index = open_index();
    let products: Vec<_> = index
        .products()
        .unwrap()
        .into_iter()
        .filter(|p| p.has_image)
        .take(24)
        .collect();
    let ids: Vec<&str> = products.iter().map(|p| p.product.id.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    // `vitrina embed [--index DIR] --text|--images INPUT --out OUT`.
    let embed = |index: bool, input: &str, path: &Path, out: &Path| {
        let mut args = vec!["embed", input, path.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
        if index {
            args.extend(["--index", index_dir().to_str().unwrap()]);
        }
        vitrina(&args)
    };
    let succeeded = |run: &std::process::Output| {
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        )
    };

    // Texts: one a line, JSON lines out, in line order.
    let texts = dir.path().join("titles.txt");
    let lines: Vec<&str> = products.iter().map(|p| p.product.text.as_str()).collect();
    std::fs::write(&texts, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("titles.jsonl");
    succeeded(&embed(true, "--text", &texts, &out));
    let stored = index.vectors(VectorKind::Text, &ids).unwrap();
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), products.len());
    for (i, (line, want)) in written.lines().zip(&stored).enumerate() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["line"], i + 1);
        assert_eq!(row["text"], lines[i]);
        let got: Vec<f32> = serde_json::from_value(row["vector"].clone()).unwrap();
        let c = cosine(&got, want.as_ref().unwrap());
        assert!(c > 0.99999, "{}: cosine {c}", ids[i]);
    }

    // Photos: a folder, .npy out, rows in file-name order.
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for (i, p) in products.iter().enumerate() {
        let from = p.product.image.as_ref().unwrap();
        std::fs::copy(from, photos.join(format!("{i:03}.jpg"))).unwrap();
    }
    std::fs::write(photos.join("notes.txt"), "not a photo").unwrap();
    let out = dir.path().join("photos.npy");
    succeeded(&embed(true, "--images", &photos, &out));
    let (rows, dim, values) = read_npy(&std::fs::read(&out).unwrap());
    assert_eq!((rows, dim), (products.len(), 384));
    let stored = index.vectors(VectorKind::Image, &ids).unwrap();
    for (i, (got, want)) in values.chunks_exact(dim).zip(&stored).enumerate() {
        let c = cosine(got, want.as_ref().unwrap());
        assert!(c > 0.9999, "{}: cosine {c}", ids[i]);
    }

    // A damaged photo or a blank line: an error naming it, and no output file.
    std::fs::write(photos.join("100.jpg"), b"\xff\xd8 not really a jpeg").unwrap();
    let bad = dir.path().join("bad.npy");
    let run = embed(false, "--images", &photos, &bad);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("100.jpg"), "{err}");
    assert!(!bad.exists());
    std::fs::write(&texts, "red dress\n\nblue jeans\n").unwrap();
    let run = embed(false, "--text", &texts, &bad);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("titles.txt:2: empty line"), "{err}");
    assert!(!bad.exists());
}

/// A repeated text query is answered from the query cache with the same results; the
/// cache is bounded and can be switched off.
#[test]
fn repeated_queries_use_the_query_cache_and_answer_the_same() {
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&["--index", &dir, "--query-cache", "2"]);
    let hits = |q: &str| -> Vec<(String, String)> {
        let (status, body) = http(
            port,
            "GET",
            &format!("/api/search?q={q}&k=8&mode=average"),
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["id"].to_string(), h["score"].to_string()))
            .collect()
    };
    let cache = || -> serde_json::Value {
        let (_, body) = http(port, "GET", "/health", b"");
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["query_cache"].clone()
    };
    let first = hits("red%20party%20dress");
    assert_eq!(hits("red%20party%20dress"), first);
    assert_eq!(
        (cache()["hits"].as_u64(), cache()["misses"].as_u64()),
        (Some(1), Some(1))
    );
    hits("blue%20jeans");
    hits("black%20belt");
    assert_eq!(cache()["entries"], 2, "bounded by --query-cache");
    // Every miss, and only a miss, reached the text encoder (one at a time here).
    let (_, body) = http(port, "GET", "/health", b"");
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["text_encoder"]["texts"], 3);
    assert_eq!(health["text_encoder"]["batches"], 3);

    let (_off, port) = Server::start(&["--index", &dir, "--query-cache", "0"]);
    let (_, body) = http(port, "GET", "/health", b"");
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(health["query_cache"].is_null());
}

/// `/metrics` counts requests by route pattern and status and times them; every request
/// leaves one access-log line (here as JSON) without the shopper's query text.
#[test]
fn metrics_and_access_log_see_every_request() {
    let dir = index_dir().to_str().unwrap().to_string();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let (_server, port) = Server::start_with(
        &["--index", &dir],
        &[("VITRINA_LOG_FORMAT", "json")],
        logs.reopen().unwrap().into(),
    );
    for _ in 0..3 {
        let (status, _) = http(port, "GET", "/api/search?q=secret%20words&k=3", b"");
        assert_eq!(status, 200);
    }
    let id = open_index().products().unwrap()[0].product.id.clone();
    assert_eq!(
        http(port, "GET", &format!("/api/products/{id}"), b"").0,
        200
    );
    assert_eq!(http(port, "GET", "/no/such/route", b"").0, 404);
    let (status, body) = http(port, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let search = r#"vitrina_http_requests_total{route="/api/search",method="GET",status="200"}"#;
    assert_eq!(value(search), 3.0);
    // Ids never become series: the route pattern is the label.
    let product =
        r#"vitrina_http_requests_total{route="/api/products/{id}",method="GET",status="200"}"#;
    assert_eq!(value(product), 1.0);
    assert!(!text.contains(&id), "an id leaked into the metrics");
    assert_eq!(
        value(r#"vitrina_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"vitrina_http_request_duration_seconds_count{route="/api/search",method="GET"}"#),
        3.0
    );
    assert_eq!(value("vitrina_products "), 1500.0);
    assert_eq!(value("vitrina_query_cache_hits "), 2.0);
    // The one text not in the cache went through the batching encoder once, alone.
    assert_eq!(value("vitrina_text_encoder_texts "), 1.0);
    assert_eq!(value("vitrina_text_encoder_batches "), 1.0);
    assert_eq!(
        value("vitrina_http_requests_in_flight "),
        1.0,
        "the scrape itself"
    );

    let log = std::fs::read_to_string(logs.path()).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["target"] == "vitrina::access")
        .collect();
    assert!(lines.len() >= 5, "{log}");
    let first = &lines[0]["fields"];
    assert_eq!(first["path"], "/api/search");
    assert_eq!(first["status"], 200);
    assert!(first["ms"].as_f64().unwrap() > 0.0);
    assert!(!log.contains("secret"), "query text in the access log");
}

/// The titles of a search's results.
fn search_rows(index: &Snapshot, q: &str, ranking: &Ranking) -> Vec<vitrina::search::ResultRow> {
    Searcher::new(index, model())
        .unwrap()
        .search(&text(q), ranking)
        .unwrap()
}

fn has_term(title: &str, word: &str) -> bool {
    let word = vitrina::store::text_index::stem(word);
    vitrina::store::text_index::terms(title).contains(&word)
}

#[test]
fn keyword_and_hybrid_search_understand_typos_phrases_exclusions_and_ids() {
    let index = open_index();
    let products = index.products().unwrap();
    let with = |word: &str| {
        products
            .iter()
            .filter(|p| has_term(&p.product.text, word))
            .count()
    };
    // The test split's first 1,500 products hold one sneaker, and more wallets,
    // sunglasses, handbags, belts and shirts.
    assert!(with("sneakers") >= 1 && with("belt") >= 5 && with("shirt") >= 40);
    for mode in [Mode::Keyword, Mode::Hybrid] {
        // One typo each (deletion, deletion, transposition).
        for (typo, word, k) in [
            ("walet", "wallet", 5),
            ("sunglases", "sunglass", 5),
            ("handbga", "handbag", 5),
        ] {
            assert!(with(word) >= k);
            let rows = search_rows(&index, typo, &Ranking::new(mode, k));
            assert_eq!(rows.len(), k, "{mode:?} {typo}");
            assert!(
                rows.iter().all(|r| has_term(&r.title, word)),
                "{mode:?} {typo}: {rows:?}"
            );
        }
        let rows = search_rows(&index, "leathr belt", &Ranking::new(mode, 5));
        assert!(
            rows.iter().all(|r| r.fine.as_deref() == Some("Belts")),
            "{mode:?}: {rows:?}"
        );
        // Exclusion: k results, none with the word, though the plain query has some.
        let plain = search_rows(&index, "men shirt", &Ranking::new(mode, 20));
        assert!(plain.iter().any(|r| has_term(&r.title, "blue")), "{mode:?}");
        let rows = search_rows(&index, "men shirt -blue", &Ranking::new(mode, 20));
        assert_eq!(rows.len(), 20);
        assert!(rows.iter().all(|r| !has_term(&r.title, "blue")), "{rows:?}");
        // A phrase from a real title: every result holds its words in that order.
        let title = &products
            .iter()
            .find(|p| p.product.text.split_whitespace().count() >= 5)
            .unwrap()
            .product
            .text;
        let words: Vec<&str> = title.split_whitespace().collect();
        let phrase = format!("{} {}", words[2], words[3]);
        let rows = search_rows(&index, &format!("\"{phrase}\""), &Ranking::new(mode, 10));
        assert!(!rows.is_empty(), "{phrase}");
        let wanted = vitrina::store::text_index::terms(&phrase);
        for r in &rows {
            let terms = vitrina::store::text_index::terms(&r.title);
            assert!(
                terms.windows(wanted.len()).any(|w| w == wanted.as_slice()),
                "{phrase:?} not in {:?}",
                r.title
            );
        }
    }
    // "sneekers" (one substitution) over the whole Myntra catalogue's titles: sneakers
    // (hundreds of titles), not "Sleeker" (one title) or the sweaters the text tower
    // alone finds for it. (This subset holds one sneaker and one Sleeker: a tie.)
    let spec =
        CatalogSpec::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml"))
            .unwrap();
    let catalogue: Vec<vitrina::store::StoredProduct> = Catalog::load(&spec)
        .unwrap()
        .products
        .into_iter()
        .map(|product| vitrina::store::StoredProduct {
            product,
            has_image: true,
            content_hash: 0,
        })
        .collect();
    let titles: std::collections::HashMap<String, String> = catalogue
        .iter()
        .map(|p| (p.product.id.clone(), p.product.text.clone()))
        .collect();
    let whole = vitrina::store::TextIndex::build(catalogue, Default::default());
    let hits = whole.search(
        &vitrina::store::TextQuery::words("sneekers"),
        20,
        &Default::default(),
    );
    assert_eq!(hits.len(), 20);
    let found: Vec<&String> = hits.iter().map(|h| &titles[&h.id]).collect();
    assert!(found.iter().all(|t| has_term(t, "sneaker")), "{found:?}");
    assert!(has_term(&whole.correct("sneekers").unwrap(), "sneaker"));
    // A product id as the whole query finds that product first, in every mode.
    let id = products[123].id();
    for mode in [Mode::Keyword, Mode::Hybrid, Mode::Average, Mode::Image] {
        let rows = search_rows(&index, id, &Ranking::new(mode, 5));
        assert_eq!(rows[0].id, id, "{mode:?}");
    }
    // Exclusions hold in the vector modes too, with k results.
    let rows = search_rows(&index, "men shirt -blue", &Ranking::new(Mode::Average, 30));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| !has_term(&r.title, "blue")));
    // Hybrid with a filter and diversification returns k, all matching.
    let mut ranking = Ranking::new(Mode::Hybrid, 12);
    ranking.filter = vitrina::store::Filter::parse(&["gender=Women"]).unwrap();
    ranking.diversify = vitrina::search::Diversify::KMeans {
        clusters: 5,
        seed: 0,
    };
    let rows = search_rows(&index, "watch", &ranking);
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r.attributes["gender"] == "Women"));
    // A photo cannot be a keyword query; a keyword query needs words.
    let searcher = Searcher::new(&*index, model()).unwrap();
    let photo = Query {
        image: Some(image::DynamicImage::new_rgb8(60, 80)),
        ..Query::default()
    };
    let err = searcher
        .search(&photo, &Ranking::new(Mode::Keyword, 5))
        .unwrap_err();
    assert!(err.to_string().contains("keyword mode"), "{err}");

    // Over HTTP and the CLI.
    let dir = index_dir().to_str().unwrap().to_string();
    let (_server, port) = Server::start(&["--index", &dir]);
    let (status, body) = http(
        port,
        "GET",
        "/api/search?q=walet&mode=hybrid&k=3&fusion=blend&keyword_weight=0.7",
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["mode"], "hybrid");
    for hit in r["hits"].as_array().unwrap() {
        assert!(has_term(hit["title"].as_str().unwrap(), "wallet"), "{hit}");
    }
    let (status, body) = http(
        port,
        "GET",
        "/api/search?q=x&mode=hybrid&keyword_weight=2",
        b"",
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("keyword weight"));
    let out = vitrina(&[
        "search",
        "--index",
        &dir,
        "--mode",
        "keyword",
        "--json",
        "-k",
        "4",
        "leathr belt",
    ]);
    assert_eq!(json_hits(&out).len(), 4);
}

#[test]
fn words_that_name_a_colour_steer_a_photo_query() {
    use vitrina::store::StoredProduct;
    let index = open_index();
    let products = index.products().unwrap();
    let searcher = Searcher::new(&*index, model()).unwrap();
    let colour = |p: &StoredProduct| p.product.attributes.get("baseColour").cloned();
    let is_black = |r: &vitrina::search::ResultRow| {
        r.attributes.get("baseColour").map(String::as_str) == Some("Black")
    };
    // Brown products whose type has at least 5 black products with photos here.
    let black_of = |p: &StoredProduct| {
        products
            .iter()
            .filter(|q| q.has_image && q.product.fine == p.product.fine)
            .filter(|q| colour(q).as_deref() == Some("Black"))
            .count()
    };
    let queries: Vec<&StoredProduct> = products
        .iter()
        .filter(|p| p.has_image && colour(p).as_deref() == Some("Brown") && black_of(p) >= 5)
        .take(6)
        .collect();
    assert!(queries.len() >= 3, "{}", queries.len());
    let (mut black, mut same_type, mut black_unboosted) = (0, 0, 0);
    for p in &queries {
        let query = Query {
            text: Some("black".into()),
            image: Some(load_image(p.product.image.as_ref().unwrap()).unwrap()),
            text_weight: 0.5,
        };
        let rows = searcher
            .search(&query, &Ranking::new(Mode::Average, 10))
            .unwrap();
        black += rows.iter().filter(|r| is_black(r)).count();
        same_type += rows.iter().filter(|r| r.fine == p.product.fine).count();
        let mut unboosted = Ranking::new(Mode::Average, 10);
        unboosted.boost = 0.0;
        let rows = searcher.search(&query, &unboosted).unwrap();
        black_unboosted += rows.iter().filter(|r| is_black(r)).count();
    }
    let n = queries.len() * 10;
    assert!(2 * black > n, "mostly black: {black} of {n}");
    assert!(
        2 * same_type > n,
        "mostly the photo's type: {same_type} of {n}"
    );
    assert!(
        black > black_unboosted,
        "the boost is what steers: {black} vs {black_unboosted}"
    );
    let understood = searcher
        .understand("black", &Ranking::new(Mode::Average, 10))
        .unwrap();
    assert_eq!(understood.len(), 1);
    assert_eq!(
        (understood[0].field.as_str(), understood[0].value.as_str()),
        ("baseColour", "Black")
    );
}

/// A tower folder written by `vitrina train` (here the committed folder of the built-in
/// tower's own training run, the same weights) indexes and searches with `--model-dir`:
/// the index remembers the folder, ranks as the built-in tower's index does, and refuses
/// queries from the built-in model, which is known by another id.
#[test]
fn a_trained_tower_folder_indexes_and_searches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = root.join("catalogs/myntra.toml");
    let tower = root
        .join("models")
        .join(vitrina::encoder::BUILTIN_TOWER_NAME);
    let dir = tempfile::tempdir().unwrap();
    let index = |name: &str, model: &[&str]| {
        let path = dir.path().join(name);
        let mut args = vec![
            "index",
            "--catalog",
            catalog.to_str().unwrap(),
            "--index",
            path.to_str().unwrap(),
            "--limit",
            "300",
        ];
        args.extend(model);
        let out = vitrina(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let trained = index("trained", &["--model-dir", tower.to_str().unwrap()]);
    let builtin = index("builtin", &[]);
    let ids = |index: &Path| -> Vec<String> {
        let out = vitrina(&[
            "search",
            "--index",
            index.to_str().unwrap(),
            "--json",
            "--mode",
            "image",
            "-k",
            "10",
            "red dress",
        ]);
        json_hits(&out)
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    let found = ids(&trained);
    assert_eq!(found.len(), 10);
    assert_eq!(found, ids(&builtin));
    let refused = vitrina(&[
        "search",
        "--index",
        trained.to_str().unwrap(),
        "--model",
        "builtin",
        "red dress",
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains(&format!("{}@", vitrina::encoder::BUILTIN_TOWER_NAME)),
        "{said}"
    );
}

/// `train --init builtin` fine-tunes the built-in tower as a shop would on its own
/// catalogue: the card records the weights it continued, the parent's shape and a
/// quarter of the learning rate, and the folder indexes and searches. Shape options
/// with `--init` are refused by name.
#[test]
fn fine_tuning_the_built_in_tower_writes_a_tower_that_searches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = root.join("catalogs/myntra.toml");
    let catalog = catalog.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tower = dir.path().join("tuned");
    let tower_arg = tower.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--catalog",
            catalog,
            "--out",
            tower_arg,
            "--name",
            "tuned",
            "--limit",
            "300",
            "--epochs",
            "1",
            "--init",
            "builtin",
        ];
        args.extend(extra);
        vitrina(&args)
    };
    let refused = train(&["--dims", "96,256"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--dims"), "{said}");
    assert!(!tower.exists());

    let out = train(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tower.join("card.json")).unwrap()).unwrap();
    let builtin: serde_json::Value = serde_json::from_str(vitrina::encoder::BUILTIN_CARD).unwrap();
    let init = card["train"]["init"].as_str().unwrap();
    assert!(
        init.starts_with(&format!("{}@", vitrina::encoder::BUILTIN_TOWER_NAME)),
        "{init}"
    );
    assert_eq!(card["tower"], builtin["tower"]);
    assert_eq!(card["train"]["lr"], 0.0005);
    assert!(card["held_out"]["recall_at_10"].as_f64().unwrap() > 0.0);

    let index = dir.path().join("index");
    let out = vitrina(&[
        "index",
        "--catalog",
        catalog,
        "--index",
        index.to_str().unwrap(),
        "--limit",
        "300",
        "--model-dir",
        tower_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vitrina(&[
        "search",
        "--index",
        index.to_str().unwrap(),
        "--json",
        "--mode",
        "image",
        "-k",
        "5",
        "red dress",
    ]);
    assert_eq!(json_hits(&out).len(), 5);
}
