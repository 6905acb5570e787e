//! Named models fetched from the Hugging Face hub on first use (with a progress bar),
//! laid out in the cache as the ONNX backend expects: `models/NAME/onnx/text_model.onnx`, ...

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// One file of a named model: which hub repository holds it, under what name, and
/// where it goes in the model folder.
struct HubFile {
    repo: &'static str,
    remote: &'static str,
    local: &'static str,
}

const fn file(repo: &'static str, remote: &'static str, local: &'static str) -> HubFile {
    HubFile {
        repo,
        remote,
        local,
    }
}

/// The models `--model NAME` knows how to fetch.
fn files_of(name: &str) -> Option<Vec<HubFile>> {
    const JINA: &str = "jinaai/jina-clip-v1";
    const CLIP_TEXT: &str = "Qdrant/clip-ViT-B-32-text";
    const CLIP_VISION: &str = "Qdrant/clip-ViT-B-32-vision";
    match name {
        "jina-clip-v1" => Some(vec![
            file(JINA, "onnx/text_model.onnx", "onnx/text_model.onnx"),
            file(JINA, "onnx/vision_model.onnx", "onnx/vision_model.onnx"),
            file(JINA, "tokenizer.json", "tokenizer.json"),
            file(JINA, "tokenizer_config.json", "tokenizer_config.json"),
            file(JINA, "preprocessor_config.json", "preprocessor_config.json"),
        ]),
        // OpenAI CLIP ViT-B/32 as published for fastembed: two repositories.
        "clip-vit-b32" => Some(vec![
            file(CLIP_TEXT, "model.onnx", "onnx/text_model.onnx"),
            file(CLIP_TEXT, "tokenizer.json", "tokenizer.json"),
            file(CLIP_TEXT, "tokenizer_config.json", "tokenizer_config.json"),
            file(CLIP_VISION, "model.onnx", "onnx/vision_model.onnx"),
            file(
                CLIP_VISION,
                "preprocessor_config.json",
                "preprocessor_config.json",
            ),
        ]),
        _ => None,
    }
}

/// Names `--model` accepts besides `builtin`.
pub const KNOWN_MODELS: [&str; 2] = ["jina-clip-v1", "clip-vit-b32"];

/// Downloads the named model's files into `dest` (skipping files already there).
pub fn fetch(name: &str, dest: &Path) -> Result<()> {
    let Some(files) = files_of(name) else {
        bail!(
            "unknown model `{name}`: known are builtin, {}; or pass any CLIP export with --model-dir",
            KNOWN_MODELS.join(", ")
        );
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| anyhow!("cannot reach the Hugging Face hub: {e}"))?;
    for f in &files {
        let target = dest.join(f.local);
        if target.is_file() {
            continue;
        }
        eprintln!(
            "downloading {}/{} -> {}",
            f.repo,
            f.remote,
            target.display()
        );
        let cached: PathBuf = api
            .model(f.repo.to_string())
            .get(f.remote)
            .map_err(|e| anyhow!("downloading {}/{}: {e}", f.repo, f.remote))?;
        std::fs::create_dir_all(target.parent().unwrap())?;
        // A hard link avoids a second copy of a 500 MB export; across filesystems, copy.
        let tmp = target.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&cached, &tmp).is_err() {
            std::fs::copy(&cached, &tmp)
                .with_context(|| format!("cannot copy into {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}
