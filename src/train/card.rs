//! The whole `vitrina train` job: data in, weights and model card out.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{
    device_name, held_out, tower_safetensors, train, EpochLog, HeldOut, PairSet, Parent,
    TrainConfig,
};
use crate::catalog::{Catalog, Split};
use crate::encoder::{embed_texts_cached, ImageTower, MiniLm, TextEncoder, TowerConfig};
use crate::progress::{progress_bar, Progress};

pub use crate::encoder::{CARD_FILE, WEIGHTS_FILE};

/// What a trained tower is, how it was made and how good it is: written beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    /// The frozen text tower whose space the image tower was trained into.
    pub text_tower: String,
    pub tower: TowerConfig,
    pub train: TrainConfig,
    pub catalog: String,
    pub split: String,
    pub pairs: usize,
    pub images_rejected: usize,
    pub epochs: Vec<serde_json::Value>,
    /// Where the run trained (`cpu`, `cuda:N`); cards written before GPU training
    /// existed trained on the CPU.
    #[serde(default = "cpu")]
    pub device: String,
    pub training_seconds: f64,
    pub final_loss: f64,
    pub held_out: serde_json::Value,
    pub command: String,
}

fn cpu() -> String {
    "cpu".to_string()
}

/// The products a run trains on: the first `limit` of `split` (all without a limit);
/// held-out figures come from the first `limit` of the test split.
#[derive(Clone, Copy)]
pub struct TrainingData<'a> {
    pub catalog: &'a Catalog,
    pub split: Split,
    pub limit: Option<usize>,
}

/// Trains on `split` of the catalogue on `device`, measures on the held-out test split
/// (on the CPU, as search runs the tower), writes `out/image_tower.safetensors` and
/// `out/card.json`.
pub fn train_and_save(
    data: TrainingData,
    config: &TrainConfig,
    parent: Option<&Parent>,
    device: &Device,
    minilm: &MiniLm,
    name: &str,
    out: &Path,
) -> Result<ModelCard> {
    let TrainingData {
        catalog,
        split,
        limit,
    } = data;
    let pairs_for = |products: &[crate::catalog::Product], what: &str| -> Result<PairSet> {
        let texts: Vec<&str> = products.iter().map(|p| p.text.as_str()).collect();
        let bar = Progress::new(texts.len(), &format!("embedding {what} titles"));
        let text = embed_texts_cached(minilm, &texts, |n| bar.inc(n))?.vectors;
        bar.finish();
        let (pairs, rejected) = PairSet::build(products, &text, minilm.dim(), &config.tower);
        for r in &rejected {
            eprintln!("{what}: product {} skipped: {}", r.id, r.reason);
        }
        eprintln!(
            "{what}: {} image/title pairs, {} products without a usable image",
            pairs.len(),
            rejected.len()
        );
        Ok(pairs)
    };
    let train_products = catalog.split_products(split, limit);
    let pairs = pairs_for(&train_products, split.name())?;
    let rejected = train_products.len() - pairs.len();
    let bar = progress_bar(0, "training");
    let trained = train(config, &pairs, parent, device, &bar, |log: &EpochLog| {
        eprintln!(
            "epoch {:>2}: loss {:.4}, temperature {:.4}, {:.0} images/s, {:.2} positives per image",
            log.epoch,
            log.mean_loss,
            log.temperature,
            log.images_per_second,
            log.positives_per_image
        );
    })?;
    let weights = tower_safetensors(&trained.vars)?;
    let tower = ImageTower::from_safetensors(name, &config.tower, &weights)?;

    let test_products = catalog.split_products(Split::Test, limit);
    let test_pairs = pairs_for(&test_products, "test")?;
    let figures: HeldOut = held_out(&tower, &test_products, &test_pairs, 1000, config.seed)?;
    eprintln!("held-out (test split): {figures:?}");

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let card = ModelCard {
        name: name.to_string(),
        text_tower: minilm.model_id().to_string(),
        tower: config.tower.clone(),
        train: config.clone(),
        catalog: catalog.spec.name.clone(),
        split: split.name().to_string(),
        pairs: pairs.len(),
        images_rejected: rejected,
        epochs: trained
            .epochs
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect(),
        device: device_name(device),
        training_seconds: trained.seconds,
        final_loss: trained.epochs.last().map_or(f64::NAN, |e| e.mean_loss),
        held_out: serde_json::to_value(&figures)?,
        command: std::iter::once("vitrina".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
    };
    std::fs::write(out.join(WEIGHTS_FILE), &weights)?;
    std::fs::write(
        out.join(CARD_FILE),
        serde_json::to_string_pretty(&card)? + "\n",
    )?;
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vitrina train` without options trains the built-in tower's recipe: its card's
    /// hyper-parameters are the defaults (the seed and the catalogue are the command's).
    #[test]
    fn the_defaults_are_the_built_in_towers_recipe() {
        let card: ModelCard = serde_json::from_str(crate::encoder::BUILTIN_CARD).unwrap();
        assert_eq!(card.name, crate::encoder::BUILTIN_TOWER_NAME);
        assert_eq!(card.tower, card.train.tower);
        let defaults = TrainConfig {
            seed: card.train.seed,
            ..TrainConfig::default()
        };
        assert_eq!(
            serde_json::to_value(&card.train).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }
}
