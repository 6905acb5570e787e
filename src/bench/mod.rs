//! `vitrina bench`: the performance figures quoted in the README, measured side by side
//! in one run and printed as a table. Timing goals live here, never in unit tests.

pub mod ann;
pub mod postgres;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalog::Catalog;
use crate::encoder::preprocess::load_image;
use crate::encoder::{builtin_tower, minilm_dir, ImageEncoder, MiniLm, Model, TextEncoder};
use crate::search::{diversify, Diversify, Mode, Query, Ranking, Searcher};
use crate::store::{Hit, LiveStore, Store};

/// One row of the table.
#[derive(serde::Serialize)]
pub struct Row {
    pub what: String,
    pub value: String,
}

pub(crate) fn row(what: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        what: what.into(),
        value: value.into(),
    }
}

/// What to measure.
pub struct BenchConfig {
    pub titles: usize,
    pub images: usize,
    /// Python with sentence-transformers, to measure the peer in the same run.
    pub peer_python: Option<PathBuf>,
    /// An index to measure query latency on.
    pub index: Option<PathBuf>,
    /// An ONNX CLIP folder whose vision tower is measured (with the Python onnxruntime
    /// peer on the same tensors when `peer_python` is set).
    pub onnx_dir: Option<PathBuf>,
    pub onnx_images: usize,
    pub model_dir: Option<PathBuf>,
}

fn per_second(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs every measurement on the catalogue's first products.
pub fn run(catalog: &Catalog, config: &BenchConfig) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let dir = minilm_dir(config.model_dir.as_deref())?;
    let minilm = MiniLm::load(&dir)?;
    let titles: Vec<&str> = catalog
        .products
        .iter()
        .take(config.titles)
        .map(|p| p.text.as_str())
        .collect();
    minilm.embed_texts(&titles[..64.min(titles.len())])?; // warm-up
    let started = Instant::now();
    minilm.embed_texts(&titles)?;
    let ours = per_second(titles.len(), started);
    rows.push(row(
        format!("text: {} titles, vitrina (candle)", titles.len()),
        format!("{ours:.0} titles/s"),
    ));
    if let Some(python) = &config.peer_python {
        let peer = text_peer(python, &dir, &titles)?;
        rows.push(row(
            format!("text: same titles, sentence-transformers ({})", peer.1),
            format!("{:.0} titles/s", peer.0),
        ));
        rows.push(row(
            "text: vitrina / sentence-transformers",
            format!("{:.2}x", ours / peer.0),
        ));
    }

    let tower = builtin_tower()?;
    let images: Vec<_> = catalog
        .products
        .iter()
        .filter_map(|p| p.image.as_ref())
        .filter_map(|path| load_image(path).ok())
        .take(config.images)
        .collect();
    if images.is_empty() {
        bail!("no readable images in the catalogue's first products");
    }
    let pixels: Vec<f32> = images.iter().flat_map(|img| tower.pixels(img)).collect();
    tower.embed_pixels(&pixels[..pixels.len().min(pixels.len() / images.len() * 32)])?; // warm-up
    let started = Instant::now();
    tower.embed_pixels(&pixels)?;
    rows.push(row(
        format!(
            "image tower: {} preprocessed images, batch 256",
            images.len()
        ),
        format!("{:.0} images/s", per_second(images.len(), started)),
    ));
    let paths: Vec<&Path> = catalog
        .products
        .iter()
        .filter_map(|p| p.image.as_deref())
        .take(images.len())
        .collect();
    let started = Instant::now();
    let decoded: Vec<_> = paths.iter().filter_map(|p| load_image(p).ok()).collect();
    tower.embed_images(&decoded)?;
    rows.push(row(
        "image tower: whole path (read + decode + fit + embed)",
        format!("{:.0} images/s", per_second(decoded.len(), started)),
    ));

    // Diversification on 50 random unit vectors of 384 dimensions.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let vectors: Vec<Vec<f32>> = (0..diversify::POOL)
        .map(|_| {
            let v: Vec<f32> = (0..384).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let hits: Vec<Hit> = (0..diversify::POOL)
        .map(|i| Hit {
            id: i.to_string(),
            score: 1.0 - i as f32 / 100.0,
        })
        .collect();
    for (name, method) in [
        (
            "k-means (k=5) + round robin",
            Diversify::KMeans {
                clusters: 5,
                seed: 0,
            },
        ),
        ("MMR (lambda 0.7)", Diversify::Mmr { lambda: 0.7 }),
    ] {
        let reps = 200;
        let started = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(method.apply(&hits, |i| vectors[i].as_slice()));
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / reps as f64;
        rows.push(row(
            format!("diversify 50 x 384: {name}"),
            format!("{us:.0} µs"),
        ));
    }

    #[cfg(feature = "onnx")]
    if let Some(dir) = &config.onnx_dir {
        rows.extend(onnx_vision(catalog, dir, config)?);
    }

    if let Some(dir) = &config.index {
        let live = LiveStore::open(dir)?;
        let index = live.snapshot();
        let model = Model::builtin(config.model_dir.as_deref())?;
        let searcher = Searcher::new(&*index, &model)?;
        let products = index.products()?;
        for mode in Mode::ALL {
            if !index.meta().kinds.contains(&mode.kind()) {
                continue;
            }
            let mut times = Vec::new();
            for p in products.iter().take(200) {
                let query = Query {
                    text: Some(p.product.text.clone()),
                    ..Query::default()
                };
                let started = Instant::now();
                searcher.search(&query, &Ranking::new(mode, 10))?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            rows.push(row(
                format!(
                    "query latency, {} mode, {} products (encode + exact search)",
                    mode.name(),
                    index.len()
                ),
                format!(
                    "p50 {:.1} ms, p95 {:.1} ms",
                    percentile(&times, 0.5),
                    percentile(&times, 0.95)
                ),
            ));
        }
        let bytes = live.info().bytes_on_disk.unwrap_or(0);
        rows.push(row(
            "index size on disk",
            format!("{:.1} MB", bytes as f64 / 1e6),
        ));
    }
    Ok(rows)
}

/// An ONNX vision tower through vitrina's path, against bare onnxruntime in Python on
/// the same preprocessed tensors.
#[cfg(feature = "onnx")]
fn onnx_vision(catalog: &Catalog, dir: &Path, config: &BenchConfig) -> Result<Vec<Row>> {
    use crate::encoder::onnx::OnnxVision;
    let mut rows = Vec::new();
    let vision = OnnxVision::load(dir, "bench")?;
    let paths: Vec<&Path> = catalog
        .products
        .iter()
        .filter_map(|p| p.image.as_deref())
        .filter(|p| p.is_file())
        .take(config.onnx_images)
        .collect();
    let decoded: Vec<_> = paths.iter().filter_map(|p| load_image(p).ok()).collect();
    let n = decoded.len();
    let pixels: Vec<f32> = decoded
        .iter()
        .flat_map(|img| vision.preprocessing().pixels(img))
        .collect();
    let per = pixels.len() / n;
    vision.embed_pixels(&pixels[..per * n.min(8)])?; // warm-up
    let started = Instant::now();
    vision.embed_pixels(&pixels)?;
    let ours = per_second(n, started);
    let name = dir
        .file_name()
        .map_or("onnx".into(), |n| n.to_string_lossy().to_string());
    rows.push(row(
        format!("{name} vision: {n} preprocessed images, vitrina (ort)"),
        format!("{ours:.1} images/s"),
    ));
    let started = Instant::now();
    let again: Vec<_> = paths.iter().filter_map(|p| load_image(p).ok()).collect();
    vision.embed_images(&again)?;
    rows.push(row(
        format!("{name} vision: whole path (read + decode + resize + crop + normalise + run)"),
        format!("{:.1} images/s", per_second(n, started)),
    ));
    if let Some(python) = &config.peer_python {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), bytemuck::cast_slice(&pixels))?;
        let side = ((per / 3) as f64).sqrt() as usize;
        let model = dir.join("onnx/vision_model.onnx");
        let json = run_peer(
            python,
            "bench_onnx_peer.py",
            "requirements-peers.txt",
            &[
                model.as_os_str(),
                file.path().as_os_str(),
                n.to_string().as_ref(),
                side.to_string().as_ref(),
                "32".as_ref(),
            ],
        )?;
        let peer = json["images_per_second"]
            .as_f64()
            .context("images_per_second")?;
        rows.push(row(
            format!(
                "{name} vision: same tensors, onnxruntime {} in Python",
                json["onnxruntime"].as_str().unwrap_or("?")
            ),
            format!("{peer:.1} images/s"),
        ));
        rows.push(row(
            format!("{name} vision: vitrina's overhead on the model part"),
            format!("{:+.1}%", (peer / ours - 1.0) * 100.0),
        ));
    }
    Ok(rows)
}

/// Runs scripts/bench_text_peer.py on the same titles; returns (titles/s, description).
fn text_peer(python: &Path, model_dir: &Path, titles: &[&str]) -> Result<(f64, String)> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), titles.join("\n"))?;
    let json = run_peer(
        python,
        "bench_text_peer.py",
        "requirements-peers.txt",
        &[
            model_dir.as_os_str(),
            file.path().as_os_str(),
            "64".as_ref(),
        ],
    )?;
    Ok((
        json["titles_per_second"]
            .as_f64()
            .context("titles_per_second")?,
        format!(
            "torch {}, {} threads",
            json["torch"].as_str().unwrap_or("?"),
            json["threads"]
        ),
    ))
}

/// Runs `scripts/NAME` with `python` and parses the JSON line it prints last.
/// Runs `scripts/SCRIPT ARGS` with `python`; its last stdout line is JSON.
/// `requirements` names the file that installs the script's packages.
fn run_peer(
    python: &Path,
    script: &str,
    requirements: &str,
    args: &[&std::ffi::OsStr],
) -> Result<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the Python peer {script} failed (install the peers with scripts/{requirements}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("{script} printed no JSON"))
}

/// The table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from("| measurement | result |\n|---|---:|\n");
    for r in rows {
        s.push_str(&format!("| {} | {} |\n", r.what, r.value));
    }
    s
}
