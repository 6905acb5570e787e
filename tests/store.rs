//! The live store as a shop uses it, through the `vitrina` binary on real Myntra
//! products: incremental sync, upsert/delete/get/info, resuming after `kill -9`, a
//! running server following changes made by the CLI, and the write API's key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{http, http_with, vitrina, Server};

fn shared_myntra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/myntra")
}

/// A shop folder: a catalogue TOML and a CSV of real Myntra rows (with their photos,
/// read from the shared data), which a test edits to play a changing catalogue.
struct Shop {
    dir: tempfile::TempDir,
    header: String,
    rows: Vec<String>,
}

impl Shop {
    /// The first `n` Myntra rows whose photo exists.
    fn new(n: usize) -> Shop {
        let csv = std::fs::read_to_string(shared_myntra().join("styles.csv")).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap().to_string();
        let rows: Vec<String> = lines
            .filter(|l| {
                let id = l.split(',').next().unwrap();
                shared_myntra().join(format!("images/{id}.jpg")).is_file()
            })
            .take(n)
            .map(str::to_string)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let images = shared_myntra().join("images").canonicalize().unwrap();
        std::fs::write(
            dir.path().join("shop.toml"),
            format!(
                "name = \"shop\"\ndata = \"styles.csv\"\nformat = \"csv\"\nid = \"id\"\n\
                 text = \"productDisplayName\"\nimage = \"{}/{{id}}.jpg\"\n[categories]\n\
                 broad = \"subCategory\"\nfine = \"articleType\"\nattributes = [\"gender\", \"baseColour\"]\n",
                images.display()
            ),
        )
        .unwrap();
        let shop = Shop { dir, header, rows };
        shop.write();
        shop
    }

    fn write(&self) {
        let mut text = self.header.clone() + "\n";
        for r in &self.rows {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(self.dir.path().join("styles.csv"), text).unwrap();
    }

    fn toml(&self) -> String {
        self.dir
            .path()
            .join("shop.toml")
            .to_str()
            .unwrap()
            .to_string()
    }

    fn index(&self) -> String {
        self.dir.path().join("index").to_str().unwrap().to_string()
    }

    fn id(&self, row: usize) -> String {
        self.rows[row].split(',').next().unwrap().to_string()
    }

    /// Replaces field `field` (0-based CSV column) of row `row`; titles are last.
    fn set(&mut self, row: usize, field: usize, value: &str) {
        let mut fields: Vec<String> = self.rows[row].split(',').map(str::to_string).collect();
        if field == 9 {
            fields.truncate(9);
            fields.push(value.to_string());
        } else {
            fields[field] = value.to_string();
        }
        self.rows[row] = fields.join(",");
    }

    fn sync(&self, extra: &[&str]) -> String {
        let (toml, index) = (self.toml(), self.index());
        let mut args = vec!["index", "--catalog", &toml, "--index", &index];
        args.extend_from_slice(extra);
        let out = vitrina(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    }
}

fn info(index: &str) -> serde_json::Value {
    let out = vitrina(&["info", "--index", index, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn get(index: &str, id: &str) -> Output {
    vitrina(&["get", "--index", index, id])
}

fn get_json(index: &str, id: &str) -> serde_json::Value {
    let out = get(index, id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The number before `label` in a sync summary ("3 added, ...").
fn count(summary: &str, label: &str) -> usize {
    let line = summary
        .lines()
        .find(|l| l.contains(" added, "))
        .unwrap_or_else(|| panic!("no summary in {summary}"));
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("no {label} in {line}"));
    line[..at]
        .split_whitespace()
        .last()
        .unwrap()
        .trim_start_matches('(')
        .parse()
        .unwrap()
}

#[test]
fn sync_adds_updates_keeps_and_prunes_exactly_the_right_products() {
    let mut shop = Shop::new(60);
    let first = shop.sync(&[]);
    assert_eq!(count(&first, " added"), 60);
    assert!(first.contains("embedded 60 products"), "{first}");
    assert_eq!(info(&shop.index())["products"], 60);

    // Unchanged: nothing is embedded again.
    let again = shop.sync(&[]);
    assert_eq!(count(&again, " unchanged"), 60, "{again}");
    assert!(again.contains("embedded 0 products"), "{again}");

    // Two new titles (re-embedded), one new category (same vectors), three rows gone,
    // two new products.
    let (renamed, recategorised) = (shop.id(0), shop.id(1));
    let before = get_json(&shop.index(), &renamed);
    shop.set(0, 9, "Zebra Print Sequinned Party Dress");
    shop.set(2, 9, "Plain Grey Cotton Socks");
    shop.set(1, 3, "Reclassified");
    let gone: Vec<String> = (3..6).map(|r| shop.id(r)).collect();
    let extra = Shop::new(62);
    let added: Vec<String> = vec![extra.id(60), extra.id(61)];
    shop.rows.drain(3..6);
    shop.rows.extend(extra.rows[60..].iter().cloned());
    shop.write();
    let changed = shop.sync(&[]);
    assert_eq!(count(&changed, " added"), 2, "{changed}");
    assert_eq!(count(&changed, " updated"), 3, "{changed}");
    assert_eq!(count(&changed, " without re-embedding"), 1, "{changed}");
    assert_eq!(count(&changed, " unchanged"), 54, "{changed}");
    assert_eq!(count(&changed, " absent from the catalogue and kept"), 3);
    assert!(changed.contains("embedded 4 products"), "{changed}");
    assert_eq!(info(&shop.index())["products"], 62);
    let after = get_json(&shop.index(), &renamed);
    assert_eq!(after["text"], "Zebra Print Sequinned Party Dress");
    assert_ne!(after["content_hash"], before["content_hash"]);
    assert_eq!(
        get_json(&shop.index(), &recategorised)["broad"],
        "Reclassified"
    );
    for id in &added {
        assert!(get(&shop.index(), id).status.success());
    }
    // The renamed product is found by its new title.
    let out = vitrina(&[
        "search",
        "--index",
        &shop.index(),
        "--json",
        "-k",
        "1",
        "zebra print sequinned party dress",
    ]);
    assert_eq!(common::json_hits(&out)[0]["id"], renamed.as_str());

    let pruned = shop.sync(&["--prune"]);
    assert_eq!(count(&pruned, " pruned"), 3, "{pruned}");
    assert!(pruned.contains("embedded 0 products"), "{pruned}");
    assert_eq!(info(&shop.index())["products"], 59);
    for id in &gone {
        let out = get(&shop.index(), id);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not in"));
    }
}

#[test]
fn upsert_delete_get_and_info_from_the_command_line() {
    let shop = Shop::new(20);
    shop.sync(&[]);
    let index = shop.index();
    // A photo next to the JSON lines, named relative to them.
    let photo_id = shop.id(5);
    std::fs::copy(
        shared_myntra().join(format!("images/{photo_id}.jpg")),
        shop.dir.path().join("new.jpg"),
    )
    .unwrap();
    let lines = [
        r#"{"id": "new-1", "text": "Handmade Red Leather Belt", "image": "new.jpg", "broad": "Belts", "attributes": {"gender": "Men", "year": 2016}}"#,
        r#"{"id": 777, "text": "Blue Denim Jacket"}"#,
        r#"not json"#,
        r#"{"id": "typo", "titel": "x", "text": "y"}"#,
        r#"{"id": "", "text": "no id"}"#,
        r#"{"id": "new-3", "text": "Silver Watch", "image": "missing.jpg"}"#,
    ];
    let jsonl = shop.dir.path().join("new.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let out = vitrina(&["upsert", "--index", &index, jsonl.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("upserted 3 products (3 lines skipped)"));
    assert!(err.contains("new.jsonl:3:"), "{err}");
    assert!(
        err.contains("new.jsonl:4:") && err.contains("titel"),
        "{err}"
    );
    assert!(
        err.contains("new.jsonl:5:") && err.contains("`id`"),
        "{err}"
    );
    assert!(err.contains("product new-3: no usable image"), "{err}");

    let p = get_json(&index, "new-1");
    assert_eq!(p["text"], "Handmade Red Leather Belt");
    assert_eq!(p["has_image"], true);
    assert_eq!(p["attributes"]["year"], "2016");
    assert!(
        Path::new(p["image"].as_str().unwrap()).is_absolute(),
        "image paths are stored absolute: {p}"
    );
    assert_eq!(get_json(&index, "777")["has_image"], false);
    assert_eq!(get_json(&index, "new-3")["has_image"], false);
    assert_eq!(info(&index)["products"], 23);

    // The photo of product 5, upserted as new-1, finds new-1 or its twin first.
    let out = vitrina(&[
        "search",
        "--index",
        &index,
        "--json",
        "--mode",
        "image",
        "-k",
        "2",
        "--image",
        shop.dir.path().join("new.jpg").to_str().unwrap(),
    ]);
    let hits: Vec<String> = common::json_hits(&out)
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    assert!(hits.contains(&"new-1".to_string()), "{hits:?}");

    let out = vitrina(&["delete", "--index", &index, "new-1", "777", "nope"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 2 products"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" is not in the index"));
    assert!(!get(&index, "new-1").status.success());
    let i = info(&index);
    assert_eq!(i["products"], 21);
    assert_eq!(
        i["model"],
        format!("all-MiniLM-L6-v2+{}", vitrina::encoder::BUILTIN_TOWER_NAME)
    );
    assert!(i["search"].as_str().unwrap().starts_with("exact"), "{i}");
    assert!(i["bytes_on_disk"].as_u64().unwrap() > 0);

    // `index --ann` builds HNSW graphs (no product is embedded again); searches use
    // them, `--exact` scans, and `index --exact` removes them.
    let out = shop.sync(&["--ann"]);
    assert!(out.contains("embedded 0 products"), "{out}");
    assert!(info(&index)["search"].as_str().unwrap().starts_with("hnsw"));
    for flag in ["--ann", "--exact"] {
        let out = vitrina(&[
            "search",
            "--index",
            &index,
            "--json",
            "-k",
            "3",
            flag,
            "--mode",
            "image",
            "black shoes",
        ]);
        assert_eq!(common::json_hits(&out).len(), 3, "{flag}");
    }
    shop.sync(&["--exact"]);
    assert!(info(&index)["search"]
        .as_str()
        .unwrap()
        .starts_with("exact"));
    let out = vitrina(&["search", "--index", &index, "--ann", "black shoes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ANN graph"));

    let missing = vitrina(&[
        "upsert",
        "--index",
        "/nonexistent/idx",
        jsonl.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no index at /nonexistent/idx"));
}

#[test]
fn a_sync_killed_mid_ingest_resumes_and_holds_every_product_once() {
    let shop = Shop::new(2000);
    let index = shop.index();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["index", "--catalog", &shop.toml(), "--index", &index])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few batches are durable in the log, then kill -9.
    let log = Path::new(&index).join("wal-000000.log");
    let started = Instant::now();
    loop {
        let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        if len > 3 * 256 * 4700 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = info(&index)["products"].as_u64().unwrap() as usize;
    assert!(
        (3 * 256..2000).contains(&before),
        "{before} products survived the kill"
    );

    let resumed = shop.sync(&[]);
    let embedded = count(&resumed, " added");
    assert_eq!(embedded, 2000 - before, "{resumed}");
    assert_eq!(count(&resumed, " unchanged"), before);
    let out = vitrina(&["info", "--index", &index, "--json"]);
    let i: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(i["products"], 2000);
    // Every product exactly once: the store is keyed by id, and the ids are those of
    // the catalogue.
    let store = vitrina::store::LiveStore::open(Path::new(&index)).unwrap();
    let products = vitrina::store::Store::products(&*store.snapshot()).unwrap();
    let mut ids: Vec<String> = products.iter().map(|p| p.id().to_string()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..2000).map(|r| shop.id(r)).collect();
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn a_running_server_follows_cli_changes_and_guards_its_write_api() {
    let shop = Shop::new(30);
    shop.sync(&[]);
    let index = shop.index();
    let key_file = shop.dir.path().join("write.key");
    std::fs::write(&key_file, "s3cret-key\n").unwrap();
    let (_server, port) = Server::start(&[
        "--index",
        &index,
        "--write-key-file",
        key_file.to_str().unwrap(),
    ]);
    let wait_for = |target: &str, status: u16| {
        let started = Instant::now();
        loop {
            let (s, body) = http(port, "GET", target, b"");
            if s == status {
                return (started.elapsed(), body);
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{target} still {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Upsert and delete from the CLI while the server runs.
    let jsonl = shop.dir.path().join("p.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": "cli-1", "text": "Turquoise Ceramic Coffee Mug", "broad": "Mugs"}"#,
    )
    .unwrap();
    assert!(
        vitrina(&["upsert", "--index", &index, jsonl.to_str().unwrap()])
            .status
            .success()
    );
    let (took, body) = wait_for("/api/products/cli-1", 200);
    assert!(took < Duration::from_secs(1), "seen after {took:?}");
    let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["text"], "Turquoise Ceramic Coffee Mug");
    let (_, body) = http(
        port,
        "GET",
        "/api/search?q=turquoise%20ceramic%20coffee%20mug&k=1",
        b"",
    );
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["hits"][0]["id"], "cli-1");
    let (_, body) = http(port, "GET", "/health", b"");
    let h: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(h["products"], 31);
    assert!(vitrina(&["delete", "--index", &index, "cli-1"])
        .status
        .success());
    let (took, _) = wait_for("/api/products/cli-1", 404);
    assert!(took < Duration::from_secs(1), "gone after {took:?}");

    // The write API: refused without the right key, applied with it.
    let photo = std::fs::read(shared_myntra().join(format!("images/{}.jpg", shop.id(3)))).unwrap();
    use base64::Engine;
    let upload = serde_json::json!({
        "text": "Striped Linen Beach Shirt",
        "broad": "Topwear",
        "attributes": {"gender": "Men"},
        "image_base64": base64::engine::general_purpose::STANDARD.encode(&photo),
    })
    .to_string();
    let put = |headers: &[&str]| {
        http_with(
            port,
            "PUT",
            "/api/products/web-1",
            headers,
            upload.as_bytes(),
        )
    };
    let (status, msg) = put(&[]);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&msg));
    assert_eq!(put(&["Authorization: Bearer wrong-key"]).0, 401);
    assert_eq!(put(&["Authorization: s3cret-key"]).0, 401);
    assert_eq!(http(port, "GET", "/api/products/web-1", b"").0, 404);
    let (status, msg) = put(&["Authorization: Bearer s3cret-key"]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&msg));
    let (status, body) = http(port, "GET", "/api/products/web-1", b"");
    assert_eq!(status, 200);
    let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["has_image"], true);
    let (status, served) = http(port, "GET", "/images/web-1", b"");
    assert_eq!(status, 200);
    assert_eq!(served, photo, "the uploaded photo is served back");
    // The same as multipart/form-data: a `product` JSON part and an `image` part.
    let mut form = Vec::new();
    form.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"product\"\r\nContent-Type: application/json\r\n\r\n",
    );
    form.extend_from_slice(br#"{"text": "Striped Linen Beach Shirt", "broad": "Topwear"}"#);
    form.extend_from_slice(
        b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
    );
    form.extend_from_slice(&photo);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let (status, msg) = http_with(
        port,
        "PUT",
        "/api/products/web-3",
        &[
            "Authorization: Bearer s3cret-key",
            "Content-Type: multipart/form-data; boundary=XyZ",
        ],
        &form,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&msg));
    let (_, served) = http(port, "GET", "/images/web-3", b"");
    assert_eq!(served, photo);
    // Bad bodies are the client's fault.
    let auth = ["Authorization: Bearer s3cret-key"];
    let (status, msg) = http_with(port, "PUT", "/api/products/web-2", &auth, b"{\"text\": ");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&msg));
    let (status, _) = http_with(
        port,
        "PUT",
        "/api/products/web-2",
        &auth,
        br#"{"text": "x", "image": "/etc/passwd"}"#,
    );
    assert_eq!(status, 400, "no server paths from clients");
    let (status, _) = http_with(
        port,
        "PUT",
        "/api/products/web-2",
        &auth,
        br#"{"text": "x", "image_base64": "/9j/AAAA"}"#,
    );
    assert_eq!(status, 422, "a broken image");
    assert_eq!(
        http_with(
            port,
            "DELETE",
            "/api/products/web-1",
            &["Authorization: Bearer nope"],
            b""
        )
        .0,
        401
    );
    assert_eq!(
        http_with(port, "DELETE", "/api/products/web-1", &auth, b"").0,
        200
    );
    assert_eq!(http(port, "GET", "/api/products/web-1", b"").0, 404);
    assert_eq!(
        http_with(port, "DELETE", "/api/products/web-1", &auth, b"").0,
        404
    );
    // The CLI sees what the server wrote.
    assert!(!get(&index, "web-1").status.success());

    // Without a key the write routes answer 403 and reads stay open.
    let (_reader, port) = Server::start(&["--index", &index]);
    let (status, msg) = http_with(port, "PUT", "/api/products/x", &auth, upload.as_bytes());
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&msg));
    assert_eq!(http(port, "DELETE", "/api/products/x", b"").0, 403);
    assert_eq!(http(port, "GET", "/health", b"").0, 200);
}
