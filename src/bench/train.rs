//! Training throughput: the built-in tower's recipe (`TrainConfig::default()`: batch 256,
//! a quarter of the photos warped, multi-positive targets, the relation term) on the CPU
//! and on a GPU (`--device cuda`), on the same pairs, side by side in one run.
//!
//! The pairs are photos the bench draws itself (a coloured block on white, at a random
//! place and size, on the tower's canvas) with title vectors shared by groups of
//! photos, so the suite needs no catalogue or text tower and runs on a bare GPU
//! machine: a step costs the same whatever the photos show, since every canvas has the
//! tower's size and the warps are drawn from the seed.

use anyhow::Result;
use candle_core::Device;
use image::{Rgb, RgbImage};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{measured, Peer, Row};
use crate::catalog::Product;
use crate::train::{device_name, train, PairSet, TrainConfig};

/// Photos drawn: 8 batches of 256 per epoch.
const PAIRS: usize = 2048;
/// Photos per title vector, so a batch holds positives besides each photo's own.
const PER_TITLE: usize = 16;
/// Epochs run; the last one is timed, after the first has loaded the kernels (on a
/// GPU) and warmed the allocator.
const EPOCHS: usize = 2;

/// Images/s of a training step on the CPU and, with `gpu`, on it (against the CPU).
pub fn run(gpu: Option<&Device>) -> Result<Vec<Row>> {
    let config = TrainConfig {
        epochs: EPOCHS,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir()?;
    let pairs = drawn_pairs(dir.path(), &config)?;
    let what = |device: &Device| {
        format!(
            "train the built-in recipe ({} drawn photos, batch {}): {}",
            pairs.len(),
            config.batch_size,
            device_name(device)
        )
    };
    let rate = |device: &Device| -> Result<f64> {
        let run = train(
            &config,
            &pairs,
            None,
            device,
            &ProgressBar::hidden(),
            |_| {},
        )?;
        Ok(run.epochs.last().map_or(0.0, |e| e.images_per_second))
    };
    let cpu = rate(&Device::Cpu)?;
    let mut rows = vec![measured(what(&Device::Cpu), cpu, "images/s", 0)];
    if let Some(gpu) = gpu {
        let peer = Peer {
            name: "the CPU".to_string(),
            number: cpu,
        };
        rows.push(measured(what(gpu), rate(gpu)?, "images/s", 0).against(Some(&peer)));
    }
    Ok(rows)
}

/// [`PAIRS`] photos of blocks in random colours, places and sizes, saved as PNG in
/// `dir` and read back as training reads a catalogue's; title vectors are random unit
/// vectors, one per [`PER_TITLE`] photos.
fn drawn_pairs(dir: &std::path::Path, config: &TrainConfig) -> Result<PairSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (w, h) = (config.tower.width as u32, config.tower.height as u32);
    let dim = config.tower.out_dim;
    let mut products = Vec::with_capacity(PAIRS);
    let mut text = Vec::with_capacity(PAIRS * dim);
    let mut title = Vec::new();
    for i in 0..PAIRS {
        let mut photo = RgbImage::from_pixel(w, h, Rgb([255; 3]));
        let colour = Rgb([rng.random(), rng.random(), rng.random()]);
        let (bw, bh) = (rng.random_range(w / 4..w), rng.random_range(h / 4..h));
        let (x0, y0) = (rng.random_range(0..w - bw), rng.random_range(0..h - bh));
        for y in y0..y0 + bh {
            for x in x0..x0 + bw {
                photo.put_pixel(x, y, colour);
            }
        }
        let path = dir.join(format!("{i}.png"));
        photo.save(&path)?;
        products.push(Product {
            id: i.to_string(),
            text: format!("title {}", i / PER_TITLE),
            broad: None,
            fine: None,
            attributes: Default::default(),
            image: Some(path),
        });
        if i % PER_TITLE == 0 {
            title = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = title.iter().map(|x| x * x).sum::<f32>().sqrt();
            title.iter_mut().for_each(|x| *x /= norm);
        }
        text.extend_from_slice(&title);
    }
    let (pairs, rejected) = PairSet::build(&products, &text, dim, &config.tower);
    anyhow::ensure!(
        rejected.is_empty(),
        "drawn photos could not be read back: {:?}",
        rejected.first()
    );
    Ok(pairs)
}
