//! The built-in image tower: a small hierarchical patch network, trained by `vitrina
//! train` to map product photos into the frozen MiniLM text space (LiT).
//!
//! Design, for two CPU cores: the image is cut into square patches (8x8 in the built-in
//! tower), and each stage after the first merges 2x2 neighbours (as Swin's patch merging
//! does); every stage refines its tokens with residual MLPs. Every layer is a matrix
//! product, the fastest op candle has on a CPU and one whose backward pass is as fast,
//! which makes training in Rust practical. The built-in tower's last stage (of two) has
//! tokens that each see a 16x16 pixel window; token-mixing layers (MLP-Mixer's) between
//! its blocks let every token see the whole photo's layout, which a bag of local windows
//! cannot (held-out recall@10 rose from 0.405 to 0.509 with them); global mean pooling
//! and a linear head give a 384-d vector, L2-normalised.

use std::borrow::Cow;

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use image::{DynamicImage, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::backdrop;
use super::preprocess::{self, fit_on_white, to_unit_range, trim_white};
use super::query_views::{self, PhotoQuery};
use super::ImageEncoder;

/// The tower's shape; stored in the model card so weights and shape travel together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerConfig {
    /// Input canvas, pixels.
    pub height: usize,
    pub width: usize,
    /// Side of the first stage's square patches.
    pub patch: usize,
    /// Token width of each stage; stages after the first halve the grid.
    pub dims: Vec<usize>,
    /// Residual MLP blocks per stage.
    pub depths: Vec<usize>,
    /// Hidden width of each MLP, as a multiple of the stage width.
    pub mlp_ratio: usize,
    /// Output dimension: the text tower's.
    pub out_dim: usize,
    /// A token-mixing layer (MLP-Mixer's) before each block of the last stage, so that
    /// tokens see the whole photo's layout before pooling rather than only their own
    /// window. Cards written before it existed have none.
    #[serde(default)]
    pub token_mixing: bool,
    /// The first stage's tokens embed a window twice the patch's side, centred on their
    /// patch (a 16x16 window every 8 pixels in a tower with 8x8 patches, on white beyond
    /// the canvas), so a product's edge that falls on a patch boundary is seen whole by
    /// a token, as the overlapping stems of convolutional networks see it. False (cards
    /// written before it existed): each token sees its own patch only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overlap: bool,
    /// Crop each photo to its pixels darker than this before fitting it onto the canvas
    /// ([`trim_white`]), in training and at inference alike, so white margins do not
    /// change the framing. None (cards written before it existed): photos are fitted
    /// whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim_white: Option<u8>,
}

impl Default for TowerConfig {
    fn default() -> Self {
        TowerConfig {
            height: 80,
            width: 64,
            patch: 8,
            dims: vec![96, 384],
            depths: vec![1, 2],
            mlp_ratio: 2,
            out_dim: 384,
            token_mixing: true,
            overlap: false,
            trim_white: None,
        }
    }
}

/// Layer norm from differentiable primitives: candle's fused kernel has no backward pass.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

/// x + fc2(gelu(fc1(norm(x)))), on rows of a 2-D (tokens x width) tensor.
struct Block {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            norm: LayerNorm::new(dim, vb.pp("norm"))?,
            fc1: linear(dim, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, dim, vb.pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = super::gelu::gelu(&self.fc1.forward(&self.norm.forward(x)?)?)?;
        Ok((x + self.fc2.forward(&h)?)?)
    }
}

/// x + W2 gelu(W1 norm(x)) along the token axis of a (B, T, C) tensor: MLP-Mixer's
/// token mixing, one small MLP over the T token positions shared by every channel.
struct TokenMix {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl TokenMix {
    fn new(dim: usize, tokens: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(TokenMix {
            norm: LayerNorm::new(dim, vb.pp("norm"))?,
            fc1: linear(tokens, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, tokens, vb.pp("fc2"))?,
        })
    }

    /// Its multiply-adds are 4% of the tower's, but its GELU runs on B x C x 2T values:
    /// the built-in tower's two mixers together feed GELU two thirds as many values as
    /// all its blocks. While GELU called libm's scalar `tanhf`, that slowed the tower
    /// from v3's 520-600 images/s to about 400; with the vectorisable tanh of `gelu.rs`
    /// it runs at 650-960 (a profile found it; removing the transposes measured within
    /// noise).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let h = self.norm.forward(&x.reshape((b * t, c))?)?;
        let h = h.reshape((b, t, c))?.transpose(1, 2)?.reshape((b * c, t))?;
        let h = self
            .fc2
            .forward(&super::gelu::gelu(&self.fc1.forward(&h)?)?)?;
        Ok((x + h.reshape((b, c, t))?.transpose(1, 2)?)?)
    }
}

struct Stage {
    /// Normalises merged tokens (stages after the first).
    norm: Option<LayerNorm>,
    proj: Linear,
    blocks: Vec<Block>,
    /// Token mixing before each block (the last stage, with `token_mixing`).
    mixers: Vec<TokenMix>,
}

/// The network itself, on a batch of preprocessed pixels.
pub struct TowerNet {
    config: TowerConfig,
    stages: Vec<Stage>,
    head_norm: LayerNorm,
    head: Linear,
}

/// (B, H, W, 3) -> (B, H/p, W/p, 4*p*p*3): token (i, j) holds the 2p x 2p window centred
/// on patch (i, j), white (1.0) beyond the canvas: the canvas is padded by p/2 on every
/// side and cut into p x p blocks, and each token joins the 2x2 blocks that cover its
/// window. Reshapes, slices and a concatenation, so training's backward pass stays as
/// fast as the matrix products'.
fn overlapping_patches(x: &Tensor, p: usize) -> Result<Tensor> {
    let half = p / 2;
    // Padding adds zeros: shift white to zero first.
    let shifted = x.affine(1.0, -1.0)?;
    let padded = shifted
        .pad_with_zeros(1, half, half)?
        .pad_with_zeros(2, half, half)?;
    let blocks = space_to_depth(&padded.affine(1.0, 1.0)?, p)?;
    let (_, gh, gw, _) = blocks.dims4()?;
    let window = |dy: usize, dx: usize| -> Result<Tensor> {
        Ok(blocks.narrow(1, dy, gh - 1)?.narrow(2, dx, gw - 1)?)
    };
    Ok(Tensor::cat(
        &[window(0, 0)?, window(0, 1)?, window(1, 0)?, window(1, 1)?],
        3,
    )?)
}

/// (B, H, W, C) -> (B, H/s, W/s, s*s*C): each s x s neighbourhood becomes one token.
fn space_to_depth(x: &Tensor, s: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    Ok(x.reshape((b, h / s, s, w / s, s, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .reshape((b, h / s, w / s, s * s * c))?)
}

impl TowerConfig {
    /// The canvas the tower sees for a photo: trimmed if the config says so, then fitted
    /// onto white ([`fit_on_white`]). Training and inference both go through here.
    pub fn canvas(&self, image: &DynamicImage) -> RgbImage {
        let (w, h) = (self.width as u32, self.height as u32);
        match self.trim_white {
            Some(threshold) => fit_on_white(&trim_white(image, threshold), w, h),
            None => fit_on_white(image, w, h),
        }
    }

    /// Refuses shapes the network cannot be built with: as many depths as stage widths
    /// (at least one stage), and a canvas the patches and merges divide.
    pub fn check(&self) -> Result<()> {
        ensure!(
            !self.dims.is_empty() && self.dims.len() == self.depths.len(),
            "the tower's dims and depths must name the same number of stages, at least one (got {} and {})",
            self.dims.len(),
            self.depths.len()
        );
        ensure!(
            !self.overlap || self.patch.is_multiple_of(2),
            "overlapping patches need an even patch side, not {}",
            self.patch
        );
        let grid = 1 << (self.dims.len() - 1);
        ensure!(
            self.patch > 0
                && self.height.is_multiple_of(self.patch * grid)
                && self.width.is_multiple_of(self.patch * grid),
            "tower input {}x{} must divide by patch x 2^(stages-1) = {}",
            self.height,
            self.width,
            self.patch * grid
        );
        Ok(())
    }
}

impl TowerNet {
    /// Builds the network; with a `VarMap`-backed builder its weights are trainable.
    pub fn new(config: &TowerConfig, vb: VarBuilder) -> Result<Self> {
        config.check()?;
        let mut stages = Vec::new();
        let windows = if config.overlap { 4 } else { 1 };
        let mut in_dim = windows * config.patch * config.patch * 3;
        for (s, (&dim, &depth)) in config.dims.iter().zip(&config.depths).enumerate() {
            let vb = vb.pp(format!("stage{s}"));
            let norm = if s == 0 {
                None
            } else {
                Some(LayerNorm::new(in_dim, vb.pp("norm"))?)
            };
            let proj = linear(in_dim, dim, vb.pp("proj"))?;
            let blocks = (0..depth)
                .map(|i| Block::new(dim, dim * config.mlp_ratio, vb.pp(format!("block{i}"))))
                .collect::<Result<_>>()?;
            let mixers = if config.token_mixing && s + 1 == config.dims.len() {
                // Stage s's tokens each cover a (patch << s)-pixel square.
                let side = config.patch << s;
                let tokens = (config.height / side) * (config.width / side);
                (0..depth)
                    .map(|i| {
                        TokenMix::new(
                            dim,
                            tokens,
                            tokens * config.mlp_ratio,
                            vb.pp(format!("mix{i}")),
                        )
                    })
                    .collect::<Result<_>>()?
            } else {
                Vec::new()
            };
            stages.push(Stage {
                norm,
                proj,
                blocks,
                mixers,
            });
            in_dim = dim * 4;
        }
        let last = *config.dims.last().context("tower needs a stage")?;
        Ok(TowerNet {
            config: config.clone(),
            stages,
            head_norm: LayerNorm::new(last, vb.pp("head_norm"))?,
            head: linear(last, config.out_dim, vb.pp("head"))?,
        })
    }

    pub fn config(&self) -> &TowerConfig {
        &self.config
    }

    /// (B, H, W, 3) pixels in [-1, 1] -> (B, out_dim), each row L2-normalised.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let mut x = if self.config.overlap {
            overlapping_patches(pixels, self.config.patch)?
        } else {
            space_to_depth(pixels, self.config.patch)?
        };
        for (s, stage) in self.stages.iter().enumerate() {
            if s > 0 {
                x = space_to_depth(&x, 2)?;
            }
            let (_, h, w, c) = x.dims4()?;
            let mut t = x.reshape((b * h * w, c))?;
            if let Some(norm) = &stage.norm {
                t = norm.forward(&t)?;
            }
            t = stage.proj.forward(&t)?;
            for (i, block) in stage.blocks.iter().enumerate() {
                if let Some(mix) = stage.mixers.get(i) {
                    t = mix
                        .forward(&t.reshape((b, h * w, ()))?)?
                        .reshape((b * h * w, ()))?;
                }
                t = block.forward(&t)?;
            }
            x = t.reshape((b, h, w, ()))?;
        }
        let (_, h, w, c) = x.dims4()?;
        let pooled = x.reshape((b, h * w, c))?.mean(1)?;
        let out = self.head.forward(&self.head_norm.forward(&pooled)?)?;
        l2_normalize(&out)
    }
}

/// Row-wise L2 normalisation that stays differentiable.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

/// Images per forward pass at inference.
const BATCH: usize = 256;

/// The trained tower, ready to embed images.
pub struct ImageTower {
    net: TowerNet,
    id: String,
    device: Device,
}

impl ImageTower {
    /// Loads weights (safetensors bytes) for a tower of the given shape.
    pub fn from_safetensors(id: &str, config: &TowerConfig, weights: &[u8]) -> Result<Self> {
        let device = Device::Cpu;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &device)
            .context("image tower weights are not valid safetensors")?;
        let net = TowerNet::new(config, vb).context("image tower weights do not fit its config")?;
        Ok(ImageTower {
            net,
            id: id.to_string(),
            device,
        })
    }
}

impl ImageEncoder for ImageTower {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.net.config.out_dim
    }

    /// The canvas the tower expects, made by [`TowerConfig::canvas`].
    fn pixels(&self, image: &DynamicImage) -> Vec<f32> {
        to_unit_range(&self.net.config.canvas(image))
    }

    /// The photo's own vector and the mean of its six views ([`query_views`]), for a
    /// query that lists the same products however the photo is framed, and on whatever
    /// plain backdrop: the views are cut from the photo with its backdrop made white
    /// ([`backdrop::whiten`]). The views of a photo larger than twice the canvas are
    /// made from a copy shrunk to that: the canvas is all the tower sees, and six
    /// resizes of a phone photo would cost six times one. (A smaller photo on white's
    /// first view is the photo itself: its own vector.)
    fn embed_query_image(&self, image: &DynamicImage) -> Result<PhotoQuery> {
        let (w, h) = (
            2 * self.net.config.width as u32,
            2 * self.net.config.height as u32,
        );
        let base = preprocess::shrink_within(image, w, h);
        // A plain backdrop is made white, as the catalogue's photos are (`backdrop.rs`).
        let whitened = backdrop::whiten(&base);
        // The photo's own vector, by which search finds the catalogue's copies of it, is
        // the first view's unless the views were cut from a changed photo.
        let apart = matches!(base, Cow::Owned(_)) || whitened.is_some();
        let views = query_views::views(whitened.as_ref().unwrap_or(&base));
        // As `embed_images` does, but without a copy of the (perhaps 36 MB) photo.
        let photos: Vec<&DynamicImage> = apart.then_some(image).into_iter().chain(&views).collect();
        let pixels: Vec<f32> = photos
            .par_iter()
            .flat_map_iter(|photo| self.pixels(photo))
            .collect();
        let vectors = self.embed_pixels(&pixels)?;
        let dim = self.dim();
        let views = if apart { &vectors[dim..] } else { &vectors[..] };
        Ok(PhotoQuery {
            own: vectors[..dim].to_vec(),
            views: Some(query_views::mean_direction(views, dim)),
        })
    }

    fn embed_pixels(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let c = &self.net.config;
        let per = c.height * c.width * 3;
        let mut out = Vec::with_capacity(pixels.len() / per * c.out_dim);
        for chunk in pixels.chunks(BATCH * per) {
            let n = chunk.len() / per;
            let x = Tensor::from_slice(chunk, (n, c.height, c.width, 3), &self.device)?;
            out.extend(self.net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    #[test]
    fn forward_gives_unit_vectors_of_the_configured_size() {
        let config = TowerConfig::default();
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = TowerNet::new(&config, vb).unwrap();
        let x =
            Tensor::randn(0f32, 1.0, (3, config.height, config.width, 3), &Device::Cpu).unwrap();
        let y = net.forward(&x).unwrap();
        assert_eq!(y.dims(), [3, config.out_dim]);
        for n in y.sqr().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap() {
            assert!((n - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn token_mixing_lets_each_token_see_the_others() {
        let vb = |map: &VarMap| VarBuilder::from_varmap(map, DType::F32, &Device::Cpu);
        let map = VarMap::new();
        let (tokens, dim) = (6, 4);
        let mix = TokenMix::new(dim, tokens, 12, vb(&map).pp("mix")).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, tokens, dim), &Device::Cpu).unwrap();
        // Only the last token of the first photo changes (unevenly across channels: the
        // norm would take out an even shift).
        let mut bump = vec![0f32; 2 * tokens * dim];
        for (c, v) in bump[(tokens - 1) * dim..tokens * dim]
            .iter_mut()
            .enumerate()
        {
            *v = c as f32;
        }
        let bumped =
            (&x + Tensor::from_vec(bump, (2, tokens, dim), &Device::Cpu).unwrap()).unwrap();
        let (y, z) = (mix.forward(&x).unwrap(), mix.forward(&bumped).unwrap());
        assert_eq!(y.dims(), [2, tokens, dim]);
        let moved = |photo: usize, token: usize| {
            let a = y.get(photo).unwrap().get(token).unwrap();
            let b = z.get(photo).unwrap().get(token).unwrap();
            let d = (a - b).unwrap().abs().unwrap().sum_all().unwrap();
            d.to_scalar::<f32>().unwrap()
        };
        // The first token of the same photo moves; the other photo does not.
        assert!(
            moved(0, 0) > 1e-4,
            "token 0 did not see token {}",
            tokens - 1
        );
        assert_eq!(moved(1, 0), 0.0);
        // A tower with token mixing names its layers apart from one without.
        let config = TowerConfig {
            token_mixing: true,
            ..TowerConfig::default()
        };
        let map = VarMap::new();
        TowerNet::new(&config, vb(&map)).unwrap();
        assert!(map
            .data()
            .lock()
            .unwrap()
            .contains_key("stage1.mix0.fc1.weight"));
        assert!(!map
            .data()
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("stage0.mix")));
    }

    /// Every value of every overlapping window is the canvas pixel it should be, or white
    /// beyond the canvas.
    #[test]
    fn overlapping_patches_hold_the_window_around_each_patch() {
        let (h, w, p) = (16usize, 24usize, 8usize);
        let value = |y: usize, x: usize, c: usize| ((y * w + x) * 3 + c) as f32 / 2000.0;
        let pixels: Vec<f32> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| (0..3).map(move |c| value(y, x, c))))
            .collect();
        let x = Tensor::from_vec(pixels, (1, h, w, 3), &Device::Cpu).unwrap();
        let tokens = overlapping_patches(&x, p).unwrap();
        assert_eq!(tokens.dims(), [1, h / p, w / p, 4 * p * p * 3]);
        let got = tokens.get(0).unwrap().to_vec3::<f32>().unwrap();
        for (i, row) in got.iter().enumerate() {
            for (j, token) in row.iter().enumerate() {
                for (f, &v) in token.iter().enumerate() {
                    let (block, within) = (f / (p * p * 3), f % (p * p * 3));
                    let (r, q, c) = (within / (p * 3), within / 3 % p, within % 3);
                    // Canvas coordinates, p/2 before the patch's own corner.
                    let y = ((i + block / 2) * p + r) as isize - (p / 2) as isize;
                    let x = ((j + block % 2) * p + q) as isize - (p / 2) as isize;
                    let want = if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                        value(y as usize, x as usize, c)
                    } else {
                        1.0
                    };
                    assert!(
                        (v - want).abs() < 1e-6,
                        "token ({i},{j}) feature {f}: {v} vs {want}"
                    );
                }
            }
        }
        // The network takes them: a tower with overlap embeds to unit vectors.
        let config = TowerConfig {
            overlap: true,
            ..TowerConfig::default()
        };
        let map = VarMap::new();
        let net = TowerNet::new(
            &config,
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let x =
            Tensor::randn(0f32, 1.0, (2, config.height, config.width, 3), &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), [2, config.out_dim]);
    }

    #[test]
    fn shapes_the_network_cannot_take_are_errors_not_panics() {
        let bad = |edit: fn(&mut TowerConfig)| {
            let mut config = TowerConfig::default();
            edit(&mut config);
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            TowerNet::new(&config, vb).err().unwrap().to_string()
        };
        assert!(bad(|c| c.dims.clear()).contains("same number of stages"));
        assert!(bad(|c| c.depths.push(1)).contains("same number of stages"));
        assert!(bad(|c| c.patch = 0).contains("must divide"));
        assert!(bad(|c| {
            c.patch = 5;
            c.overlap = true
        })
        .contains("even patch side"));
        assert!(bad(|c| c.patch = 7).contains("must divide"));
        assert!(TowerConfig::default().check().is_ok());
    }

    #[test]
    fn space_to_depth_groups_neighbourhoods() {
        // 1 x 2 x 2 x 1 -> 1 x 1 x 1 x 4, in row-major neighbourhood order.
        let x = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 2, 1))
            .unwrap();
        let y = space_to_depth(&x, 2).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [1., 2., 3., 4.]);
    }
}
