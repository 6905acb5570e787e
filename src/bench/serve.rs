//! `vitrina bench --suite serve`: `vitrina serve` under load over loopback. The server runs
//! as its own process, as in production; a load generator keeps 1, 8, then 32 keep-alive
//! connections busy for a bounded time each, with a shop's mix of requests: 70% text
//! queries not asked before, 20% repeated ones (a hot set of 20), 10% photo uploads of real
//! product photos, all in average mode, k = 10; then 200 requests a second on schedule (an
//! open loop, latency from the scheduled time). Measured with the server's defaults, without
//! the query cache, and without query batching (the peer of the defaults' rows).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{measured, percentile, Peer, Row};
use crate::catalog::Catalog;
use crate::encoder::MAX_QUERY_BATCH;

/// Connection counts measured, in order.
const CONNECTIONS: [usize; 3] = [1, 8, 32];
/// The arrival rate of the open-loop row: the goal (>= 200 req/s with p99 <=
/// 50 ms).
const GOAL_RATE: f64 = 200.0;
/// Photos cycled through as uploads.
const PHOTOS: usize = 50;
const HOT_QUERIES: usize = 20;

/// The server process; killed when dropped, so a failed run leaves nothing behind.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the workers send: texts never asked before are taken in turn from `titles`.
struct Mix {
    titles: Vec<String>,
    next_title: AtomicUsize,
    hot: Vec<String>,
    photos: Vec<Bytes>,
}

/// One finished request: latency and whether it was answered 200.
type Sample = (f64, bool);

fn search_path(text: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    format!("/api/search?q={q}&mode=average&k=10")
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The next request of the mix: (method, path, body, content type).
fn next_request(mix: &Mix, rng: &mut ChaCha8Rng) -> hyper::Request<Full<Bytes>> {
    let roll: f64 = rng.random();
    let (method, path, body, content_type) = if roll < 0.7 {
        let i = mix.next_title.fetch_add(1, Ordering::Relaxed) % mix.titles.len();
        ("GET", search_path(&mix.titles[i]), Bytes::new(), None)
    } else if roll < 0.9 {
        let q = &mix.hot[rng.random_range(0..mix.hot.len())];
        ("GET", search_path(q), Bytes::new(), None)
    } else {
        let photo = mix.photos[rng.random_range(0..mix.photos.len())].clone();
        let path = "/api/search?mode=average&k=10".to_string();
        ("POST", path, photo, Some("image/jpeg"))
    };
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    request
        .body(Full::new(body))
        .expect("a request of fixed, valid parts")
}

/// Sends one request on `sender` (connecting first when there is none); whether it was
/// answered 200. A failed connection is dropped, so the next request reconnects.
async fn send(
    addr: SocketAddr,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    request: hyper::Request<Full<Bytes>>,
) -> bool {
    if sender.is_none() {
        *sender = connect(addr).await.ok();
    }
    let Some(s) = sender.as_mut() else {
        return false;
    };
    match s.send_request(request).await {
        Ok(response) => {
            let status = response.status();
            response.into_body().collect().await.is_ok() && status == 200
        }
        Err(_) => {
            *sender = None;
            false
        }
    }
}

/// Sends requests on one connection until `deadline`, each as soon as the last is
/// answered (a closed loop).
async fn worker(addr: SocketAddr, mix: Arc<Mix>, seed: u64, deadline: Instant) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Vec::new();
    let mut sender = None;
    while Instant::now() < deadline {
        let request = next_request(&mix, &mut rng);
        let started = Instant::now();
        let ok = send(addr, &mut sender, request).await;
        samples.push((started.elapsed().as_secs_f64() * 1e3, ok));
    }
    samples
}

/// Keeps `connections` connections busy for `seconds`.
async fn closed_loop(
    addr: SocketAddr,
    mix: Arc<Mix>,
    connections: usize,
    seconds: f64,
) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|c| tokio::spawn(worker(addr, mix.clone(), c as u64, deadline)))
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

/// Sends `rate` requests a second, on schedule, for `seconds` (an open loop, as shoppers
/// arrive: a slow answer does not hold back the next request). Latency counts from the
/// scheduled time, so a request that waited for a free connection is charged for it
/// (no coordinated omission).
async fn open_loop(addr: SocketAddr, mix: Arc<Mix>, rate: f64, seconds: f64) -> Vec<Sample> {
    let pool: Arc<std::sync::Mutex<Vec<SendRequest<Full<Bytes>>>>> = Arc::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let start = tokio::time::Instant::now();
    let total = (rate * seconds) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let request = next_request(&mix, &mut rng);
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let taken = pool.lock().map(|mut p| p.pop()).unwrap_or(None);
            let mut sender = taken;
            let ok = send(addr, &mut sender, request).await;
            let ms = at.elapsed().as_secs_f64() * 1e3;
            if let (Some(s), Ok(mut p)) = (sender, pool.lock()) {
                p.push(s);
            }
            (ms, ok)
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for task in tasks {
        samples.push(task.await.unwrap_or((f64::MAX, false)));
    }
    samples
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `vitrina serve` on a free loopback port and waits until it answers.
fn start_server(
    index: &Path,
    query_cache: usize,
    query_batch: usize,
) -> Result<(ServerProcess, SocketAddr)> {
    let exe = std::env::current_exe().context("cannot find the vitrina binary")?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--index")
        .arg(index)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--query-cache")
        .arg(query_cache.to_string())
        .arg("--query-batch")
        .arg(query_batch.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start vitrina serve")?;
    let mut server = ServerProcess(child);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(status) = server.0.try_wait()? {
            bail!("vitrina serve exited at start ({status}); run it by hand to see why");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok((server, addr));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("vitrina serve did not answer on {addr} within 120 s")
}

/// How the load is offered.
#[derive(Clone, Copy)]
enum Load {
    /// This many connections, each sending as soon as its last request is answered.
    Connections(usize),
    /// This many requests a second, on schedule.
    Rate(f64),
}

/// Offers `how` for `seconds`; one row.
fn load(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    mix: &Arc<Mix>,
    how: Load,
    seconds: f64,
    setting: &str,
) -> Result<Row> {
    let started = Instant::now();
    let (samples, what) = match how {
        Load::Connections(connections) => (
            runtime.block_on(closed_loop(addr, mix.clone(), connections, seconds)),
            format!("{connections} connection(s) for {seconds:.0} s"),
        ),
        Load::Rate(rate) => (
            runtime.block_on(open_loop(addr, mix.clone(), rate, seconds)),
            format!("{rate:.0} req/s offered for {seconds:.0} s (open loop)"),
        ),
    };
    summarise(
        format!("serve {setting}: {what}"),
        &samples,
        started.elapsed().as_secs_f64(),
    )
}

/// A row: answers per second over `elapsed`, latency percentiles, failures.
fn summarise(what: String, samples: &[Sample], elapsed: f64) -> Result<Row> {
    let failed = samples.iter().filter(|s| !s.1).count();
    let mut ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        bail!("no request finished: {what}");
    }
    let per_second = samples.len() as f64 / elapsed;
    let mut row = measured(what, per_second, "req/s", 0);
    row.value = format!(
        "{per_second:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {failed} not 200",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    Ok(row)
}

/// Runs the load at each connection count for `seconds` and returns the table's rows.
pub fn run(index: &Path, catalog: &Catalog, seconds: f64) -> Result<Vec<Row>> {
    let titles: Vec<String> = catalog.products.iter().map(|p| p.text.clone()).collect();
    if titles.len() < HOT_QUERIES * 2 {
        bail!("the catalogue has too few products for a load test");
    }
    let photos: Vec<Bytes> = catalog
        .products
        .iter()
        .filter_map(|p| p.image.as_ref())
        .filter_map(|path| std::fs::read(path).ok())
        .take(PHOTOS)
        .map(Bytes::from)
        .collect();
    if photos.is_empty() {
        bail!("no readable photos in the catalogue for the upload share of the mix");
    }
    // The hot set comes from the end of the catalogue, the new texts from its start.
    let hot = titles[titles.len() - HOT_QUERIES..].to_vec();
    let mix = Arc::new(Mix {
        titles,
        next_title: AtomicUsize::new(0),
        hot,
        photos,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let index_name = index.file_name().map_or_else(
        || index.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    // The server's defaults; then no query cache (what repeated queries gain from it);
    // then every text encoded alone, the peer of the first rows (what batching gains).
    let settings = [
        (10_000, MAX_QUERY_BATCH, "query cache on"),
        (0, MAX_QUERY_BATCH, "query cache off"),
        (10_000, 1, "query cache on, no query batching"),
    ];
    let mut rows = Vec::new();
    for (query_cache, query_batch, name) in settings {
        let (_server, addr) = start_server(index, query_cache, query_batch)?;
        // Every server gets the same sequence of texts, each new to it.
        mix.next_title.store(0, Ordering::Relaxed);
        let setting = format!("{index_name}, {name}");
        let loads = CONNECTIONS
            .map(Load::Connections)
            .into_iter()
            .chain([Load::Rate(GOAL_RATE)]);
        for how in loads {
            rows.push(load(&runtime, addr, &mix, how, seconds, &setting)?);
        }
    }
    // The defaults' rows against the unbatched server's at the same load.
    let n = rows.len() / settings.len();
    for i in 0..n {
        let peer = rows[2 * n + i].number.map(|number| Peer {
            name: "unbatched".into(),
            number,
        });
        let row = std::mem::replace(&mut rows[i], super::row("", ""));
        rows[i] = row.against(peer.as_ref());
    }
    Ok(rows)
}
