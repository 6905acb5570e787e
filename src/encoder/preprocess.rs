//! Image decoding and preprocessing for the built-in image tower.
//!
//! Any common JPEG/PNG/WebP of any size becomes an RGB canvas of the tower's input size:
//! the whole image is scaled to fit (aspect ratio kept, never cropped, so a shoe's toe
//! or a dress's hem is never cut off) and centred on white, the background of product
//! photos. Transparent pixels are composited onto white for the same reason. Myntra's
//! 60x80 thumbnails fit the 64x80 canvas unscaled, with a 2-pixel white margin.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageDecoder, Rgb, RgbImage, Rgba};

use crate::catalog::Product;

/// Decodes an image file, naming the file in any error.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    decode_image(&bytes).with_context(|| format!("cannot decode image {}", path.display()))
}

/// Decodes a product's image; the error (a sentence naming the file) is kept as text
/// because callers report it per product and carry on.
pub fn load_product_image(product: &Product) -> Result<DynamicImage, String> {
    let path = product
        .image
        .as_ref()
        .ok_or("the catalogue has no image for it")?;
    load_image(path).map_err(|e| format!("{e:#}"))
}

/// Decodes image bytes (an upload, say).
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage> {
    check_complete(bytes)?;
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .context("cannot read image bytes")
    };
    // The declared size first: a small file can claim a huge canvas (a "decompression
    // bomb": a 389 KB PNG cost 1 GB to decode), so refuse before allocating anything.
    let (width, height) = reader()?
        .into_dimensions()
        .context("cannot decode image bytes (JPEG, PNG or WebP expected)")?;
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PIXELS {
        return Err(ImageTooLarge { width, height }.into());
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    let undecodable = "cannot decode image bytes (JPEG, PNG or WebP expected)";
    let mut decoder = reader.into_decoder().context(undecodable)?;
    // What `ImageReader::decode` checks before it allocates the pixels.
    limits.reserve(decoder.total_bytes()).context(undecodable)?;
    // A phone stores a portrait photo as the sensor read it, sideways, with an EXIF tag
    // saying how to turn it, and browsers show it turned: the shopper sees it upright,
    // and the tower must too (sideways, a dress reads as something else: README, The
    // built-in model). A damaged EXIF block only loses the turn, not the photo.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).context(undecodable)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The turn an image's EXIF orientation tag asks for (`NoTransforms` without a tag, or
/// with one that cannot be read), read from its header without decoding the pixels.
/// Indexing hashes it with the photo's bytes, so an index built before photos were
/// turned re-embeds exactly the photos that carry a turn (`indexing::vector_hash`).
pub fn exif_orientation(bytes: &[u8]) -> Orientation {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_decoder().ok())
        .and_then(|mut decoder| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

/// Largest image decoded, in pixels (a 40-megapixel photo).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Memory one decode may allocate (40 MP x 4 channels x 16 bits, with room to spare).
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// An image whose declared size is above [`MAX_PIXELS`] (the server answers 413).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTooLarge {
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for ImageTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the image declares {} x {} pixels ({:.0} megapixels); the limit is {} megapixels",
            self.width,
            self.height,
            self.width as f64 * self.height as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        )
    }
}

impl std::error::Error for ImageTooLarge {}

/// Refuses a JPEG or WebP file that was cut short. Their decoders fill a truncated
/// file's missing rows with grey and report success, so a half-downloaded photo would
/// be embedded as if whole. (PNG's decoder already fails on a truncated file.)
fn check_complete(bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // The end-of-image marker FF D9 closes every complete JPEG; inside the
        // compressed data an FF byte is always followed by 00 or a restart marker, so it
        // cannot appear there by chance. Some writers pad after it, so look near the end.
        let tail = &bytes[bytes.len().saturating_sub(4096)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            anyhow::bail!(
                "truncated JPEG: no end-of-image marker ({} bytes; the file was cut short)",
                bytes.len()
            );
        }
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        let declared = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize + 8;
        if bytes.len() < declared {
            anyhow::bail!(
                "truncated WebP: {} of {declared} bytes (the file was cut short)",
                bytes.len()
            );
        }
    }
    Ok(())
}

/// Fits `image` into a `width x height` white canvas, keeping its aspect ratio.
pub fn fit_on_white(image: &DynamicImage, width: u32, height: u32) -> RgbImage {
    fit_on(image, width, height, Rgb([255, 255, 255]))
}

/// Fits `image` into a `width x height` canvas of `background`, keeping its aspect ratio
/// (transparency is still composited onto white, the product photo convention).
pub fn fit_on(image: &DynamicImage, width: u32, height: u32, background: Rgb<u8>) -> RgbImage {
    let (w, h) = image.dimensions();
    let rgb = flatten_on_white(image);
    let (nw, nh) = fit_within((w, h), width, height);
    let resized = if (nw, nh) == (w, h) {
        rgb
    } else {
        Cow::Owned(resize_rgb(&rgb, nw, nh))
    };
    let mut canvas = RgbImage::from_pixel(width, height, background);
    image::imageops::replace(
        &mut canvas,
        &*resized,
        ((width - nw) / 2) as i64,
        ((height - nh) / 2) as i64,
    );
    canvas
}

/// The largest size of `size`'s aspect ratio within `width x height` (at least 1 x 1).
pub fn fit_within((w, h): (u32, u32), width: u32, height: u32) -> (u32, u32) {
    let scale = (width as f64 / w.max(1) as f64).min(height as f64 / h.max(1) as f64);
    (
        ((w as f64 * scale).round() as u32).clamp(1, width.max(1)),
        ((h as f64 * scale).round() as u32).clamp(1, height.max(1)),
    )
}

/// `image` shrunk to fit within `width x height`, aspect ratio kept (transparency
/// composited on white); an image that fits already is returned as it is.
pub fn shrink_within(image: &DynamicImage, width: u32, height: u32) -> Cow<'_, DynamicImage> {
    let (w, h) = image.dimensions();
    if w <= width && h <= height {
        return Cow::Borrowed(image);
    }
    let (nw, nh) = fit_within((w, h), width, height);
    Cow::Owned(DynamicImage::ImageRgb8(resize_rgb(
        &flatten_on_white(image),
        nw,
        nh,
    )))
}

/// `rgb` resized to `width x height` with a triangle filter whose support widens with
/// the scale, so a large photo is area-averaged rather than aliased. By
/// fast_image_resize (SIMD): a 12-megapixel phone photo reaches the canvas in a few
/// milliseconds where `image`'s resize of the same filter takes about 50 (`vitrina
/// bench`, README, Performance).
pub fn resize_rgb(rgb: &RgbImage, width: u32, height: u32) -> RgbImage {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType as Filter, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (w, h) = rgb.dimensions();
    let resized = (w > 0 && h > 0 && width > 0 && height > 0)
        .then(|| ImageRef::new(w, h, rgb.as_raw(), PixelType::U8x3).ok())
        .flatten()
        .and_then(|source| {
            let mut target = Image::new(width, height, PixelType::U8x3);
            let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(Filter::Bilinear));
            Resizer::new().resize(&source, &mut target, &options).ok()?;
            RgbImage::from_raw(width, height, target.into_vec())
        });
    // fast_image_resize refuses only empty images and buffers of the wrong size, which
    // an RgbImage cannot be; `image`'s resize draws the same picture if it ever did.
    resized.unwrap_or_else(|| image::imageops::resize(rgb, width, height, FilterType::Triangle))
}

/// Crops a photo to the box of its pixels darker than `threshold` in some channel, so a
/// white margin (a studio shot's padding, an off-centre product) does not change the
/// framing; an all-white photo is returned whole.
pub fn trim_white(image: &DynamicImage, threshold: u8) -> DynamicImage {
    let rgb = flatten_on_white(image);
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in rgb.enumerate_pixels() {
        if p.0.iter().any(|&c| c < threshold) {
            (x0, y0) = (x0.min(x), y0.min(y));
            (x1, y1) = (x1.max(x + 1), y1.max(y + 1));
        }
    }
    if x0 >= x1 {
        return DynamicImage::ImageRgb8(rgb.into_owned());
    }
    let cropped = image::imageops::crop_imm(&*rgb, x0, y0, x1 - x0, y1 - y0).to_image();
    DynamicImage::ImageRgb8(cropped)
}

/// RGB with any alpha composited onto white; an RGB photo as it is, not copied (a
/// phone photo is 36 MB of pixels).
pub(crate) fn flatten_on_white(image: &DynamicImage) -> Cow<'_, RgbImage> {
    if let Some(rgb) = image.as_rgb8() {
        return Cow::Borrowed(rgb);
    }
    if !image.color().has_alpha() {
        return Cow::Owned(image.to_rgb8());
    }
    let rgba = image.to_rgba8();
    Cow::Owned(RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let Rgba([r, g, b, a]) = *rgba.get_pixel(x, y);
        let blend = |c: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32)) / 255) as u8;
        Rgb([blend(r), blend(g), blend(b)])
    }))
}

/// Pixels scaled to [-1, 1], in height x width x channel order.
pub fn to_unit_range(canvas: &RgbImage) -> Vec<f32> {
    canvas
        .as_raw()
        .iter()
        .map(|&v| v as f32 / 127.5 - 1.0)
        .collect()
}

/// Photos with EXIF orientation tags, for the tests of decoding and of indexing's hash.
#[cfg(test)]
pub(crate) mod fixtures {
    use image::{Rgb, RgbImage};

    /// An EXIF block (little-endian TIFF header, one IFD entry) holding only the
    /// orientation tag (0x0112) with `value` (6: turn 90 degrees clockwise to show).
    pub fn exif_block(value: u8) -> Vec<u8> {
        let mut exif = b"II*\0".to_vec();
        exif.extend_from_slice(&8u32.to_le_bytes());
        exif.extend_from_slice(&1u16.to_le_bytes());
        exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, value, 0, 0, 0]);
        exif.extend_from_slice(&0u32.to_le_bytes());
        exif
    }

    /// A 40x20 photo, dark on its left half, encoded as `format` with `exif`.
    pub fn tagged(format: image::ImageFormat, exif: Vec<u8>) -> Vec<u8> {
        use image::codecs::{jpeg::JpegEncoder, png::PngEncoder};
        use image::ImageEncoder;
        let img = RgbImage::from_fn(40, 20, |x, _| Rgb(if x < 20 { [20; 3] } else { [230; 3] }));
        let mut bytes = Vec::new();
        let (w, h) = img.dimensions();
        let color = image::ExtendedColorType::Rgb8;
        match format {
            image::ImageFormat::Jpeg => {
                let mut encoder = JpegEncoder::new(&mut bytes);
                encoder.set_exif_metadata(exif).unwrap();
                encoder.write_image(img.as_raw(), w, h, color).unwrap();
            }
            _ => {
                let mut encoder = PngEncoder::new(&mut bytes);
                encoder.set_exif_metadata(exif).unwrap();
                encoder.write_image(img.as_raw(), w, h, color).unwrap();
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, RgbaImage};

    #[test]
    fn small_thumbnail_is_centred_without_scaling() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(60, 80, Rgb([10, 20, 30])));
        let out = fit_on_white(&img, 64, 80);
        assert_eq!(out.dimensions(), (64, 80));
        assert_eq!(*out.get_pixel(1, 40), Rgb([255, 255, 255]));
        assert_eq!(*out.get_pixel(2, 0), Rgb([10, 20, 30]));
        assert_eq!(*out.get_pixel(61, 79), Rgb([10, 20, 30]));
        assert_eq!(*out.get_pixel(62, 79), Rgb([255, 255, 255]));
    }

    #[test]
    fn large_wide_photo_is_scaled_to_fit_and_padded_vertically() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(1280, 640, Rgb([200, 0, 0])));
        let out = fit_on_white(&img, 64, 80);
        // 1280x640 -> 64x32, centred at rows 24..56.
        assert_eq!(*out.get_pixel(32, 23), Rgb([255, 255, 255]));
        assert_eq!(*out.get_pixel(32, 24), Rgb([200, 0, 0]));
        assert_eq!(*out.get_pixel(32, 55), Rgb([200, 0, 0]));
        assert_eq!(*out.get_pixel(32, 56), Rgb([255, 255, 255]));
    }

    #[test]
    fn grayscale_and_alpha_become_rgb_on_white() {
        let gray = DynamicImage::ImageLuma8(GrayImage::from_pixel(64, 80, Luma([7])));
        assert_eq!(*fit_on_white(&gray, 64, 80).get_pixel(5, 5), Rgb([7, 7, 7]));
        let mut rgba = RgbaImage::from_pixel(64, 80, Rgba([0, 0, 0, 0]));
        rgba.put_pixel(0, 0, Rgba([0, 0, 0, 255]));
        let out = fit_on_white(&DynamicImage::ImageRgba8(rgba), 64, 80);
        assert_eq!(*out.get_pixel(0, 0), Rgb([0, 0, 0]));
        assert_eq!(*out.get_pixel(1, 1), Rgb([255, 255, 255]));
    }

    #[test]
    fn png_with_alpha_decodes_from_bytes() {
        let mut bytes = Vec::new();
        let rgba = RgbaImage::from_pixel(3, 5, Rgba([255, 0, 0, 128]));
        DynamicImage::ImageRgba8(rgba)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        let decoded = decode_image(&bytes).unwrap();
        let out = fit_on_white(&decoded, 64, 80);
        let Rgb([r, g, b]) = *out.get_pixel(32, 40);
        assert_eq!(r, 255);
        assert!(
            (126..=128).contains(&g) && g == b,
            "half-transparent red on white: {g}"
        );
    }

    #[test]
    fn jpegs_cut_short_are_refused_and_whole_ones_decode() {
        let img = image::RgbImage::from_fn(60, 80, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 3) as u8, ((x + y) * 2) as u8])
        });
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        assert!(decode_image(&jpeg).is_ok());
        for share in [0.5, 0.9, 0.99] {
            let cut = &jpeg[..(jpeg.len() as f64 * share) as usize];
            let err = format!("{:#}", decode_image(cut).unwrap_err());
            assert!(err.contains("truncated JPEG"), "{share}: {err}");
        }
        // Padding after the end marker (some cameras write it) is fine.
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0u8; 100]);
        assert!(decode_image(&padded).is_ok());
    }

    /// fast_image_resize draws what `image`'s triangle resize drew (the filter
    /// preprocessing used before it), on a photo of gradients and fine stripes that
    /// aliasing would show; and a photo within the bounds is not shrunk, while a larger
    /// one keeps its aspect ratio, its transparency on white.
    #[test]
    fn shrinking_matches_image_s_triangle_filter_and_keeps_the_aspect_ratio() {
        let photo = RgbImage::from_fn(1200, 900, |x, y| {
            let stripe = if (x / 3) % 2 == 0 { 60 } else { 0 };
            Rgb([(x / 5) as u8, (y / 4) as u8, (120 + stripe) as u8])
        });
        let ours = resize_rgb(&photo, 64, 48);
        let theirs = image::imageops::resize(&photo, 64, 48, FilterType::Triangle);
        let diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let worst = *diffs.iter().max().unwrap();
        assert!(mean < 0.5 && worst <= 2, "mean {mean:.3}, worst {worst}");
        // The stripes are averaged away (150 = 120 + 60 / 2), not aliased.
        assert!(ours.pixels().all(|p| (148..=152).contains(&p.0[2])));

        let small = DynamicImage::ImageRgb8(RgbImage::new(100, 80));
        assert!(matches!(shrink_within(&small, 128, 160), Cow::Borrowed(_)));
        let wide = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1000, 500, Rgba([0, 0, 0, 0])));
        let shrunk = shrink_within(&wide, 128, 160);
        assert_eq!(shrunk.dimensions(), (128, 64));
        assert_eq!(shrunk.to_rgb8().get_pixel(60, 30).0, [255; 3]);
    }

    /// A photo stored sideways with an EXIF orientation tag (as phones store portrait
    /// photos) is decoded upright, in JPEG and PNG; without the tag, or with a damaged
    /// EXIF block, it is decoded as stored.
    #[test]
    fn photos_are_turned_as_their_exif_orientation_says() {
        use super::fixtures::{exif_block, tagged};
        let dark = |img: &DynamicImage, x, y| img.to_rgb8().get_pixel(x, y).0[0] < 100;
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            // 6: turned 90 degrees clockwise, the stored left half is now the top.
            let upright = decode_image(&tagged(format, exif_block(6))).unwrap();
            assert_eq!(upright.dimensions(), (20, 40), "{format:?}");
            assert!(
                dark(&upright, 10, 5) && !dark(&upright, 10, 35),
                "{format:?}"
            );
            // 3: turned 180 degrees, the dark half is on the right.
            let turned = decode_image(&tagged(format, exif_block(3))).unwrap();
            assert_eq!(turned.dimensions(), (40, 20), "{format:?}");
            assert!(dark(&turned, 35, 10) && !dark(&turned, 5, 10), "{format:?}");
            // 1 (as stored) and a block that is not EXIF at all.
            for exif in [exif_block(1), b"not an exif block".to_vec()] {
                let bytes = tagged(format, exif);
                let as_stored = decode_image(&bytes).unwrap();
                assert_eq!(as_stored.dimensions(), (40, 20), "{format:?}");
                assert!(dark(&as_stored, 5, 10), "{format:?}");
                assert_eq!(exif_orientation(&bytes), Orientation::NoTransforms);
            }
            // The turn, read from the header alone, for indexing's hash.
            let bytes = tagged(format, exif_block(6));
            assert_eq!(
                exif_orientation(&bytes),
                Orientation::Rotate90,
                "{format:?}"
            );
        }
    }

    /// A PNG declaring `w x h` pixels whose data is a few compressed bytes.
    fn bomb_png(w: u32, h: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            png.extend_from_slice(&body);
            png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        };
        let ihdr = [w.to_be_bytes(), h.to_be_bytes()].concat();
        chunk(b"IHDR", &[ihdr.as_slice(), &[8, 2, 0, 0, 0]].concat());
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(b"IEND", &[]);
        png
    }

    #[test]
    fn a_small_file_claiming_a_huge_canvas_is_refused_before_decoding() {
        // A valid PNG declaring 100,000 x 100,000 pixels with a few bytes of data.
        let png = bomb_png(100_000, 100_000);
        let err = decode_image(&png).unwrap_err();
        let too_large = err.downcast_ref::<ImageTooLarge>().expect("typed error");
        assert_eq!((too_large.width, too_large.height), (100_000, 100_000));
        assert!(err.to_string().contains("10000 megapixels"), "{err}");
    }

    #[test]
    fn corrupt_bytes_and_files_give_clear_errors() {
        let err = decode_image(b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap_err();
        assert!(format!("{err:#}").contains("truncated JPEG"), "{err:#}");
        let err = decode_image(b"\x89PNG definitely not a png").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot decode image"),
            "{err:#}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.jpg");
        std::fs::write(&path, b"\xff\xd8\xff\xe0 truncated").unwrap();
        let err = format!("{:#}", load_image(&path).unwrap_err());
        assert!(err.contains("broken.jpg"), "{err}");
        let err = format!(
            "{:#}",
            load_image(&dir.path().join("missing.jpg")).unwrap_err()
        );
        assert!(err.contains("missing.jpg"), "{err}");
    }

    #[test]
    fn trimming_drops_white_margins_and_keeps_all_white_photos_whole() {
        // A 10x6 dark block at (7, 3) on a 30x20 white photo, with one near-white speck.
        let mut photo = RgbImage::from_pixel(30, 20, Rgb([255, 255, 255]));
        for y in 3..9 {
            for x in 7..17 {
                photo.put_pixel(x, y, Rgb([20, 200, 90]));
            }
        }
        photo.put_pixel(28, 18, Rgb([250, 250, 250]));
        let trimmed = trim_white(&DynamicImage::ImageRgb8(photo), 235).to_rgb8();
        assert_eq!(trimmed.dimensions(), (10, 6));
        assert!(trimmed.pixels().all(|p| p.0 == [20, 200, 90]));
        let white = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 5, Rgb([255; 3])));
        assert_eq!(trim_white(&white, 235).dimensions(), (8, 5));
    }

    #[test]
    fn unit_range_maps_black_and_white_to_minus_one_and_one() {
        let mut img = RgbImage::from_pixel(2, 1, Rgb([255, 255, 255]));
        img.put_pixel(0, 0, Rgb([0, 0, 0]));
        assert_eq!(to_unit_range(&img), [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
    }
}
