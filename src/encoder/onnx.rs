//! CLIP-style models exported to ONNX (jina-clip-v1, OpenAI CLIP as published for
//! fastembed, jina-clip-v2), run with ONNX Runtime through `ort`.
//!
//! A model folder holds `tokenizer.json`, `preprocessor_config.json` and the two towers
//! (`onnx/text_model.onnx` + `onnx/vision_model.onnx`, the jina-clip layout), optionally
//! `tokenizer_config.json` (for `model_max_length`). Inputs and outputs are matched by
//! the names the export declares, so one loader serves every such export.
//!
//! The runtime (`libonnxruntime.so`) is loaded at run time: from `$VITRINA_ORT_DYLIB`
//! (or `$ORT_DYLIB_PATH`), else from the cache, where it is unpacked from the PyPI
//! `onnxruntime` wheel on first use, the same way as the built-in text tower.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, bail, ensure, Context, Result};
use image::imageops::FilterType;
use image::DynamicImage;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::assets::fetch_from_wheel;
use super::cache_dir;
use super::{normalize_rows, Embeddings, ImageEncoder, TextEncoder};

/// The wheel (pinned) whose `libonnxruntime.so` the backend loads.
pub const ORT_PACKAGE: &str = "onnxruntime==1.32.0";
const ORT_LIBRARY: &str = "libonnxruntime.so.1.32.0";
/// Environment variables naming a `libonnxruntime.so` to use instead of the cache.
pub const ORT_ENV: [&str; 2] = ["VITRINA_ORT_DYLIB", "ORT_DYLIB_PATH"];

/// Files a model folder must have, relative to it.
pub const REQUIRED_FILES: [&str; 4] = [
    "onnx/text_model.onnx",
    "onnx/vision_model.onnx",
    "tokenizer.json",
    "preprocessor_config.json",
];
const TEXT_OUTPUTS: [&str; 4] = [
    "text_embeds",
    "sentence_embedding",
    "embeddings",
    "pooler_output",
];
const IMAGE_OUTPUTS: [&str; 3] = ["image_embeds", "embeddings", "pooler_output"];
/// Texts / images per ONNX run.
pub(crate) const BATCH: usize = 32;

/// Whether `dir` looks like an ONNX CLIP folder (has the text tower export).
pub fn is_onnx_model_dir(dir: &Path) -> bool {
    dir.join(REQUIRED_FILES[0]).is_file()
}

/// Loads the ONNX Runtime library once per process; sessions are made in its environment.
fn runtime() -> Result<&'static ort::environment::Environment> {
    static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    let result = ENV.get_or_init(|| {
        let path = runtime_library().map_err(|e| format!("{e:#}"))?;
        ort::init_from(&path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
            .with_name("vitrina")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    });
    result.as_ref().map_err(|e| anyhow!("{e}"))
}

/// The runtime library: from the environment, else the cache (fetched there if needed).
pub fn runtime_library() -> Result<PathBuf> {
    for var in ORT_ENV {
        if let Some(path) = std::env::var_os(var) {
            let path = PathBuf::from(path);
            ensure!(
                path.is_file(),
                "${var} names {}, which does not exist",
                path.display()
            );
            return Ok(path);
        }
    }
    let dir = cache_dir().join("onnxruntime-1.32.0");
    let lib = dir.join(ORT_LIBRARY);
    if !lib.is_file() {
        fetch_from_wheel(ORT_PACKAGE, "onnxruntime/capi/", &[ORT_LIBRARY], &dir).with_context(|| {
            format!(
                "ONNX Runtime is not in {} and could not be fetched. Fix: `pip download --no-deps {ORT_PACKAGE}`, \
                 unzip `onnxruntime/capi/{ORT_LIBRARY}` from the wheel, and set VITRINA_ORT_DYLIB to its path",
                dir.display()
            )
        })?;
    }
    Ok(lib)
}

/// Checks a model folder and says exactly what is missing and how to get it.
pub fn check_model_dir(dir: &Path) -> Result<()> {
    let missing: Vec<&str> = REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "model folder {} is incomplete: missing {}.\nAn ONNX CLIP folder needs:\n{}\n\
             For jina-clip-v1, on a machine that reaches the Hugging Face hub: \
             `huggingface-cli download jinaai/jina-clip-v1 {} --local-dir {}`, then copy that folder here",
            dir.display(),
            missing.join(", "),
            REQUIRED_FILES.iter().map(|f| format!("  {}", dir.join(f).display())).collect::<Vec<_>>().join("\n"),
            REQUIRED_FILES.join(" "),
            dir.display()
        );
    }
    Ok(())
}

/// A session for a serialised model held in memory; `what` names it in errors.
pub(crate) fn session_from_memory(model: &[u8], what: &str) -> Result<Session> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("ONNX Runtime cannot load {what}: {e}");
    // Idle runtime threads must not spin: the vector search runs right after on the
    // same cores.
    let mut builder = Session::builder(runtime()?)
        .map_err(|e| fail(&e))?
        .with_intra_op_spinning(false)
        .map_err(|e| fail(&e))?;
    builder.commit_from_memory(model).map_err(|e| fail(&e))
}

fn open_session(path: &Path) -> Result<Session> {
    Session::builder(runtime()?)
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| anyhow!("cannot load ONNX model {}: {e}", path.display()))
}

fn input_names(session: &Session) -> Vec<String> {
    session
        .inputs()
        .iter()
        .map(|i| i.name().to_string())
        .collect()
}

/// The first of `preferred` the session outputs, else its only output.
fn pick_output(session: &Session, preferred: &[&str], path: &Path) -> Result<String> {
    let names: Vec<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    if let Some(name) = preferred.iter().find(|p| names.iter().any(|n| n == *p)) {
        return Ok(name.to_string());
    }
    match names.as_slice() {
        [only] => Ok(only.clone()),
        _ => bail!(
            "{}: none of the outputs {names:?} is an embedding output ({})",
            path.display(),
            preferred.join(", ")
        ),
    }
}

/// Runs a session and returns one output as (rows, dim, values).
fn run(
    session: &Mutex<Session>,
    inputs: Vec<(String, ort::value::DynValue)>,
    output: &str,
) -> Result<(usize, usize, Vec<f32>)> {
    let mut session = session
        .lock()
        .map_err(|_| anyhow!("ONNX session poisoned"))?;
    let outputs = session
        .run(inputs)
        .map_err(|e| anyhow!("ONNX Runtime: {e}"))?;
    let value = outputs
        .get(output)
        .with_context(|| format!("the model produced no `{output}`"))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| anyhow!("`{output}` is not a float tensor: {e}"))?;
    ensure!(
        shape.len() == 2,
        "`{output}` has shape {shape:?}; expected (batch, dim)"
    );
    Ok((shape[0] as usize, shape[1] as usize, data.to_vec()))
}

/// The text tower of an ONNX CLIP export.
pub struct OnnxText {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    id: String,
    output: String,
    has_mask: bool,
    has_types: bool,
    dim: usize,
    max_tokens: usize,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
}

impl OnnxText {
    pub fn load(dir: &Path, id: &str) -> Result<Self> {
        let path = dir.join(REQUIRED_FILES[0]);
        let session = open_session(&path)?;
        let config: TokenizerConfig = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        // Tokenizer configs without a real limit say 1e30; fall back to BERT's 512 then.
        let max_tokens = config
            .model_max_length
            .filter(|m| (1.0..1e6).contains(m))
            .map_or(512, |m| m as usize);
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow!("cannot load {}: {e}", dir.join("tokenizer.json").display()))?;
        Self::from_session(session, tokenizer, id, max_tokens, &path)
    }

    /// A text tower from a session made elsewhere (the built-in MiniLM's generated
    /// graph); `origin` names the model in errors.
    pub(crate) fn from_session(
        session: Session,
        mut tokenizer: Tokenizer,
        id: &str,
        max_tokens: usize,
        origin: &Path,
    ) -> Result<Self> {
        let inputs = input_names(&session);
        ensure!(
            inputs.iter().any(|n| n == "input_ids"),
            "{}: the text model has inputs {inputs:?}; vitrina expects `input_ids` (and optionally \
             `attention_mask`, `token_type_ids`)",
            origin.display()
        );
        if let Some(other) = inputs
            .iter()
            .find(|n| !["input_ids", "attention_mask", "token_type_ids"].contains(&n.as_str()))
        {
            bail!(
                "{}: unsupported text model input `{other}` (inputs: {inputs:?})",
                origin.display()
            );
        }
        let output = pick_output(&session, &TEXT_OUTPUTS, origin)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("tokenizer truncation: {e}"))?;
        tokenizer.with_padding(None);
        let mut text = OnnxText {
            session: Mutex::new(session),
            tokenizer,
            id: id.to_string(),
            output,
            has_mask: inputs.iter().any(|n| n == "attention_mask"),
            has_types: inputs.iter().any(|n| n == "token_type_ids"),
            dim: 0,
            max_tokens,
        };
        text.dim = text.run_batch(&[text.encode(&["probe"])?.remove(0)])?.1;
        Ok(text)
    }

    /// Token ids of `texts`, truncated to the model's limit (tests compare them).
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow!("tokenisation failed: {e}"))
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Runs one padded batch; returns (vectors, dim).
    fn run_batch(&self, encodings: &[Encoding]) -> Result<(Vec<f32>, usize)> {
        let n = encodings.len();
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = vec![0i64; n * len];
        let mut mask = vec![0i64; n * len];
        for (r, e) in encodings.iter().enumerate() {
            for (c, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[r * len + c] = id as i64;
                mask[r * len + c] = m as i64;
            }
        }
        let tensor = |data: Vec<i64>| -> Result<ort::value::DynValue> {
            Ok(Tensor::from_array(([n, len], data))
                .map_err(|e| anyhow!("{e}"))?
                .into_dyn())
        };
        let mut inputs = vec![("input_ids".to_string(), tensor(ids)?)];
        if self.has_mask {
            inputs.push(("attention_mask".to_string(), tensor(mask)?));
        }
        if self.has_types {
            inputs.push(("token_type_ids".to_string(), tensor(vec![0; n * len])?));
        }
        let (rows, dim, mut values) = run(&self.session, inputs, &self.output)?;
        ensure!(
            rows == n,
            "the text model returned {rows} rows for {n} texts"
        );
        normalize_rows(&mut values, dim);
        Ok((values, dim))
    }
}

impl TextEncoder for OnnxText {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings> {
        let encodings = self.encode(texts)?;
        let truncated = encodings
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        // Without an attention mask input, padding would change the result: one text a run.
        let batch = if self.has_mask { BATCH } else { 1 };
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![0f32; texts.len() * self.dim];
        for chunk in order.chunks(batch) {
            let batch: Vec<Encoding> = chunk.iter().map(|&i| encodings[i].clone()).collect();
            let (v, dim) = self.run_batch(&batch)?;
            for (row, &i) in v.chunks_exact(dim).zip(chunk) {
                out[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(Embeddings {
            vectors: out,
            truncated,
        })
    }
}

/// `preprocessor_config.json`, as Hugging Face's CLIP image processor writes it, or as
/// jina-clip's own processor does (`mean`/`std`, `interpolation`, `resize_mode`).
#[derive(Debug, Clone, Deserialize)]
pub struct Preprocessing {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default)]
    pub size: Option<SizeSpec>,
    /// PIL resample code: 2 bilinear, 3 bicubic (CLIP's).
    #[serde(default = "bicubic")]
    pub resample: u32,
    #[serde(default = "yes")]
    pub do_center_crop: bool,
    #[serde(default)]
    pub crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(alias = "mean")]
    pub image_mean: [f32; 3],
    #[serde(alias = "std")]
    pub image_std: [f32; 3],
    /// jina-clip: "bicubic" or "bilinear" (overrides `resample`).
    #[serde(default)]
    pub interpolation: Option<String>,
    /// jina-clip: "shortest" (shortest edge to `size`, centre crop), "squash" (stretch to
    /// `size` x `size`) or "longest" (fit inside `size` x `size`, pad with `fill_color`).
    #[serde(default)]
    pub resize_mode: Option<String>,
    #[serde(default)]
    pub fill_color: u8,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}

/// A size as configs write it: `224`, `{"shortest_edge": 224}` or `{"height": .., "width": ..}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    Square(u32),
    Shortest { shortest_edge: u32 },
    Exact { height: u32, width: u32 },
}

impl Preprocessing {
    /// Parses a config and settles jina-clip's keys into the Hugging Face ones.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut p: Preprocessing = serde_json::from_str(text)?;
        match p.interpolation.as_deref() {
            None => {}
            Some("bicubic") => p.resample = 3,
            Some("bilinear") => p.resample = 2,
            Some(other) => bail!("unsupported interpolation {other:?} (bicubic or bilinear)"),
        }
        let side = match p.size {
            Some(SizeSpec::Square(s)) | Some(SizeSpec::Shortest { shortest_edge: s }) => s,
            Some(SizeSpec::Exact { height, .. }) => height,
            None => 224,
        };
        match p.resize_mode.as_deref() {
            None | Some("shortest") | Some("longest") => {}
            Some("squash") => {
                p.size = Some(SizeSpec::Exact {
                    height: side,
                    width: side,
                });
                p.do_center_crop = false;
            }
            Some(other) => bail!("unsupported resize_mode {other:?} (shortest, squash or longest)"),
        }
        Ok(p)
    }

    /// The model's input side: the crop if cropping, else the resize target.
    fn input_size(&self) -> (u32, u32) {
        let spec = if self.do_center_crop {
            self.crop_size.or(self.size)
        } else {
            self.size
        };
        match spec {
            Some(SizeSpec::Square(s)) | Some(SizeSpec::Shortest { shortest_edge: s }) => (s, s),
            Some(SizeSpec::Exact { height, width }) => (width, height),
            None => (224, 224),
        }
    }

    /// CLIPImageProcessor's steps: resize (shortest edge, or exact), centre crop,
    /// scale to [0, 1], normalise; channel-first.
    pub fn pixels(&self, image: &DynamicImage) -> Vec<f32> {
        let filter = if self.resample == 2 {
            FilterType::Triangle
        } else {
            FilterType::CatmullRom
        };
        if self.resize_mode.as_deref() == Some("longest") {
            let (w, h) = self.input_size();
            let fill = image::Rgb([self.fill_color; 3]);
            return self.normalize(&super::preprocess::fit_on(image, w, h, fill));
        }
        let mut rgb = image.to_rgb8();
        if self.do_resize {
            let (w, h) = rgb.dimensions();
            let (nw, nh) = match self.size {
                Some(SizeSpec::Exact { height, width }) => (width, height),
                Some(SizeSpec::Square(s)) | Some(SizeSpec::Shortest { shortest_edge: s }) => {
                    let scale = s as f64 / w.min(h) as f64;
                    (
                        ((w as f64 * scale).round() as u32).max(s),
                        ((h as f64 * scale).round() as u32).max(s),
                    )
                }
                None => (w, h),
            };
            if (nw, nh) != (w, h) {
                rgb = image::imageops::resize(&rgb, nw, nh, filter);
            }
        }
        let (cw, ch) = self.input_size();
        if self.do_center_crop {
            let (w, h) = rgb.dimensions();
            let (x, y) = (w.saturating_sub(cw) / 2, h.saturating_sub(ch) / 2);
            rgb = image::imageops::crop_imm(&rgb, x, y, cw.min(w), ch.min(h)).to_image();
            if rgb.dimensions() != (cw, ch) {
                rgb = image::imageops::resize(&rgb, cw, ch, filter);
            }
        }
        self.normalize(&rgb)
    }

    /// Scales to [0, 1], normalises by mean/std, channel-first.
    fn normalize(&self, rgb: &image::RgbImage) -> Vec<f32> {
        let (w, h) = rgb.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                let v = p.0[c] as f32 / 255.0;
                out[c * plane + i] = if self.do_normalize {
                    (v - self.image_mean[c]) / self.image_std[c]
                } else {
                    v
                };
            }
        }
        out
    }
}

/// The image tower of an ONNX CLIP export.
pub struct OnnxVision {
    session: Mutex<Session>,
    preprocessing: Preprocessing,
    id: String,
    output: String,
    dim: usize,
}

impl OnnxVision {
    pub fn load(dir: &Path, id: &str) -> Result<Self> {
        let path = dir.join(REQUIRED_FILES[1]);
        let config_path = dir.join("preprocessor_config.json");
        let preprocessing = Preprocessing::from_json(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("cannot read {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not an image processor config", config_path.display()))?;
        let session = open_session(&path)?;
        let inputs = input_names(&session);
        ensure!(
            inputs == ["pixel_values"],
            "{}: the vision model has inputs {inputs:?}; vitrina expects exactly `pixel_values`",
            path.display()
        );
        let output = pick_output(&session, &IMAGE_OUTPUTS, &path)?;
        let mut vision = OnnxVision {
            session: Mutex::new(session),
            preprocessing,
            id: id.to_string(),
            output,
            dim: 0,
        };
        let probe = DynamicImage::new_rgb8(8, 8);
        vision.dim = vision
            .embed_images(std::slice::from_ref(&probe))
            .with_context(|| {
                format!(
                    "{} does not accept the input size {:?} from {}",
                    path.display(),
                    vision.preprocessing.input_size(),
                    config_path.display()
                )
            })?
            .vectors
            .len();
        Ok(vision)
    }

    pub fn preprocessing(&self) -> &Preprocessing {
        &self.preprocessing
    }
}

impl ImageEncoder for OnnxVision {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// Channel-first, as `preprocessor_config.json` says.
    fn pixels(&self, image: &DynamicImage) -> Vec<f32> {
        self.preprocessing.pixels(image)
    }

    fn embed_pixels(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let (w, h) = self.preprocessing.input_size();
        let per = (3 * w * h) as usize;
        ensure!(
            pixels.len().is_multiple_of(per),
            "pixel buffer is not a whole number of {w}x{h} images"
        );
        let mut out = Vec::new();
        for chunk in pixels.chunks(BATCH * per) {
            let n = chunk.len() / per;
            let tensor = Tensor::from_array(([n, 3, h as usize, w as usize], chunk.to_vec()))
                .map_err(|e| anyhow!("{e}"))?
                .into_dyn();
            let (rows, dim, mut values) = run(
                &self.session,
                vec![("pixel_values".to_string(), tensor)],
                &self.output,
            )?;
            ensure!(
                rows == n,
                "the vision model returned {rows} rows for {n} images"
            );
            normalize_rows(&mut values, dim);
            out.extend(values);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// jina-clip-v1 ships its own processor's keys rather than CLIPImageProcessor's.
    const JINA_STYLE: &str = r#"{"image_processor_type": "JinaCLIPImageProcessor", "size": 224,
        "resize_mode": "shortest", "interpolation": "bicubic", "fill_color": 0,
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}"#;

    fn photo(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, _| {
            Rgb([(x % 256) as u8, 128, 255])
        }))
    }

    #[test]
    fn jina_style_config_resizes_shortest_edge_and_crops() {
        let p = Preprocessing::from_json(JINA_STYLE).unwrap();
        assert_eq!(p.resample, 3);
        assert_eq!(p.input_size(), (224, 224));
        let pixels = p.pixels(&photo(640, 480));
        assert_eq!(pixels.len(), 3 * 224 * 224);
        // Blue channel: 255 everywhere, normalised with CLIP's mean/std.
        let blue = (1.0 - p.image_mean[2]) / p.image_std[2];
        assert!((pixels[2 * 224 * 224 + 1000] - blue).abs() < 1e-5);
    }

    #[test]
    fn squash_and_longest_modes_keep_the_input_size() {
        for (mode, corner_is_fill) in [("squash", false), ("longest", true)] {
            let config = JINA_STYLE.replace("\"shortest\"", &format!("\"{mode}\""));
            let p = Preprocessing::from_json(&config).unwrap();
            let pixels = p.pixels(&photo(640, 320));
            assert_eq!(pixels.len(), 3 * 224 * 224, "{mode}");
            // "longest" pads the short side with fill_color 0 (black): red channel at (0, 0).
            let black_red = -p.image_mean[0] / p.image_std[0];
            assert_eq!(
                (pixels[0] - black_red).abs() < 1e-5 && pixels[2 * 224 * 224] < 0.0,
                corner_is_fill,
                "{mode}"
            );
        }
        let bad = JINA_STYLE.replace("\"shortest\"", "\"sideways\"");
        assert!(Preprocessing::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("sideways"));
    }

    #[test]
    fn hugging_face_style_config_still_parses() {
        let config = r#"{"crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_normalize": true,
            "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "resample": 3,
            "image_std": [0.26862954, 0.26130258, 0.27577711], "size": {"shortest_edge": 224}}"#;
        let p = Preprocessing::from_json(config).unwrap();
        assert_eq!(p.input_size(), (224, 224));
        assert_eq!(p.pixels(&photo(300, 500)).len(), 3 * 224 * 224);
    }
}
