//! A shopper's photo seen several ways before it is searched with (test-time
//! augmentation): the photo, a 90% centre crop and a copy on a 6% white margin, each
//! also mirrored, whose six vectors are averaged into one query.
//!
//! Why: an upload is framed as the shopper framed it, not as the catalogue was. The same
//! product photo at 60x80 and as a 10x larger, off-centre JPEG lands a little apart in
//! the image tower's space, because the tower's patches see the product at another scale
//! and offset. Averaging over nearby framings (zoomed in, zoomed out, mirrored, the
//! changes the tower was trained to ignore) centres both photos' vectors on what stays
//! the same, the product: on Myntra the two photos' top 10 lists share 7.6 of 10
//! products with views against 6.9 without (`tests/image_scale.rs`), and the upload
//! finds its kind of product about as often, a little more in average mode (README,
//! The built-in model).
//!
//! The catalogue's own vectors stay one view each, so indexing costs what it did; a
//! photo query costs six tower passes (about 20 ms more for a phone photo), which is why
//! only the built-in tower's family does this, not a ViT such as jina-clip's. The
//! photo's own vector is kept beside the mean: a catalogue photo uploaded as it is
//! still finds its own product first (search puts the catalogue's copies of the query
//! photo first, `Searcher::rank_query`).

use image::{imageops, DynamicImage, GenericImageView, Rgb, RgbImage};

use super::preprocess::flatten_on_white;

/// A photo query's vectors.
#[derive(Debug, Clone)]
pub struct PhotoQuery {
    /// The photo's own vector, as indexing stores a catalogue photo's: search finds the
    /// catalogue's copies of this very photo by it.
    pub own: Vec<f32>,
    /// The unit mean of its views, which search ranks by, when the encoder makes them.
    pub views: Option<Vec<f32>>,
}

impl PhotoQuery {
    /// The vector search ranks by.
    pub fn ranked(&self) -> &[f32] {
        self.views.as_deref().unwrap_or(&self.own)
    }
}

/// Share of each side kept by the zoomed-in view.
pub const CROP: f32 = 0.9;
/// White margin of the zoomed-out view, as a share of each side.
pub const MARGIN: f32 = 0.06;

/// The six views of `photo`: itself, its centre crop and its padded copy, each followed
/// by its mirror image.
pub fn views(photo: &DynamicImage) -> Vec<DynamicImage> {
    [
        photo.clone(),
        centre_crop(photo, CROP),
        on_margin(photo, MARGIN),
    ]
    .into_iter()
    .flat_map(|view| {
        let mirrored = view.fliph();
        [view, mirrored]
    })
    .collect()
}

/// The centre `keep` of each side of `photo` (at least one pixel).
fn centre_crop(photo: &DynamicImage, keep: f32) -> DynamicImage {
    let (w, h) = photo.dimensions();
    let (cw, ch) = (
        ((w as f32 * keep) as u32).max(1),
        ((h as f32 * keep) as u32).max(1),
    );
    photo.crop_imm((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// `photo` centred on white, with a margin of `share` of each side on every side
/// (transparency composited on white, as preprocessing does).
fn on_margin(photo: &DynamicImage, share: f32) -> DynamicImage {
    let (w, h) = photo.dimensions();
    let (mw, mh) = ((w as f32 * share) as u32, (h as f32 * share) as u32);
    let mut canvas = RgbImage::from_pixel(w + 2 * mw, h + 2 * mh, Rgb([255; 3]));
    imageops::replace(&mut canvas, &*flatten_on_white(photo), mw as i64, mh as i64);
    DynamicImage::ImageRgb8(canvas)
}

/// The unit-length mean of `vectors` (rows of `dim`), the query the views make.
pub fn mean_direction(vectors: &[f32], dim: usize) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for row in vectors.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
    }
    super::normalize_rows(&mut mean, dim);
    mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_views_crop_pad_and_mirror_the_photo() {
        // A 50x100 photo, dark on its left half, light grey on its right.
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(50, 100, |x, _| {
            Rgb(if x < 25 { [10; 3] } else { [200; 3] })
        }));
        let views = views(&photo);
        let sizes: Vec<_> = views.iter().map(|v| v.dimensions()).collect();
        assert_eq!(
            sizes,
            [
                (50, 100),
                (50, 100),
                (45, 90),
                (45, 90),
                (56, 112),
                (56, 112)
            ]
        );
        let px = |v: &DynamicImage, x, y| v.to_rgb8().get_pixel(x, y).0;
        assert_eq!(px(&views[0], 0, 50), [10; 3]);
        // Mirrored: the dark half is on the right.
        assert_eq!(px(&views[1], 0, 50), [200; 3]);
        assert_eq!(px(&views[1], 49, 50), [10; 3]);
        // The crop keeps the centre, so both halves, split at its middle.
        assert_eq!(px(&views[2], 0, 45), [10; 3]);
        assert_eq!(px(&views[2], 44, 45), [200; 3]);
        // The margin is white and the photo sits inside it.
        assert_eq!(px(&views[4], 1, 1), [255; 3]);
        assert_eq!(px(&views[4], 3, 50), [10; 3]);
        assert_eq!(px(&views[5], 1, 50), [255; 3]);
        assert_eq!(px(&views[5], 3, 50), [200; 3]);
        assert_eq!(px(&views[5], 52, 50), [10; 3]);
    }

    #[test]
    fn a_transparent_photo_keeps_a_white_margin_and_background() {
        let photo = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(20, 20, |x, _| {
            image::Rgba(if x < 10 {
                [0, 0, 0, 0]
            } else {
                [30, 60, 90, 255]
            })
        }));
        let padded = views(&photo)[4].to_rgb8();
        assert_eq!(padded.dimensions(), (22, 22));
        assert_eq!(padded.get_pixel(0, 0).0, [255; 3]);
        assert_eq!(padded.get_pixel(5, 10).0, [255; 3]);
        assert_eq!(padded.get_pixel(15, 10).0, [30, 60, 90]);
    }

    #[test]
    fn a_one_pixel_photo_still_has_six_views() {
        let photo = DynamicImage::ImageRgb8(RgbImage::new(1, 1));
        assert!(views(&photo)
            .iter()
            .all(|v| v.width() >= 1 && v.height() >= 1));
    }

    #[test]
    fn the_query_is_the_unit_mean_of_the_views() {
        let q = mean_direction(&[1.0, 0.0, 0.0, 1.0], 2);
        let half = 0.5f32.sqrt();
        assert!((q[0] - half).abs() < 1e-6 && (q[1] - half).abs() < 1e-6);
        // Views that cancel give a zero query rather than NaNs.
        assert_eq!(mean_direction(&[1.0, 0.0, -1.0, 0.0], 2), [0.0, 0.0]);
    }
}
