//! The search page in a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs) driven over the Chrome DevTools Protocol, as a shopper would use
//! it: type a query, see the grid of photos and titles, switch mode and diversification,
//! load more, upload a photo and remove it, and open a shared link. Screenshots of each
//! step are kept in `target/browser-artifacts/`.
//!
//! The DevTools client is the few messages this test needs over a WebSocket
//! (tungstenite): a crate such as chromiumoxide would bring an async stack and
//! hundreds of generated protocol types for them.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

mod common;
use common::Server;

use vitrina::catalog::{Catalog, CatalogSpec, Split};
use vitrina::encoder::Model;
use vitrina::indexing::{self, SyncOptions};
use vitrina::store::EmbeddedWriter;

/// 600 test-split Myntra products, indexed with the built-in model.
fn build_index(dir: &Path) {
    let spec =
        CatalogSpec::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml"))
            .unwrap();
    let mut catalog = Catalog::load(&spec).unwrap();
    catalog.select(Split::Test, Some(600));
    let model = Model::builtin(None).unwrap();
    let meta = indexing::store_meta(&model, "myntra", true);
    let mut writer = EmbeddedWriter::create(dir, &meta).unwrap();
    indexing::sync(&catalog, &model, &mut writer, &SyncOptions::default()).unwrap();
    writer.compact().unwrap();
}

/// Headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session with one page.
struct Page {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// A session over `url`; a command unanswered for 60 s fails the test.
    fn connect(url: &str) -> Page {
        let (socket, _) = tungstenite::connect(url).unwrap();
        if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Page { socket, next_id: 0 }
    }

    /// Sends one command and returns its result, skipping the events in between.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap();
        loop {
            let message = self
                .socket
                .read()
                .unwrap_or_else(|e| panic!("{method}: no reply from chromium: {e}"));
            let Message::Text(text) = message else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (a JavaScript expression) is true, up to 20 s.
    fn wait_for(&mut self, condition: &str) {
        let started = Instant::now();
        while self.eval(&format!("!!({condition})")) != json!(true) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {condition}; status: {}",
                self.eval("document.getElementById('status').textContent")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `action` and waits for the search it starts to be shown.
    fn searching(&mut self, action: impl FnOnce(&mut Page)) {
        self.eval(
            "window.__shown = new Promise(done => { const s = document.getElementById('status'); \
             new MutationObserver((_, o) => { if (/results$/.test(s.textContent)) { o.disconnect(); done(); } }) \
             .observe(s, {childList: true, characterData: true, subtree: true}); }); 0",
        );
        action(self);
        self.eval("Promise.race([window.__shown, new Promise((_, no) => setTimeout(() => no('no results shown'), 20000))])");
        self.photos_loaded();
    }

    /// Chooses `file` in the file input whose DevTools object id is `input`, and waits
    /// for the search that starts to be shown.
    fn choose_file(&mut self, input: &str, file: &Path) {
        self.searching(|p| {
            p.call(
                "DOM.setFileInputFiles",
                json!({"files": [file.to_str().unwrap()], "objectId": input}),
            );
        });
    }

    /// Waits for every card's photo, those below the fold too (the page loads them
    /// lazily, as the shopper scrolls).
    fn photos_loaded(&mut self) {
        self.eval("document.querySelectorAll('#results img').forEach(i => i.loading = 'eager')");
        self.wait_for("[...document.querySelectorAll('#results img')].every(i => i.complete)");
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let dir = artifacts();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Each card's title, its photo's loaded width (0: broken; -1: the placeholder of
    /// a product without a photo) and its label line.
    fn cards(&mut self) -> Vec<(String, i64, String)> {
        let cards = self.eval(
            "[...document.querySelectorAll('#results .card')].map(c => [ \
               c.querySelector('.title').textContent, \
               c.querySelector('img') ? c.querySelector('img').naturalWidth : (c.querySelector('.noimg') ? -1 : 0), \
               c.querySelector('.meta').textContent])",
        );
        cards
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c[0].as_str().unwrap().to_string(),
                    c[1].as_i64().unwrap(),
                    c[2].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts Chromium and opens a DevTools session on its blank page.
fn open_browser() -> (Browser, Page) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium is not installed: .ci/run installs Debian's chromium package");
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let browser_url = loop {
        let line = lines
            .next()
            .expect("chromium exited before it listened")
            .unwrap();
        if let Some(at) = line.find("ws://") {
            break line[at..].trim().to_string();
        }
    };
    // Keep draining chromium's log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let browser = Browser {
        child,
        _profile: profile,
    };
    // A new tab, then a session on it (ws://HOST:PORT/devtools/page/TARGET).
    let mut control = Page::connect(&browser_url);
    let target = control.call("Target.createTarget", json!({"url": "about:blank"}));
    let host = browser_url.split("/devtools/").next().unwrap();
    let url = format!(
        "{host}/devtools/page/{}",
        target["targetId"].as_str().unwrap()
    );
    (browser, Page::connect(&url))
}

#[test]
fn a_shopper_uses_the_page_in_a_real_browser() {
    let index = tempfile::tempdir().unwrap();
    build_index(index.path());
    let (_server, port) = Server::start(&["--index", index.path().to_str().unwrap()]);
    let (_browser, mut page) = open_browser();
    let home = format!("http://127.0.0.1:{port}/");
    page.call("Page.navigate", json!({"url": home}));
    page.wait_for("document.readyState === 'complete' && document.querySelectorAll('#filters select').length > 0");

    // Type a query as a shopper does, and press the search button.
    page.eval("document.getElementById('q').focus()");
    page.call("Input.insertText", json!({"text": "red dress"}));
    page.searching(|p| {
        p.eval("document.querySelector('button[type=submit]').click()");
    });
    let cards = page.cards();
    assert_eq!(cards.len(), 24, "{cards:?}");
    for (title, width, labels) in &cards {
        assert!(!title.is_empty());
        // A product photo, or for Myntra's rows without an image file a placeholder;
        // never a broken image.
        assert!(*width != 0, "{title}: photo did not load");
        // What a shopper needs: no raw scores, no label repeated ("Wallets · Wallets").
        let parts: Vec<&str> = labels.split(" · ").collect();
        let mut unique = parts.clone();
        unique.dedup();
        assert_eq!(parts, unique, "{title}: {labels}");
    }
    let text = page.eval("document.getElementById('results').innerText");
    assert!(!text.as_str().unwrap().contains("score"));
    // The 600 products hold few dresses: they come first, then other red products.
    assert!(
        cards[..3].iter().all(|c| c.0.contains("Dress")),
        "{cards:?}"
    );
    assert!(
        cards.iter().filter(|c| c.2.ends_with("Red")).count() >= 12,
        "{cards:?}"
    );
    // "red" is understood as a colour: a chip the shopper can remove.
    let chip = page.eval(
        "[...document.querySelectorAll('#filters .chip.understood')].map(c => c.textContent).join(' ')",
    );
    assert!(chip.as_str().unwrap().contains("Red"), "{chip}");
    page.screenshot("1-text-query");

    // Load more: the next 24 are appended below the first 24, which stay as they were.
    page.searching(|p| {
        p.eval("document.getElementById('more').click()");
    });
    let more = page.cards();
    assert_eq!(more.len(), 48);
    assert_eq!(&more[..24], &cards[..]);
    page.screenshot("2-load-more");

    // Switch mode and diversification: new searches, still 24 product cards.
    page.searching(|p| {
        p.eval("const m = document.getElementById('mode'); m.value = 'image'; m.dispatchEvent(new Event('change'))");
    });
    assert_eq!(page.cards().len(), 24);
    page.searching(|p| {
        p.eval("const d = document.getElementById('div'); d.value = 'kmeans'; d.dispatchEvent(new Event('change'))");
    });
    let varied = page.cards();
    assert_eq!(varied.len(), 24);
    page.screenshot("3-image-mode-varied");

    // A shareable link: the address bar holds the search; opening it shows it again.
    let link = page.eval("location.href");
    let link = link.as_str().unwrap().to_string();
    assert!(
        link.contains("q=red+dress") && link.contains("diversify=kmeans"),
        "{link}"
    );
    page.call("Page.navigate", json!({"url": link}));
    page.wait_for("document.querySelectorAll('#results .card').length === 24 && document.getElementById('div').value === 'kmeans'");
    page.photos_loaded();
    assert_eq!(page.cards(), varied);
    page.screenshot("4-shared-link");

    // Search by a photo: upload one product's photo; its own product comes first.
    page.eval(
        "document.getElementById('mode').value = 'image'; \
         document.getElementById('div').value = 'none'; \
         document.getElementById('q').value = ''; 0",
    );
    let photo_id = "15970";
    let photo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../shared/data/myntra/images/{photo_id}.jpg"))
        .canonicalize()
        .unwrap();
    let input = page.call(
        "Runtime.evaluate",
        json!({"expression": "document.getElementById('img')"}),
    );
    let object = input["result"]["objectId"].as_str().unwrap().to_string();
    page.choose_file(&object, &photo);
    let by_photo = page.cards();
    assert_eq!(by_photo.len(), 24);
    let own_title = page.eval(&format!(
        "fetch('/api/products/{photo_id}').then(r => r.json()).then(p => p.text)"
    ));
    // First, or just after identical photos of other products (Myntra has some).
    assert!(
        by_photo[..3]
            .iter()
            .any(|c| c.0 == own_title.as_str().unwrap()),
        "{own_title}: {by_photo:?}"
    );
    assert_ne!(
        page.eval("getComputedStyle(document.getElementById('preview')).display"),
        "none"
    );
    page.screenshot("5-photo-query");
    // A photo this small is sent as it is.
    let sent = page.eval("photo.size");
    assert_eq!(sent, json!(std::fs::metadata(&photo).unwrap().len()));

    // A phone-sized photo of the same product (1800x2400) is sent as a JPEG of at most
    // 1024 pixels a side, and still finds its product first.
    let dir = tempfile::tempdir().unwrap();
    let large = dir.path().join("large.jpg");
    image::open(&photo)
        .unwrap()
        .resize_exact(1800, 2400, image::imageops::FilterType::CatmullRom)
        .to_rgb8()
        .save(&large)
        .unwrap();
    page.choose_file(&object, &large);
    let size = page.eval("createImageBitmap(photo).then(b => [b.width, b.height, photo.type])");
    assert_eq!(size, json!([768, 1024, "image/jpeg"]));
    let sent = page.eval("photo.size").as_u64().unwrap();
    let file = std::fs::metadata(&large).unwrap().len();
    assert!(sent * 2 < file, "sent {sent} bytes of a {file}-byte photo");
    eprintln!("a 1800x2400 photo of {file} bytes was sent as 768x1024, {sent} bytes");
    let by_large = page.cards();
    assert!(
        by_large[..3]
            .iter()
            .any(|c| c.0 == own_title.as_str().unwrap()),
        "{own_title}: {by_large:?}"
    );

    // An AVIF photo (a dark box on red, 64x80: tests/fixtures/dark-on-red.avif, written by
    // ImageMagick's `convert -size 64x80 xc:'rgb(200,30,40)' -fill 'rgb(20,20,20)` `-draw
    // 'rectangle 16,10 48,70'`), which the server does not decode, is sent as a JPEG of
    // its own size and searched.
    let avif = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dark-on-red.avif");
    page.choose_file(&object, &avif);
    let size = page.eval("createImageBitmap(photo).then(b => [b.width, b.height, photo.type])");
    assert_eq!(size, json!([64, 80, "image/jpeg"]));
    assert_eq!(page.cards().len(), 24);

    // Remove the photo: the preview goes, and with no words there is nothing to show.
    page.eval("document.getElementById('clearphoto').click()");
    page.wait_for("document.querySelectorAll('#results .card').length === 0");
    assert_eq!(
        page.eval("getComputedStyle(document.getElementById('preview')).display"),
        "none"
    );
    page.screenshot("6-photo-removed");
}
