//! Training the image tower with the LiT recipe (Zhai et al. 2022, "locked-image
//! tuning", here with the text side locked): MiniLM's text vectors are fixed targets,
//! and the image tower learns, with a CLIP contrastive loss, to put each product photo
//! next to its own title (and titles that say the same) and away from the batch's
//! other titles. Photos are varied geometrically as shoppers' photos vary.
//!
//! Everything random (initial weights, batch order, augmentation) comes from one
//! seeded ChaCha stream, and candle's CPU kernels are deterministic, so the same seed
//! and data give the same weights. On a GPU (`device.rs`) the same seed draws the same
//! batches and warps; only the arithmetic's rounding differs.

mod augment;
mod card;
mod data;
mod device;
mod heldout;
mod init;
mod loss;

pub use augment::Augment;
pub use card::{train_and_save, ModelCard, TrainingData, CARD_FILE, WEIGHTS_FILE};
pub use data::{PairSet, RejectedImage};
pub use device::{device_name, training_device};
pub use heldout::{held_out, HeldOut};
pub use init::Parent;
pub use loss::{
    clip_loss, effective_positives, invariance_loss, multi_positive_targets, relation_loss,
    relation_targets, soft_targets,
};

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::encoder::{TowerConfig, TowerNet};

/// Hyper-parameters of a training run; all of them go into the model card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate, reached after `warmup_steps`, then cosine decay to zero.
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    /// Initial temperature of the contrastive loss (learned from there).
    pub init_temperature: f64,
    /// How photos are varied (geometry only, never colour). Default: a quarter of the
    /// photos warped, the built-in tower's recipe (README, The built-in model: warping
    /// most photos made any framing find the same products but cost held-out precision
    /// within the same training time). Cards written before augmentation existed read
    /// as mirroring only, the recipe they used.
    #[serde(default = "Augment::flip_only")]
    pub augment: Augment,
    /// Title cosine similarity above which two pairs of a batch count as positives for
    /// each other (default 0.85, the built-in tower's recipe); above 1, every other pair
    /// is a negative (plain CLIP), as in cards written before this setting existed.
    #[serde(default = "one_positive")]
    pub same_title: f64,
    /// Temperature of soft targets ([`soft_targets`]: each pair's target mass spread
    /// over the batch by title similarity, the text tower as teacher), which then take
    /// the place of `same_title`'s. 0 (the default, and in cards written before it
    /// existed): `same_title`'s multi-positive targets.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub soft_targets: f64,
    /// Weight of an image-image term (SLIP, Mu et al. 2022): each batch is drawn a
    /// second time, every photo warped (`Augment::with_share(1.0)`), and each photo
    /// must pick out its own second view among the batch's (near-duplicate titles'
    /// views are positives too) at SimCLR's fixed temperature. It teaches the tower
    /// that a re-framed photo is the same product without moving the text term's photos
    /// away from the catalogue's framing, and doubles the cost of a step. The term acts
    /// on the tower's output itself: through a projection head used only in training,
    /// as SLIP does, it measured worse on every held-out figure (README, The built-in
    /// model). 0 (the default, and in cards written before it existed): off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consistency: f64,
    /// Weight of an invariance term ([`invariance_loss`]): each batch is drawn a second
    /// time, every photo warped, as for `consistency`, and each warped view should land
    /// on its photo's own vector (1 - cosine, the photo's side held fixed). Unlike
    /// `consistency`, it pushes no photo away from another. Doubles the cost of a step;
    /// with `consistency` on too, both terms share the warped views. 0 (the default,
    /// and in cards written before it existed): off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invariance: f64,
    /// Weight of an image-image relation term ([`relation_loss`]): each photo's
    /// similarities to the batch's other photos should follow its title's to their
    /// titles (both at `IMAGE_IMAGE_TEMPERATURE`), so photos of alike products lie near
    /// each other, as a photo query needs. Default 0.5, the built-in tower's (v6) recipe;
    /// 0 (and in cards written before it existed): off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub relations: f64,
    /// The tower this run started from (`Parent::id`: name and weight hash), when it
    /// fine-tuned one (`train --init`); none (the default): random initial weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    pub tower: TowerConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            epochs: 20,
            batch_size: 256,
            lr: 2e-3,
            warmup_steps: 100,
            weight_decay: 0.05,
            init_temperature: 0.07,
            augment: Augment::with_share(BUILTIN_WARP_SHARE).expect("a share within 0..1"),
            same_title: 0.85,
            soft_targets: 0.0,
            consistency: 0.0,
            invariance: 0.0,
            relations: BUILTIN_RELATIONS,
            init: None,
            tower: TowerConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Refuses settings training cannot use, naming the option: the weights and the
    /// soft targets' temperature are finite and 0 or more (0: off), and the tower's
    /// shape is one the network can be built with.
    pub fn check(&self) -> Result<()> {
        for (option, value) in [
            ("--consistency", self.consistency),
            ("--invariance", self.invariance),
            ("--relations", self.relations),
            ("--soft-targets", self.soft_targets),
        ] {
            anyhow::ensure!(
                value >= 0.0 && value.is_finite(),
                "{option} must be a finite value of 0 or more (0: off), not {value}"
            );
        }
        self.tower
            .check()
            .context("the tower's shape (--dims, --depths, --patch)")
    }
}

/// Share of photos the built-in tower's recipe warps.
const BUILTIN_WARP_SHARE: f64 = 0.25;
/// Weight of the relation term in the built-in tower's recipe (v6): in 4-epoch runs on
/// two seeds it gained about 2 points of fine precision for text and photo queries
/// (README, The built-in model); at 1 it lost recall.
const BUILTIN_RELATIONS: f64 = 0.5;

fn one_positive() -> f64 {
    2.0
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Temperature of the image-image terms: SimCLR's and SLIP's 0.1, fixed, because the
/// learned one is tuned to image-text logits and grows too sharp for two views of one
/// photo. The relation term's title targets use it too.
const IMAGE_IMAGE_TEMPERATURE: f64 = 0.1;

/// The logit scale is clamped here, as in CLIP, so the loss cannot blow up.
const MAX_LOGIT_SCALE: f64 = 100.0;

/// One epoch's outcome, for progress and the card.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub mean_loss: f64,
    pub temperature: f64,
    pub images_per_second: f64,
    /// Mean number of pairs in a batch each image counts as positive (1 = its own only;
    /// for soft targets, the inverse of the sum of squared target probabilities).
    pub positives_per_image: f64,
}

/// A trained tower: its variables and the log of the run.
pub struct Trained {
    pub vars: VarMap,
    pub epochs: Vec<EpochLog>,
    pub seconds: f64,
}

/// Initialises every variable from the seeded stream, in name order: uniform
/// +-1/sqrt(fan_in) for weight matrices (PyTorch's default for linear layers), zero
/// biases, unit norm gains.
fn init_vars(map: &VarMap, rng: &mut ChaCha8Rng) -> Result<()> {
    let data = map.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if dims.len() == 2 {
            let bound = 1.0 / (dims[1] as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        } else if name.contains("norm") && name.ends_with("weight") {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// Cosine decay after a linear warm-up.
fn learning_rate(config: &TrainConfig, step: usize, total: usize) -> f64 {
    if step < config.warmup_steps {
        return config.lr * (step + 1) as f64 / config.warmup_steps as f64;
    }
    let progress =
        (step - config.warmup_steps) as f64 / (total - config.warmup_steps).max(1) as f64;
    config.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// Trains a tower on image/text pairs on `device`, from random weights or from
/// `parent`'s (which `config.init` must name, and whose shape `config.tower` must be).
/// `on_epoch` sees each epoch's log as it ends.
pub fn train(
    config: &TrainConfig,
    pairs: &PairSet,
    parent: Option<&Parent>,
    device: &Device,
    bar: &ProgressBar,
    mut on_epoch: impl FnMut(&EpochLog),
) -> Result<Trained> {
    config.check()?;
    if let Some(parent) = parent {
        anyhow::ensure!(
            config.tower == parent.card.tower,
            "--init: the tower's shape must be {}'s",
            parent.id
        );
    }
    anyhow::ensure!(
        config.init.as_deref() == parent.map(|p| p.id.as_str()),
        "the recipe's init ({:?}) is not the weights the run starts from",
        config.init
    );
    let started = Instant::now();
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, device);
    let net = TowerNet::new(&config.tower, vb.pp("tower"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Drawn with or without a parent, so a fine-tuning run's batches and warps are
    // those of the same seed's run from scratch.
    init_vars(&map, &mut rng)?;
    if let Some(parent) = parent {
        parent.load_into(&map, device)?;
    }
    // The temperature is learned as log(1/T), CLIP's parameterisation.
    let logit_scale = Var::new((1.0 / config.init_temperature).ln() as f32, device)?;
    let mut vars = map.all_vars();
    // Weight decay on the logit scale would pull the temperature toward 1.
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..Default::default()
        },
    )?;
    let mut scale_opt = AdamW::new(
        vec![logit_scale.clone()],
        ParamsAdamW {
            lr: config.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    vars.push(logit_scale.clone());

    let n = pairs.len();
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n / batch;
    anyhow::ensure!(
        steps_per_epoch > 0,
        "no complete batch: {n} pairs, batch size {batch}"
    );
    let total = steps_per_epoch * config.epochs;
    // The bar counts images, so its rate reads as images/s.
    bar.set_length((total * batch) as u64);
    let mut order: Vec<usize> = (0..n).collect();
    let every_photo_warped = Augment::with_share(1.0)?;
    let image_image_scale = Tensor::new((1.0 / IMAGE_IMAGE_TEMPERATURE) as f32, device)?;
    let mut logs = Vec::new();
    let mut step = 0;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let epoch_start = Instant::now();
        let (mut loss_sum, mut positives) = (0.0, 0.0);
        for chunk in order.chunks_exact(batch) {
            let seeds: Vec<u64> = chunk.iter().map(|_| rng.random()).collect();
            let (pixels, text) = pairs.batch(chunk, &seeds, &config.augment, device)?;
            let targets = if config.soft_targets > 0.0 {
                soft_targets(&text, config.soft_targets)?
            } else {
                multi_positive_targets(&text, config.same_title)?
            };
            positives += effective_positives(&targets)?;
            let image = net.forward(&pixels)?;
            let mut loss = clip_loss(&image, &text, &logit_scale.as_tensor().exp()?, &targets)?;
            if config.consistency > 0.0 || config.invariance > 0.0 {
                // Drawn only when on, so runs without them keep their random stream.
                let seeds: Vec<u64> = chunk.iter().map(|_| rng.random()).collect();
                let (warped, _) = pairs.batch(chunk, &seeds, &every_photo_warped, device)?;
                let views = net.forward(&warped)?;
                if config.consistency > 0.0 {
                    let term = clip_loss(&image, &views, &image_image_scale, &targets)?;
                    loss = (loss + term.affine(config.consistency, 0.0)?)?;
                }
                if config.invariance > 0.0 {
                    let term = invariance_loss(&views, &image)?;
                    loss = (loss + term.affine(config.invariance, 0.0)?)?;
                }
            }
            if config.relations > 0.0 {
                let relations = relation_targets(&text, IMAGE_IMAGE_TEMPERATURE)?;
                let term = relation_loss(&image, &image_image_scale, &relations)?;
                loss = (loss + term.affine(config.relations, 0.0)?)?;
            }
            let lr = learning_rate(config, step, total);
            opt.set_learning_rate(lr);
            scale_opt.set_learning_rate(lr);
            let grads = loss.backward()?;
            opt.step(&grads)?;
            scale_opt.step(&grads)?;
            let clamped = logit_scale
                .as_tensor()
                .clamp(0f32, MAX_LOGIT_SCALE.ln() as f32)?;
            logit_scale.set(&clamped)?;
            let value = loss.to_scalar::<f32>()? as f64;
            loss_sum += value;
            step += 1;
            bar.set_message(format!("epoch {epoch}/{} loss {value:.3}", config.epochs));
            bar.inc(batch as u64);
        }
        let log = EpochLog {
            epoch,
            mean_loss: loss_sum / steps_per_epoch as f64,
            temperature: (-logit_scale.as_tensor().to_scalar::<f32>()? as f64).exp(),
            images_per_second: (steps_per_epoch * batch) as f64
                / epoch_start.elapsed().as_secs_f64(),
            positives_per_image: positives / steps_per_epoch as f64,
        };
        on_epoch(&log);
        logs.push(log);
    }
    bar.finish_and_clear();
    Ok(Trained {
        vars: map,
        epochs: logs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Serialises the tower's weights (without the `tower.` prefix) as safetensors bytes,
/// copied to the CPU from wherever they were trained.
pub fn tower_safetensors(vars: &VarMap) -> Result<Vec<u8>> {
    let data = vars.data().lock().unwrap();
    let mut tensors: Vec<(String, Tensor)> = data
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("tower.")
                .map(|k| Ok((k.to_string(), v.as_tensor().to_device(&Device::Cpu)?)))
        })
        .collect::<Result<_>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("w.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, &path)?;
    std::fs::read(&path).context("reading back the weights")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_training_cannot_use_are_refused_by_name() {
        assert!(TrainConfig::default().check().is_ok());
        let refused = |edit: fn(&mut TrainConfig)| {
            let mut config = TrainConfig::default();
            edit(&mut config);
            format!("{:#}", config.check().unwrap_err())
        };
        assert!(refused(|c| c.relations = -0.5).contains("--relations"));
        assert!(refused(|c| c.soft_targets = f64::NAN).contains("--soft-targets"));
        assert!(refused(|c| c.consistency = f64::INFINITY).contains("--consistency"));
        assert!(refused(|c| c.invariance = -1.0).contains("--invariance"));
        assert!(refused(|c| c.tower.dims.clear()).contains("--dims"));
    }
}
