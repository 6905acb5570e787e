//! The ONNX backend on tiny random-weight models laid out like jina-clip-v1
//! (tests/fixtures/tiny-clip, made by scripts/make_onnx_fixtures.py with PyTorch and
//! checked against onnxruntime in Python). The loader under test is the one that runs
//! the real jina-clip-v1.
#![cfg(feature = "onnx")]

use std::path::{Path, PathBuf};

mod common;
use common::{json_hits, vitrina};
use vitrina::encoder::onnx::{OnnxText, OnnxVision};
use vitrina::encoder::preprocess::load_image;
use vitrina::encoder::{ImageEncoder, Model, TextEncoder};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

#[derive(serde::Deserialize)]
struct Reference {
    texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    text_embeds: Vec<Vec<f32>>,
    images: Vec<String>,
    pixel_values: std::collections::HashMap<String, Vec<f32>>,
    image_embeds: std::collections::HashMap<String, Vec<f32>>,
}

fn reference() -> Reference {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap())
        .unwrap()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn text_tower_matches_onnxruntime_in_python() {
    let r = reference();
    let text = OnnxText::load(&fixture(), "tiny").unwrap();
    assert_eq!(
        text.max_tokens(),
        24,
        "model_max_length from tokenizer_config.json"
    );
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let ids: Vec<Vec<u32>> = text
        .encode(&texts)
        .unwrap()
        .iter()
        .map(|e| e.get_ids().to_vec())
        .collect();
    assert_eq!(ids, r.input_ids, "tokenisation");
    // Batched with padding (attention mask) against the unpadded one-at-a-time reference.
    let out = text.embed_texts(&texts).unwrap();
    assert_eq!(out.truncated, 1, "the over-long text is cut and counted");
    let dim = text.dim();
    assert_eq!(dim, 16);
    for (i, want) in r.text_embeds.iter().enumerate() {
        let diff = max_diff(&out.vectors[i * dim..(i + 1) * dim], &unit(want));
        assert!(diff < 1e-5, "text {i}: max difference {diff}");
    }
}

#[test]
fn vision_tower_matches_onnxruntime_in_python() {
    let r = reference();
    let vision = OnnxVision::load(&fixture(), "tiny").unwrap();
    for name in &r.images {
        let want = unit(&r.image_embeds[name]);
        // The model part, on the reference's own pixels.
        let got = vision.embed_pixels(&r.pixel_values[name]).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "{name}: model output");
        // The whole path: decode, resize, crop, normalise, run.
        let image = load_image(&fixture().join("images").join(name)).unwrap();
        let pixels = vision.preprocessing().pixels(&image);
        let diff = max_diff(&pixels, &r.pixel_values[name]);
        let whole = vision.embed_images(&[image]).unwrap().vectors;
        let cosine: f32 = whole.iter().zip(&want).map(|(a, b)| a * b).sum();
        if name == "exact.png" {
            // No resampling: the same arithmetic as Python's, to float precision.
            assert!(diff < 1e-5, "{name}: pixels differ by {diff}");
            assert!(max_diff(&whole, &want) < 1e-5, "{name}: whole path");
        } else {
            // Resizing: PIL and the image crate round bicubic differently (a level or two).
            let mean = pixels
                .iter()
                .zip(&r.pixel_values[name])
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / pixels.len() as f32;
            assert!(mean < 0.05, "{name}: mean pixel difference {mean}");
            assert!(cosine > 0.99, "{name}: cosine {cosine}");
        }
    }
}

#[test]
fn a_model_folder_becomes_a_model_with_both_towers() {
    let model = Model::from_dir(&fixture()).unwrap();
    assert_eq!(model.id(), "onnx:tiny-clip");
    assert_eq!(model.dim(), 16);
    assert_eq!(model.image_encoder().unwrap().dim(), 16);
    assert!(model.source().is_some());
}

#[test]
fn missing_files_wrong_names_and_wrong_shapes_are_explained() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("onnx")).unwrap();
    let err = format!("{:#}", Model::from_dir(empty.path()).err().unwrap());
    for file in [
        "onnx/text_model.onnx",
        "onnx/vision_model.onnx",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        assert!(err.contains(file), "{file} not named in: {err}");
    }
    assert!(
        err.contains("huggingface-cli download jinaai/jina-clip-v1"),
        "{err}"
    );

    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip-bad");
    let err = format!("{:#}", Model::from_dir(&bad).err().unwrap());
    assert!(err.contains("input_ids") && err.contains("tokens"), "{err}");

    // A preprocessing config whose size the vision model does not take.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("onnx")).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "onnx/text_model.onnx",
        "onnx/vision_model.onnx",
    ] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(fixture().join("preprocessor_config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&config).unwrap();
    json["size"] = 48.into();
    json["crop_size"] = 48.into();
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        json.to_string(),
    )
    .unwrap();
    let err = format!("{:#}", Model::from_dir(dir.path()).err().unwrap());
    assert!(
        err.contains("does not accept the input size (48, 48)"),
        "{err}"
    );

    let err = format!("{:#}", Model::named("jina-clip-v1-not-here").err().unwrap());
    assert!(
        err.contains("not in the cache") && err.contains("onnx/text_model.onnx"),
        "{err}"
    );
}

#[test]
fn index_and_search_with_an_onnx_model_and_refuse_the_other_model() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml");
    let idx = dir.path().to_str().unwrap();
    let model = fixture();
    let out = vitrina(&[
        "index",
        "--catalog",
        catalog.to_str().unwrap(),
        "--index",
        idx,
        "--limit",
        "40",
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Search loads the model recorded in the index, in every mode.
    for mode in ["description", "image", "average"] {
        let out = vitrina(&[
            "search",
            "--index",
            idx,
            "--mode",
            mode,
            "--json",
            "-k",
            "3",
            "red shirt",
        ]);
        let hits = json_hits(&out);
        assert_eq!(hits.len(), 3);
    }
    let out = vitrina(&["search", "--index", idx, "--model", "builtin", "red shirt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("built with model `onnx:tiny-clip`"));
}
