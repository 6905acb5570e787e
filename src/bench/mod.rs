//! `vitrina bench`: the performance figures quoted in the README, measured side by side
//! in one run and printed as a table. Timing goals live here, never in unit tests.

pub mod ann;
pub mod postgres;
pub mod serve;
pub mod store;
pub mod train;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use image::{DynamicImage, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalog::Catalog;
use crate::encoder::gelu;
use crate::encoder::preprocess::{self, load_image};
use crate::encoder::{
    builtin_tower, minilm_dir, ImageEncoder, MiniLm, Model, TextBackend, TextEncoder,
};
use crate::eval::reframe::{
    enlarge_and_reframe, enlarge_and_reframe_on, GREY_BACKDROP, OFF_CENTRE,
};
use crate::search::{
    diversify, title_feedback, Diversify, Feedback, Mode, Query, Ranking, Searcher,
};
use crate::store::{Hit, LiveStore, Method, Store};

/// One row of the table; in `--json`, one object per measurement.
#[derive(serde::Serialize)]
pub struct Row {
    pub what: String,
    /// The result as the table prints it.
    pub value: String,
    /// The result as a number in `unit`, for rows that are one measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The peer measured side by side in the same run, and `number / peer.number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

#[derive(serde::Serialize, Clone)]
pub struct Peer {
    pub name: String,
    pub number: f64,
}

pub(crate) fn row(what: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        what: what.into(),
        value: value.into(),
        number: None,
        unit: None,
        peer: None,
        ratio: None,
    }
}

/// A row holding one number (printed with `decimals`) in `unit`.
pub(crate) fn measured(what: impl Into<String>, number: f64, unit: &str, decimals: usize) -> Row {
    Row {
        number: Some(number),
        unit: Some(unit.into()),
        ..row(what, format!("{number:.decimals$} {unit}"))
    }
}

impl Row {
    /// Sets the peer measured in the same run; the table shows the ratio beside the value.
    pub(crate) fn against(mut self, peer: Option<&Peer>) -> Row {
        if let (Some(peer), Some(number)) = (peer, self.number) {
            let ratio = number / peer.number;
            self.value = format!("{} ({ratio:.2}x {})", self.value, peer.name);
            self.ratio = Some(ratio);
            self.peer = Some(peer.clone());
        }
        self
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
    let dir = minilm_dir(config.model_dir.as_deref())?;
    let titles: Vec<&str> = catalog
        .products
        .iter()
        .take(config.titles)
        .map(|p| p.text.as_str())
        .collect();
    let mut rows = text_encoding(&dir, &titles, config.peer_python.as_deref())?;

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
    rows.push(measured(
        format!(
            "image tower: {} preprocessed images, batch 256",
            images.len()
        ),
        per_second(images.len(), started),
        "images/s",
        0,
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
    rows.push(measured(
        "image tower: whole path (read + decode + fit + embed)",
        per_second(decoded.len(), started),
        "images/s",
        0,
    ));
    rows.extend(photo_query_rows(&tower, &images)?);
    rows.extend(phone_photo_rows(&tower, &images)?);
    rows.extend(gelu_rows()?);

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
        rows.extend(query_latency(dir, config.model_dir.as_deref())?);
    }
    Ok(rows)
}

/// Milliseconds `f` takes per item of `items`, after one warm-up call on the first.
fn ms_each<T, R>(items: &[T], f: impl Fn(&T) -> Result<R>) -> Result<f64> {
    f(&items[0])?; // warm-up
    let started = Instant::now();
    for item in items {
        std::hint::black_box(f(item)?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e3 / items.len() as f64)
}

/// A shopper's photo query, from decoded photo to query vector: one view (as the
/// catalogue's photos are embedded) against what search embeds, the photo's own vector
/// and the mean of six views (`query_views.rs`), on up to 100 photos made 10x larger
/// and re-framed as uploads; then the same uploads on a grey backdrop, which search
/// makes white first (`backdrop.rs`).
fn photo_query_rows(tower: &dyn ImageEncoder, photos: &[DynamicImage]) -> Result<Vec<Row>> {
    let uploads: Vec<DynamicImage> = photos
        .iter()
        .take(100)
        .map(|photo| enlarge_and_reframe(photo, 10, OFF_CENTRE))
        .collect();
    let on_grey: Vec<DynamicImage> = photos
        .iter()
        .take(100)
        .map(|photo| enlarge_and_reframe_on(photo, 10, OFF_CENTRE, |_, _| Rgb(GREY_BACKDROP)))
        .collect();
    let size = format!("{}x{}", uploads[0].width(), uploads[0].height());
    let one_view = |u: &DynamicImage| Ok(tower.embed_images(std::slice::from_ref(u))?.vectors);
    let searched = |u: &DynamicImage| Ok(tower.embed_query_image(u)?.ranked().to_vec());
    let one = ms_each(&uploads, one_view)?;
    let six = ms_each(&uploads, searched)?;
    let grey = ms_each(&on_grey, searched)?;
    let peer = Peer {
        name: "one view".to_string(),
        number: one,
    };
    let on_white = Peer {
        name: "on white".to_string(),
        number: six,
    };
    Ok(vec![
        measured(
            format!("photo query vector ({size} upload): one view"),
            one,
            "ms",
            1,
        ),
        measured(
            format!("photo query vectors ({size} upload): its own and six views' mean"),
            six,
            "ms",
            1,
        )
        .against(Some(&peer)),
        measured(
            format!("photo query vectors ({size} upload on a grey backdrop, made white)"),
            grey,
            "ms",
            1,
        )
        .against(Some(&on_white)),
    ])
}

/// A phone-sized upload (each photo enlarged 50x and re-framed: about 3300 x 4360, 14
/// megapixels, as a phone's camera writes it): shrinking it to the 64x80 canvas with
/// fast_image_resize, against `image`'s resize with the same triangle filter (what
/// preprocessing used before), then the whole photo query, from the decoded photo to its
/// query vectors, and decoding it from JPEG, which comes before; on 10 photos.
fn phone_photo_rows(tower: &dyn ImageEncoder, photos: &[DynamicImage]) -> Result<Vec<Row>> {
    let uploads: Vec<DynamicImage> = photos
        .iter()
        .take(10)
        .map(|photo| enlarge_and_reframe(photo, 50, OFF_CENTRE))
        .collect();
    let size = format!("{}x{}", uploads[0].width(), uploads[0].height());
    let rgb: Vec<RgbImage> = uploads.iter().map(DynamicImage::to_rgb8).collect();
    let (cw, ch) = preprocess::fit_within(rgb[0].dimensions(), 64, 80);
    let ours = ms_each(&rgb, |p| Ok(preprocess::resize_rgb(p, cw, ch)))?;
    let image_crate = ms_each(&rgb, |p| {
        Ok(image::imageops::resize(
            p,
            cw,
            ch,
            image::imageops::FilterType::Triangle,
        ))
    })?;
    let query = ms_each(&uploads, |u| tower.embed_query_image(u))?;
    let mut jpegs = Vec::new();
    for upload in &rgb {
        let mut bytes = Vec::new();
        upload.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )?;
        jpegs.push(bytes);
    }
    let decode = ms_each(&jpegs, |bytes| preprocess::decode_image(bytes))?;
    let peer = Peer {
        name: "image's resize".to_string(),
        number: image_crate,
    };
    Ok(vec![
        measured(
            format!("shrink a {size} photo to {cw}x{ch} (fast_image_resize, triangle filter)"),
            ours,
            "ms",
            2,
        )
        .against(Some(&peer)),
        measured(
            format!("photo query vectors ({size} upload): its own and six views' mean"),
            query,
            "ms",
            1,
        ),
        measured(
            format!(
                "decode the same {size} photo from JPEG ({} KB, `image`'s default quality)",
                jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len() / 1024
            ),
            decode,
            "ms",
            1,
        ),
    ])
}

/// The image tower's activation against its peers, on 4M values spread over [-4, 4]:
/// `tanh` on one core against libm's `tanhf`, and the fused GELU op against candle's
/// `Tensor::gelu` (with libm's `tanhf`), the op the tower's GELU replaced.
fn gelu_rows() -> Result<Vec<Row>> {
    const N: usize = 1 << 22;
    const REPS: usize = 5;
    let values: Vec<f32> = (0..N).map(|i| (i % 8192) as f32 / 1024.0 - 4.0).collect();
    // Generic, so each tanh is inlined into its loop as it is in the tower's GELU, not
    // called through a function pointer the compiler might keep.
    fn tanh_rate(values: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) -> f64 {
        let started = Instant::now();
        for _ in 0..REPS {
            for (o, &v) in out.iter_mut().zip(std::hint::black_box(values)) {
                *o = f(v);
            }
            std::hint::black_box(&out);
        }
        per_second(REPS * values.len(), started) / 1e6
    }
    let mut out = vec![0f32; N];
    let libm = tanh_rate(&values, &mut out, f32::tanh);
    let ours = tanh_rate(&values, &mut out, gelu::tanh);
    let x = Tensor::from_vec(values, N, &Device::Cpu)?;
    let gelu_rate = |f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| -> Result<f64> {
        f(&x)?; // warm-up
        let started = Instant::now();
        for _ in 0..REPS {
            std::hint::black_box(f(&x)?);
        }
        Ok(per_second(REPS * N, started) / 1e6)
    };
    let candle = gelu_rate(&|x| x.gelu())?;
    let fused = gelu_rate(&gelu::gelu)?;
    // Each peer's row, then ours against it.
    let side_by_side = |what: &str, peer: &str, peer_rate: f64, ours: &str, rate: f64| {
        let peer_of = Peer {
            name: peer.into(),
            number: peer_rate,
        };
        [
            measured(format!("{what}: {peer}"), peer_rate, "M/s", 0),
            measured(format!("{what}: {ours}"), rate, "M/s", 0).against(Some(&peer_of)),
        ]
    };
    let mut rows = Vec::from(side_by_side(
        "tanh, 4M values, one core",
        "libm tanhf",
        libm,
        "vitrina (rational, vectorised)",
        ours,
    ));
    rows.extend(side_by_side(
        "GELU, same values",
        "candle Tensor::gelu",
        candle,
        "vitrina's fused op (the image tower's)",
        fused,
    ));
    Ok(rows)
}

/// The whole text-query path (parse, encode, keyword and vector search, attribute boosts,
/// product rows) for 200 product titles as queries, in every mode the index holds; by
/// exact scan, and by HNSW too when the index has graphs. The encode time is measured
/// on the side, once more per query.
fn query_latency(dir: &Path, model_dir: Option<&Path>) -> Result<Vec<Row>> {
    let live = LiveStore::open(dir)?;
    let index = live.snapshot();
    let model = Model::builtin(model_dir)?;
    let searcher = Searcher::new(&*index, &model)?;
    let products = index.products()?;
    anyhow::ensure!(
        !products.is_empty(),
        "{}: the index is empty",
        dir.display()
    );
    let info = live.info();
    let mut methods = vec![(Method::Exact, "exact scan")];
    if info.search.starts_with("hnsw") {
        methods.push((Method::Ann, "HNSW"));
    }
    let mut rows = Vec::new();
    for (method, method_name) in methods {
        let modes = Mode::VECTOR
            .into_iter()
            .chain([Mode::Keyword, Mode::Hybrid]);
        for mode in modes {
            if mode
                .kind()
                .is_some_and(|k| !index.meta().kinds.contains(&k))
            {
                continue;
            }
            // Where feedback is on by default, the same queries without it too, side by
            // side: what visual feedback's second vector search and title feedback's
            // deeper list cost.
            let vector_mode = Ranking::new(mode, 10).vector_mode(index.meta());
            let visual = vector_mode.is_some_and(|m| Feedback::default_for(m).is_on());
            let titles = vector_mode.is_some_and(|m| title_feedback::default_for(m) > 0.0);
            let mut variants: Vec<(Option<Feedback>, Option<f32>, &str)> = vec![(None, None, "")];
            if titles {
                variants.push((None, Some(0.0), ", no title feedback"));
            }
            if visual || titles {
                variants.push((Some(Feedback::OFF), Some(0.0), ", no feedback"));
            }
            for (feedback, title_feedback, variant) in variants {
                let ranking = Ranking {
                    method,
                    feedback,
                    title_feedback,
                    ..Ranking::new(mode, 10)
                };
                let label = format!(
                    "query latency, {} mode, {} products (whole text query, {method_name}{variant})",
                    mode.name(),
                    index.len(),
                );
                rows.push(latency_row(&searcher, &products, &ranking, label)?);
            }
        }
    }
    rows.push(row(
        "index size on disk",
        format!("{:.1} MB", info.bytes_on_disk.unwrap_or(0) as f64 / 1e6),
    ));
    Ok(rows)
}

/// p50 and p95 of the whole text-query path over the first 200 products' titles, and
/// the encoding's share.
fn latency_row(
    searcher: &Searcher,
    products: &[crate::store::StoredProduct],
    ranking: &Ranking,
    label: String,
) -> Result<Row> {
    let (mut times, mut encoding) = (Vec::new(), Vec::new());
    let query = |p: &crate::store::StoredProduct| Query {
        text: Some(p.product.text.clone()),
        ..Query::default()
    };
    // The keyword index is built on first use (once per store version).
    searcher.search(&query(&products[0]), ranking)?;
    for p in products.iter().take(200) {
        let query = query(p);
        if ranking.mode != Mode::Keyword {
            let started = Instant::now();
            searcher.embed(&query)?;
            encoding.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let started = Instant::now();
        searcher.search(&query, ranking)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    encoding.sort_by(f64::total_cmp);
    let p50 = percentile(&times, 0.5);
    let encode = if encoding.is_empty() {
        0.0
    } else {
        percentile(&encoding, 0.5)
    };
    Ok(Row {
        number: Some(p50),
        unit: Some("ms (p50)".into()),
        ..row(
            label,
            format!(
                "p50 {p50:.1} ms (encode {encode:.1}), p95 {:.1} ms",
                percentile(&times, 0.95)
            ),
        )
    })
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

/// Titles per forward pass for the peer: the same as vitrina's ONNX Runtime path.
#[cfg(feature = "onnx")]
const TEXT_BATCH: usize = crate::encoder::onnx::BATCH;
#[cfg(not(feature = "onnx"))]
const TEXT_BATCH: usize = crate::encoder::CANDLE_BATCH;

/// The built-in text tower on each runtime, against sentence-transformers on the same
/// titles (`python` given): titles/s, model load time, and how far int8 moves vectors.
fn text_encoding(dir: &Path, titles: &[&str], python: Option<&Path>) -> Result<Vec<Row>> {
    let peer = python
        .map(|python| text_peer(python, dir, titles))
        .transpose()?;
    let mut rows = Vec::new();
    if let Some(peer) = &peer {
        rows.push(measured(
            format!("text: {} titles, peer {}", titles.len(), peer.name),
            peer.number,
            "titles/s",
            0,
        ));
    }
    let mut reference: Option<Vec<f32>> = None;
    for backend in TextBackend::ALL {
        if cfg!(not(feature = "onnx")) && backend != TextBackend::Candle {
            continue;
        }
        let started = Instant::now();
        let model = MiniLm::load_with(dir, backend)?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        model.embed_texts(&titles[..64.min(titles.len())])?; // warm-up
        let started = Instant::now();
        let vectors = model.embed_texts(titles)?.vectors;
        let speed = per_second(titles.len(), started);
        let name = match backend {
            TextBackend::Candle => format!("candle, f32, batch {}", crate::encoder::CANDLE_BATCH),
            TextBackend::Onnx => format!("ONNX Runtime 1.32, f32, batch {TEXT_BATCH}"),
            TextBackend::OnnxInt8 => {
                format!("ONNX Runtime 1.32, int8 dense layers, batch {TEXT_BATCH}")
            }
        };
        rows.push(
            measured(
                format!("text: same titles, vitrina {} ({name})", backend.name()),
                speed,
                "titles/s",
                0,
            )
            .against(peer.as_ref()),
        );
        rows.push(measured(
            format!("text: model load, {}", backend.name()),
            load_ms,
            "ms",
            0,
        ));
        match (&reference, backend) {
            (None, TextBackend::Onnx) => reference = Some(vectors),
            (Some(exact), _) => {
                let worst = exact
                    .chunks_exact(model.dim())
                    .zip(vectors.chunks_exact(model.dim()))
                    .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
                    .fold(1f32, f32::min);
                rows.push(measured(
                    format!(
                        "text: worst cosine of {} to onnx (f32) over these titles",
                        backend.name()
                    ),
                    worst as f64,
                    "",
                    5,
                ));
            }
            _ => {}
        }
    }
    Ok(rows)
}

/// Runs scripts/bench_text_peer.py on the same titles.
fn text_peer(python: &Path, model_dir: &Path, titles: &[&str]) -> Result<Peer> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), titles.join("\n"))?;
    let json = run_peer(
        python,
        "bench_text_peer.py",
        "requirements-peers.txt",
        &[
            model_dir.as_os_str(),
            file.path().as_os_str(),
            TEXT_BATCH.to_string().as_ref(),
        ],
    )?;
    Ok(Peer {
        name: format!(
            "sentence-transformers {} (torch {}, {} threads, batch {TEXT_BATCH})",
            json["sentence_transformers"].as_str().unwrap_or("?"),
            json["torch"].as_str().unwrap_or("?"),
            json["threads"]
        ),
        number: json["titles_per_second"]
            .as_f64()
            .context("titles_per_second")?,
    })
}

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
