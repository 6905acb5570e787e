//! Fine-tuning: a run that starts from a trained tower's weights (`train --init`)
//! instead of random ones. A shop adapts the built-in tower to its own catalogue in a
//! few epochs rather than training one from scratch, and one recipe can continue
//! another's weights with a different objective.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_nn::VarMap;

use super::ModelCard;
use crate::encoder::{read_tower_dir, tower_id, BUILTIN_CARD, BUILTIN_WEIGHTS, CARD_FILE};

/// The tower a run starts from: its card (shape, recipe, learned temperature) and its
/// weights.
pub struct Parent {
    /// The card's name and a hash of the weights ([`tower_id`], as `load_tower_dir`
    /// names a tower):
    /// recorded in the new card, so its recipe says exactly which weights it continued.
    pub id: String,
    pub card: ModelCard,
    weights: Vec<u8>,
}

impl Parent {
    /// `builtin`, or a folder written by `vitrina train --out`.
    pub fn load(from: &str) -> Result<Self> {
        let (card, weights, card_path) = if from == "builtin" {
            let card = BUILTIN_CARD.to_string();
            let card_path = "the built-in card".to_string();
            (card, BUILTIN_WEIGHTS.to_vec(), card_path)
        } else {
            let dir = Path::new(from);
            let (card, weights) = read_tower_dir(dir).with_context(|| format!("--init {from}"))?;
            (card, weights, dir.join(CARD_FILE).display().to_string())
        };
        let card: ModelCard = serde_json::from_str(&card)
            .with_context(|| format!("--init {from}: {card_path} is not a model card"))?;
        Ok(Parent {
            id: tower_id(&card.name, &weights),
            card,
            weights,
        })
    }

    /// The temperature the parent ended with (its last epoch's), where the new run's
    /// learned temperature starts; the parent's starting one if its card has no log.
    pub fn temperature(&self) -> f64 {
        self.card
            .epochs
            .last()
            .and_then(|epoch| epoch["temperature"].as_f64())
            .filter(|t| *t > 0.0 && t.is_finite())
            .unwrap_or(self.card.train.init_temperature)
    }

    /// Sets every `tower.` variable of `map` to the parent's tensor of that name,
    /// refusing weights that miss one or give it another shape.
    pub(super) fn load_into(&self, map: &VarMap, device: &Device) -> Result<()> {
        let tensors = candle_core::safetensors::load_buffer(&self.weights, device)
            .with_context(|| format!("--init: {}'s weights are not safetensors", self.id))?;
        let data = map.data().lock().unwrap();
        for (name, var) in data.iter() {
            let Some(key) = name.strip_prefix("tower.") else {
                continue;
            };
            let Some(tensor) = tensors.get(key) else {
                bail!("--init: {}'s weights have no tensor {key}", self.id);
            };
            if tensor.dims() != var.dims() {
                bail!(
                    "--init: {}'s tensor {key} is {:?}, the tower's is {:?}",
                    self.id,
                    tensor.dims(),
                    var.dims()
                );
            }
            var.set(tensor)?;
        }
        Ok(())
    }
}
