//! Geometric augmentation that imitates the photos shoppers upload: the product larger
//! or smaller in the frame (random resized crops, padding), off-centre, slightly
//! rotated, a little stretched, blurred by a low resolution, or re-compressed as JPEG.
//!
//! Colour is never changed: no brightness, contrast, saturation or hue jitter, because
//! titles name colours and colour is what shoppers search by. Exposed areas are filled
//! white, the product-photo background.
//!
//! The warp is written by hand (one inverse affine map with bilinear sampling on a
//! canvas of a few thousand pixels) rather than taken from imageproc, which would add
//! a crate and its build time for one function.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{ImageFormat, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How strongly photos are varied; every field goes into the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Share of images that get the geometric warp (the rest stay as in the catalogue).
    pub warp_probability: f64,
    /// Zoom range, sampled log-uniformly: above 1 crops into the product, below 1
    /// pads it with white.
    pub min_scale: f64,
    pub max_scale: f64,
    /// Largest stretch of one axis against the other (0.1 = 10%).
    pub max_aspect: f64,
    /// Largest shift, as a share of the canvas side.
    pub max_shift: f64,
    /// Largest rotation, degrees either way.
    pub max_rotation: f64,
    /// Mirror left-right with probability one half.
    pub flip: bool,
    /// Share of images shrunk to `low_res` of their size and scaled back (a blurry,
    /// low-resolution upload).
    pub low_res_probability: f64,
    pub low_res: (f64, f64),
    /// Share of images re-compressed as JPEG at a quality drawn from `jpeg_quality`.
    pub jpeg_probability: f64,
    pub jpeg_quality: (u8, u8),
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            warp_probability: 0.8,
            min_scale: 0.7,
            max_scale: 1.4,
            max_aspect: 0.1,
            max_shift: 0.1,
            max_rotation: 10.0,
            flip: true,
            low_res_probability: 0.2,
            low_res: (0.4, 0.8),
            jpeg_probability: 0.2,
            jpeg_quality: (60, 95),
        }
    }
}

impl Augment {
    /// No change at all except, when `flip`, mirroring: the first tower's recipe.
    pub fn flip_only() -> Self {
        Augment {
            warp_probability: 0.0,
            low_res_probability: 0.0,
            jpeg_probability: 0.0,
            ..Augment::default()
        }
    }

    /// The default ranges with `share` of the photos warped and a quarter of that share
    /// shrunk and re-compressed each (0.8 gives the default): one knob that trades
    /// robustness to framing against fitting the catalogue's own photos.
    pub fn with_share(share: f64) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&share) {
            anyhow::bail!("the share of photos varied must be between 0 and 1, not {share}");
        }
        Ok(Augment {
            warp_probability: share,
            low_res_probability: share / 4.0,
            jpeg_probability: share / 4.0,
            ..Augment::default()
        })
    }

    /// One augmented copy of `image`, drawn from `seed` (a seed per image keeps batches
    /// deterministic when images are augmented in parallel).
    pub fn apply(&self, image: &RgbImage, seed: u64) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let flip = self.flip && rng.random_bool(0.5);
        let mut out = if rng.random_bool(self.warp_probability) {
            let warp = Warp {
                scale: rng
                    .random_range(self.min_scale.ln()..=self.max_scale.ln())
                    .exp(),
                aspect: 1.0 + rng.random_range(-self.max_aspect..=self.max_aspect),
                shift: (
                    rng.random_range(-self.max_shift..=self.max_shift),
                    rng.random_range(-self.max_shift..=self.max_shift),
                ),
                rotation: rng
                    .random_range(-self.max_rotation..=self.max_rotation)
                    .to_radians(),
                flip,
            };
            warp.apply(image)
        } else if flip {
            image::imageops::flip_horizontal(image)
        } else {
            image.clone()
        };
        if rng.random_bool(self.low_res_probability) {
            let f = rng.random_range(self.low_res.0..=self.low_res.1);
            let (w, h) = out.dimensions();
            let small = image::imageops::resize(
                &out,
                ((w as f64 * f).round() as u32).max(1),
                ((h as f64 * f).round() as u32).max(1),
                FilterType::Triangle,
            );
            out = image::imageops::resize(&small, w, h, FilterType::Triangle);
        }
        if rng.random_bool(self.jpeg_probability) {
            let quality = rng.random_range(self.jpeg_quality.0..=self.jpeg_quality.1);
            if let Some(recompressed) = jpeg_round_trip(&out, quality) {
                out = recompressed;
            }
        }
        out
    }
}

/// A similarity transform about the canvas centre, plus an aspect stretch and a mirror.
struct Warp {
    scale: f64,
    aspect: f64,
    /// Shift as a share of width and height.
    shift: (f64, f64),
    rotation: f64,
    flip: bool,
}

impl Warp {
    /// Each output pixel samples the source at the inverse-mapped point, bilinearly;
    /// outside the source is white.
    fn apply(&self, src: &RgbImage) -> RgbImage {
        let (w, h) = src.dimensions();
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let (sx, sy) = (self.scale * self.aspect, self.scale / self.aspect);
        let (sin, cos) = self.rotation.sin_cos();
        let (tx, ty) = (self.shift.0 * w as f64, self.shift.1 * h as f64);
        RgbImage::from_fn(w, h, |x, y| {
            // Undo shift, rotation and scale, in that order, about the centre.
            let dx = x as f64 + 0.5 - cx - tx;
            let dy = y as f64 + 0.5 - cy - ty;
            let (rx, ry) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            let mut u = rx / sx;
            let v = ry / sy;
            if self.flip {
                u = -u;
            }
            bilinear(src, u + cx - 0.5, v + cy - 0.5)
        })
    }
}

const WHITE: [u8; 3] = [255, 255, 255];

fn bilinear(src: &RgbImage, u: f64, v: f64) -> Rgb<u8> {
    let (w, h) = (src.width() as i64, src.height() as i64);
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let at = |x: i64, y: i64| -> [u8; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            WHITE
        } else {
            src.get_pixel(x as u32, y as u32).0
        }
    };
    let (p00, p10, p01, p11) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = p00[c] as f64 * (1.0 - fx) + p10[c] as f64 * fx;
        let bottom = p01[c] as f64 * (1.0 - fx) + p11[c] as f64 * fx;
        out[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

/// Encodes and decodes as JPEG; `None` if either step fails (the image is then kept).
fn jpeg_round_trip(image: &RgbImage, quality: u8) -> Option<RgbImage> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(image)
        .ok()?;
    Some(
        image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg)
            .ok()?
            .to_rgb8(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::preprocess::fit_on_white;
    use std::path::Path;

    #[test]
    fn share_sets_the_probabilities_and_is_checked() {
        assert_eq!(Augment::with_share(0.8).unwrap(), Augment::default());
        let mild = Augment::with_share(0.4).unwrap();
        assert_eq!((mild.warp_probability, mild.jpeg_probability), (0.4, 0.1));
        for bad in [-0.1, 1.5, f64::NAN] {
            let err = Augment::with_share(bad).unwrap_err().to_string();
            assert!(err.contains("between 0 and 1"), "{err}");
        }
    }

    /// A red garment with a darker stripe on white, 64x80: a product photo the test draws.
    fn garment() -> RgbImage {
        RgbImage::from_fn(64, 80, |x, y| {
            if (14..50).contains(&x) && (10..70).contains(&y) {
                if (30..36).contains(&y) {
                    Rgb([150, 20, 30])
                } else {
                    Rgb([210, 40, 50])
                }
            } else {
                Rgb(WHITE)
            }
        })
    }

    /// The colour of everything that is not white background, as each channel's share
    /// of the image's total "ink" (255 - value). Padding, shifts, rotation and blur only
    /// mix pixels with each other and with white, which scales ink, so these shares
    /// stay put; hue or saturation changes move them, and so does darkening a coloured
    /// product.
    fn ink_shares(image: &RgbImage) -> [f64; 3] {
        let mut ink = [0.0; 3];
        for p in image.pixels() {
            for (sum, &v) in ink.iter_mut().zip(&p.0) {
                *sum += 255.0 - v as f64;
            }
        }
        let total: f64 = ink.iter().sum();
        ink.map(|v| v / total)
    }

    fn assert_colour_kept(original: &RgbImage, what: &str, tolerance: f64) {
        let want = ink_shares(original);
        let augment = Augment::default();
        let mut changed = 0;
        let (mut worst, mut worst_seed) = (0.0f64, 0);
        for seed in 0..200 {
            let out = augment.apply(original, seed);
            assert_eq!(out.dimensions(), original.dimensions());
            changed += usize::from(out != *original);
            let got = ink_shares(&out);
            for c in 0..3 {
                if (got[c] - want[c]).abs() > worst {
                    (worst, worst_seed) = ((got[c] - want[c]).abs(), seed);
                }
            }
        }
        eprintln!("{what}: largest ink-share change {worst:.4} (seed {worst_seed})");
        assert!(
            worst < tolerance,
            "{what}: ink share moved by {worst:.4} (seed {worst_seed})"
        );
        // The augmentation does something: most copies differ from the original.
        assert!(
            changed > 150,
            "{what}: only {changed} of 200 copies changed"
        );
    }

    #[test]
    fn augmentation_never_changes_the_colour_of_the_product() {
        assert_colour_kept(&garment(), "drawn garment", 0.01);
        // The measure notices a colour change: 10% darker moves the shares.
        let darker = RgbImage::from_fn(64, 80, |x, y| {
            Rgb(garment().get_pixel(x, y).0.map(|v| (v as f64 * 0.9) as u8))
        });
        let (a, b) = (ink_shares(&garment()), ink_shares(&darker));
        assert!(
            (0..3).any(|c| (a[c] - b[c]).abs() >= 0.01),
            "{a:?} vs {b:?}"
        );
        // Real Myntra product photos, their near-white JPEG background made pure white
        // (its faint ink would otherwise count as colour that crops remove).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/myntra/images");
        for id in ["15970", "30039", "51832", "1163", "1164"] {
            let path = dir.join(format!("{id}.jpg"));
            let photo = image::open(&path).unwrap();
            let mut canvas = fit_on_white(&photo, 64, 80);
            for p in canvas.pixels_mut() {
                if p.0.iter().all(|&c| c >= 235) {
                    *p = Rgb(WHITE);
                }
            }
            // Crops can cut off part of a product that fills the frame, which moves
            // the shares a little by content (up to 0.015 on these five).
            assert_colour_kept(&canvas, &path.display().to_string(), 0.02);
        }
    }

    #[test]
    fn warps_move_scale_and_pad_the_product() {
        let original = garment();
        let area = |img: &RgbImage| img.pixels().filter(|p| p.0[0] < 235).count() as f64;
        let base = area(&original);
        let warp = |scale: f64, shift: (f64, f64)| Warp {
            scale,
            aspect: 1.0,
            shift,
            rotation: 0.0,
            flip: false,
        };
        // Zooming out by 0.5 leaves a quarter of the area, padded white.
        let small = area(&warp(0.5, (0.0, 0.0)).apply(&original));
        assert!((small / base - 0.25).abs() < 0.05, "{}", small / base);
        // Identity is exact.
        assert_eq!(warp(1.0, (0.0, 0.0)).apply(&original), original);
        // A shift right by a quarter of the width moves the left edge by 16 pixels.
        let shifted = warp(1.0, (0.25, 0.0)).apply(&original);
        assert_eq!(shifted.get_pixel(14 + 16, 40).0, [210, 40, 50]);
        assert_eq!(shifted.get_pixel(13 + 16, 40).0, WHITE);
    }

    #[test]
    fn same_seed_same_copy() {
        let original = garment();
        let augment = Augment::default();
        assert_eq!(augment.apply(&original, 7), augment.apply(&original, 7));
        assert!((0..20).any(|s| augment.apply(&original, s) != augment.apply(&original, 7)));
        // flip_only never warps: every copy is the original or its mirror image.
        let mirror = image::imageops::flip_horizontal(&original);
        for s in 0..20 {
            let out = Augment::flip_only().apply(&original, s);
            assert!(out == original || out == mirror);
        }
    }
}
