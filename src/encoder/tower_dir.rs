//! A tower folder as `vitrina train --out DIR` writes it (`card.json` beside
//! `image_tower.safetensors`): how a shop that retrained the image tower on its own
//! catalogue indexes and searches with it (`--model-dir DIR`), paired with the built-in
//! MiniLM text tower it was trained against.

use std::path::Path;

use anyhow::{Context, Result};

use super::{ImageTower, TowerConfig};
use crate::catalog::fnv1a64;

/// File names inside a tower folder.
pub const WEIGHTS_FILE: &str = "image_tower.safetensors";
pub const CARD_FILE: &str = "card.json";

/// Whether `dir` holds a trained tower (both files).
pub fn is_tower_dir(dir: &Path) -> bool {
    dir.join(CARD_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file()
}

/// The part of a model card that building the tower needs: its name and shape.
#[derive(serde::Deserialize)]
pub(super) struct CardShape {
    pub name: String,
    pub tower: TowerConfig,
}

impl CardShape {
    pub(super) fn parse(card: &str) -> Result<Self> {
        Ok(serde_json::from_str(card)?)
    }
}

/// How a trained tower is known: its card's name and a hash of its weights, so that an
/// index built with one training run refuses queries embedded by another, even one given
/// the same name (`train`'s default name is the built-in tower's).
pub fn tower_id(name: &str, weights: &[u8]) -> String {
    format!("{name}@{:016x}", fnv1a64(weights))
}

/// A tower folder's card (JSON text) and weights (safetensors bytes), as `train` wrote
/// them; an error names the file that cannot be read.
pub fn read_tower_dir(dir: &Path) -> Result<(String, Vec<u8>)> {
    let card_path = dir.join(CARD_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let card = std::fs::read_to_string(&card_path)
        .with_context(|| format!("cannot read {}", card_path.display()))?;
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("cannot read {}", weights_path.display()))?;
    Ok((card, weights))
}

/// Loads the tower of a folder written by `vitrina train`, known by [`tower_id`].
pub fn load_tower_dir(dir: &Path) -> Result<ImageTower> {
    let (card, weights) = read_tower_dir(dir)?;
    let card_path = dir.join(CARD_FILE);
    let shape = CardShape::parse(&card)
        .with_context(|| format!("{} is not a tower's model card", card_path.display()))?;
    ImageTower::from_safetensors(&tower_id(&shape.name, &weights), &shape.tower, &weights)
        .with_context(|| format!("{} does not load", dir.join(WEIGHTS_FILE).display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{ImageEncoder, TowerNet};
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};

    fn small() -> TowerConfig {
        TowerConfig {
            height: 16,
            width: 16,
            patch: 4,
            dims: vec![8, 16],
            depths: vec![1, 1],
            out_dim: 8,
            ..TowerConfig::default()
        }
    }

    /// A folder as `train` writes it, with random weights (`seed` shifts them).
    fn write_tower(dir: &Path, name: &str, seed: u64) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        TowerNet::new(&small(), vb).unwrap();
        for (i, var) in map.all_vars().iter().enumerate() {
            let noise = Tensor::randn(0f32, 0.5, var.dims(), &Device::Cpu).unwrap();
            let shift = (seed as f64 + i as f64) * 0.01;
            var.set(&noise.affine(1.0, shift).unwrap()).unwrap();
        }
        map.save(dir.join(WEIGHTS_FILE)).unwrap();
        let card = serde_json::json!({ "name": name, "tower": small(), "epochs": [] });
        std::fs::write(dir.join(CARD_FILE), card.to_string()).unwrap();
    }

    #[test]
    fn a_trained_folder_loads_under_its_name_and_weights() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_tower(a.path(), "shop-tower", 1);
        write_tower(b.path(), "shop-tower", 2);
        assert!(is_tower_dir(a.path()));
        let tower = load_tower_dir(a.path()).unwrap();
        let other = load_tower_dir(b.path()).unwrap();
        assert!(
            tower.model_id().starts_with("shop-tower@"),
            "{}",
            tower.model_id()
        );
        // Same name, other weights: another model.
        assert_ne!(tower.model_id(), other.model_id());
        assert_eq!(
            tower.model_id(),
            load_tower_dir(a.path()).unwrap().model_id()
        );
        assert_eq!(tower.dim(), 8);
        let photo = image::DynamicImage::new_rgb8(30, 40);
        let v = tower.embed_images(&[photo]).unwrap().vectors;
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_damaged_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_tower_dir(dir.path()));
        write_tower(dir.path(), "shop-tower", 1);
        let error = |dir: &Path| format!("{:#}", load_tower_dir(dir).err().unwrap());

        std::fs::write(dir.path().join(CARD_FILE), "{ not json").unwrap();
        assert!(
            error(dir.path()).contains(CARD_FILE),
            "{}",
            error(dir.path())
        );

        write_tower(dir.path(), "shop-tower", 1);
        let weights = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), &weights[..weights.len() / 2]).unwrap();
        assert!(
            error(dir.path()).contains(WEIGHTS_FILE),
            "{}",
            error(dir.path())
        );

        // Weights of another shape than the card says.
        write_tower(dir.path(), "shop-tower", 1);
        let mut card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(CARD_FILE)).unwrap())
                .unwrap();
        card["tower"]["dims"] = serde_json::json!([8, 32]);
        std::fs::write(dir.path().join(CARD_FILE), card.to_string()).unwrap();
        assert!(
            error(dir.path()).contains("do not fit"),
            "{}",
            error(dir.path())
        );
    }
}
