//! A short training run on images the test draws itself: same seed, same weights; and
//! training lowers the contrastive loss on pairs it can learn.

use candle_core::Device;
use image::{Rgb, RgbImage};
use indicatif::ProgressBar;
use vitrina::catalog::Product;
use vitrina::encoder::TowerConfig;
use vitrina::train::{tower_safetensors, train, PairSet, Parent, TrainConfig, Trained};

const DIM: usize = 8;

/// 32 products in 4 colours; each colour's title vector is one axis of the text space.
fn pairs(dir: &std::path::Path) -> PairSet {
    pairs_for(dir, &config().tower)
}

/// [`pairs`] on the canvas of `tower`, with text vectors of its output size.
fn pairs_for(dir: &std::path::Path, tower: &TowerConfig) -> PairSet {
    let dim = tower.out_dim;
    let colours = [[220, 20, 20], [20, 160, 40], [30, 40, 200], [240, 200, 30]];
    let mut products = Vec::new();
    let mut text = Vec::new();
    for i in 0..32 {
        let c = i % 4;
        let path = dir.join(format!("{i}.png"));
        let mut img = RgbImage::from_pixel(30, 40, Rgb([255, 255, 255]));
        for y in 5 + i % 3..35 {
            for x in 5..25 {
                img.put_pixel(x as u32, y as u32, Rgb(colours[c]));
            }
        }
        img.save(&path).unwrap();
        products.push(Product {
            id: i.to_string(),
            text: format!("colour {c}"),
            broad: None,
            fine: None,
            attributes: Default::default(),
            image: Some(path),
        });
        let mut v = vec![0f32; dim];
        v[c] = 1.0;
        text.extend(v);
    }
    // One product whose image is unreadable: it must be reported, not trained on.
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"not an image").unwrap();
    products.push(Product {
        id: "broken".into(),
        text: "broken".into(),
        broad: None,
        fine: None,
        attributes: Default::default(),
        image: Some(broken),
    });
    text.extend(vec![0f32; dim]);
    let (set, rejected) = PairSet::build(&products, &text, dim, tower);
    assert_eq!(set.len(), 32);
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].reason.contains("broken.jpg"),
        "{}",
        rejected[0].reason
    );
    set
}

fn config() -> TrainConfig {
    TrainConfig {
        seed: 42,
        epochs: 6,
        batch_size: 8,
        lr: 3e-3,
        warmup_steps: 2,
        // The whole recipe: geometric augmentation and multi-positive targets (the four
        // colours' products share titles).
        augment: vitrina::train::Augment::default(),
        same_title: 0.85,
        tower: TowerConfig {
            height: 16,
            width: 16,
            patch: 4,
            dims: vec![16, 24],
            depths: vec![1, 1],
            mlp_ratio: 2,
            out_dim: DIM,
            token_mixing: true,
            overlap: false,
            trim_white: None,
        },
        ..TrainConfig::default()
    }
}

#[test]
fn same_seed_same_weights_and_the_loss_falls() {
    let dir = tempfile::tempdir().unwrap();
    let set = pairs(dir.path());
    let (_, weights) = reproducible_and_learned(&config(), &set);
    let other = TrainConfig {
        seed: 43,
        ..config()
    };
    let c = on_cpu(&other, &set);
    assert_ne!(weights, tower_safetensors(&c.vars).unwrap());
}

/// A run of `config` on `device`, from `parent`'s weights or random ones.
fn run_on(
    device: &Device,
    config: &TrainConfig,
    set: &PairSet,
    parent: Option<&Parent>,
) -> anyhow::Result<Trained> {
    train(config, set, parent, device, &ProgressBar::hidden(), |_| {})
}

/// A run from random weights on the CPU.
fn on_cpu(config: &TrainConfig, set: &PairSet) -> Trained {
    run_on(&Device::Cpu, config, set, None).unwrap()
}

/// Trains twice with `config`: the same weights both times, and a loss that falls by a
/// fifth or more. Returns the first run and its weights.
fn reproducible_and_learned(config: &TrainConfig, set: &PairSet) -> (Trained, Vec<u8>) {
    let a = on_cpu(config, set);
    let b = on_cpu(config, set);
    let weights = tower_safetensors(&a.vars).unwrap();
    assert_eq!(weights, tower_safetensors(&b.vars).unwrap());
    let first = a.epochs.first().unwrap().mean_loss;
    let last = a.epochs.last().unwrap().mean_loss;
    assert!(last < first * 0.8, "loss {first} -> {last}");
    (a, weights)
}

/// The image-image terms (`consistency`, `invariance`) keep runs reproducible, are
/// trained down with the rest, and change what is learned.
#[test]
fn the_image_image_terms_are_deterministic_and_learned() {
    let dir = tempfile::tempdir().unwrap();
    let set = pairs(dir.path());
    let with = TrainConfig {
        consistency: 1.0,
        ..config()
    };
    let (a, weights) = reproducible_and_learned(&with, &set);
    let first = a.epochs[0].mean_loss;
    // The term adds to the text term's loss, which starts near ln(batch) either way.
    let without = on_cpu(&config(), &set);
    assert!(first > without.epochs.first().unwrap().mean_loss + 0.5);
    let without_weights = tower_safetensors(&without.vars).unwrap();
    assert_ne!(weights, without_weights);
    // The invariance term (a warped view regressed onto its photo's vector) likewise.
    let invariance = TrainConfig {
        invariance: 4.0,
        ..config()
    };
    let (_, invariant_weights) = reproducible_and_learned(&invariance, &set);
    assert_ne!(invariant_weights, without_weights);
    assert_ne!(invariant_weights, weights);
}

/// Soft targets, the image-image relation term and overlapping first-stage windows
/// (options off in the built-in recipe) keep runs reproducible, train the loss down,
/// and change what is learned.
#[test]
fn soft_targets_relations_and_overlapping_patches_are_deterministic_and_learned() {
    let dir = tempfile::tempdir().unwrap();
    let set = pairs(dir.path());
    let mut overlap = config();
    overlap.tower.overlap = true;
    // Warm enough that a colour's other titles (cosine 0: the axes are orthogonal) keep
    // some target mass.
    let with = TrainConfig {
        soft_targets: 0.3,
        relations: 0.5,
        ..overlap.clone()
    };
    let (a, weights) = reproducible_and_learned(&with, &set);
    // Soft targets spread each pair's mass beyond its identical titles, and learn other
    // weights than multi-positive targets in the same network.
    let multi = on_cpu(&overlap, &set);
    let spread = |run: &Trained| run.epochs[0].positives_per_image;
    assert!(
        spread(&a) > spread(&multi) + 0.2,
        "{} vs {}",
        spread(&a),
        spread(&multi)
    );
    assert_ne!(weights, tower_safetensors(&multi.vars).unwrap());
}

/// Fine-tuning (`train --init`) starts from the parent's weights: at learning rate 0 a
/// run ends with the built-in tower's weights exactly; with a learning rate it is
/// reproducible, learns, and moves away from them. A recipe that does not name the
/// weights it starts from, or another shape, is refused.
#[test]
fn fine_tuning_starts_from_the_parents_weights() {
    let parent = Parent::load("builtin").unwrap();
    assert!(parent.id.starts_with(vitrina::encoder::BUILTIN_TOWER_NAME));
    // v6's card ends at a learned temperature, not the initial 0.07.
    assert!(parent.temperature() > 0.0 && parent.temperature() < 0.07);
    let dir = tempfile::tempdir().unwrap();
    let tuned = TrainConfig {
        tower: parent.card.tower.clone(),
        init: Some(parent.id.clone()),
        init_temperature: parent.temperature(),
        epochs: 3,
        ..config()
    };
    let set = pairs_for(dir.path(), &tuned.tower);
    let tensors = |bytes: &[u8]| {
        let map = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).unwrap();
        let mut values: Vec<(String, Vec<f32>)> = map
            .into_iter()
            .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    };
    let parents = tensors(vitrina::encoder::BUILTIN_WEIGHTS);
    let frozen = TrainConfig {
        lr: 0.0,
        epochs: 1,
        ..tuned.clone()
    };
    let still = run_on(&Device::Cpu, &frozen, &set, Some(&parent)).unwrap();
    assert_eq!(tensors(&tower_safetensors(&still.vars).unwrap()), parents);

    let a = run_on(&Device::Cpu, &tuned, &set, Some(&parent)).unwrap();
    let b = run_on(&Device::Cpu, &tuned, &set, Some(&parent)).unwrap();
    let weights = tower_safetensors(&a.vars).unwrap();
    assert_eq!(weights, tower_safetensors(&b.vars).unwrap());
    assert_ne!(tensors(&weights), parents);
    let (first, last) = (a.epochs[0].mean_loss, a.epochs.last().unwrap().mean_loss);
    assert!(last < first, "loss {first} -> {last}");

    let unnamed = TrainConfig {
        init: None,
        ..tuned.clone()
    };
    let err = run_on(&Device::Cpu, &unnamed, &set, Some(&parent));
    assert!(format!("{:#}", err.err().unwrap()).contains("init"));
    let reshaped = TrainConfig {
        tower: config().tower,
        ..tuned
    };
    let err = run_on(&Device::Cpu, &reshaped, &set, Some(&parent));
    assert!(format!("{:#}", err.err().unwrap()).contains("shape"));
}

/// `--init` names what it cannot read.
#[test]
fn a_parent_folder_without_a_card_or_weights_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = Parent::load(dir.path().to_str().unwrap()).err().unwrap();
    assert!(format!("{err:#}").contains("card.json"), "{err:#}");
    std::fs::write(dir.path().join("card.json"), "{}").unwrap();
    std::fs::write(dir.path().join("image_tower.safetensors"), b"x").unwrap();
    let err = Parent::load(dir.path().to_str().unwrap()).err().unwrap();
    assert!(format!("{err:#}").contains("not a model card"), "{err:#}");
}

/// Training on a GPU (`--device cuda`, built with `--features cuda`) is the same run as
/// on the CPU: the same seed draws the same batches and warps, so the losses agree up to
/// the arithmetic's rounding, the GPU's run learns too, and the two towers embed the
/// photos alike. (Single weights can differ by more: Adam moves a weight whose gradient
/// is near zero by a step of the learning rate's size whichever way rounding tips it.)
/// Needs an NVIDIA GPU; without the feature it is not built.
#[cfg(feature = "cuda")]
#[test]
fn training_on_a_gpu_matches_training_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let set = pairs(dir.path());
    let gpu = vitrina::train::training_device("cuda").unwrap();
    let run = |device: &Device| run_on(device, &config(), &set, None).unwrap();
    let (on_cpu, on_gpu) = (run(&Device::Cpu), run(&gpu));
    for (c, g) in on_cpu.epochs.iter().zip(&on_gpu.epochs) {
        println!(
            "epoch {}: loss {:.6} on the CPU, {:.6} on the GPU",
            c.epoch, c.mean_loss, g.mean_loss
        );
        assert!(
            (c.mean_loss - g.mean_loss).abs() < 1e-3 * c.mean_loss,
            "{c:?} vs {g:?}"
        );
    }
    let (first, last) = (
        on_gpu.epochs[0].mean_loss,
        on_gpu.epochs.last().unwrap().mean_loss,
    );
    assert!(last < first * 0.8, "loss {first} -> {last}");
    use vitrina::encoder::{ImageEncoder, ImageTower};
    let embed = |trained: &Trained| {
        let weights = tower_safetensors(&trained.vars).unwrap();
        let tower = ImageTower::from_safetensors("t", &config().tower, &weights).unwrap();
        tower.embed_pixels(&set.all_pixels()).unwrap()
    };
    let (a, b) = (embed(&on_cpu), embed(&on_gpu));
    let least = a
        .chunks(DIM)
        .zip(b.chunks(DIM))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
        .fold(1f32, f32::min);
    println!("least cosine between a photo's CPU- and GPU-trained vectors: {least}");
    assert!(least > 0.99, "{least}");
}
