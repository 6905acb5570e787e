//! The built-in image tower's weights and card, compiled into the binary so that a
//! clean checkout indexes and searches images offline with no training step. They are
//! made by `vitrina train` (see models/vitrina-lit-myntra-v6/card.json for the command).

use anyhow::{Context, Result};

use super::ImageTower;

/// Name of the built-in image tower, recorded in indexes built with it.
pub const BUILTIN_TOWER_NAME: &str = "vitrina-lit-myntra-v6";

/// The built-in tower's weights (safetensors), also where `train --init builtin` starts.
pub const BUILTIN_WEIGHTS: &[u8] =
    include_bytes!("../../models/vitrina-lit-myntra-v6/image_tower.safetensors");
/// The built-in tower's model card: its recipe, training log and held-out figures.
pub const BUILTIN_CARD: &str = include_str!("../../models/vitrina-lit-myntra-v6/card.json");

/// Loads the built-in tower.
pub fn builtin_tower() -> Result<ImageTower> {
    let card = super::tower_dir::CardShape::parse(BUILTIN_CARD).context("built-in model card")?;
    ImageTower::from_safetensors(BUILTIN_TOWER_NAME, &card.tower, BUILTIN_WEIGHTS)
}
