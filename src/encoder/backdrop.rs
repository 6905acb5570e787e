//! The plain backdrop behind a product in a photo: found by growing a region inward from
//! the photo's edge, and made white for a photo query.
//!
//! Why: catalogue photos are shot on white, and the image tower learned products on
//! white; a shopper photographs a product on a table, a bed sheet or a grey wall. A
//! backdrop of one colour (or a smooth gradient, a studio sweep, a soft shadow) is
//! found as the pixels reachable from the photo's border through small steps of
//! colour, starting from border pixels of the border's dominant colour, so a product
//! that touches the edge is not taken for backdrop unless it is that colour. A busy
//! scene (its border is not mostly one colour) is left as it is.
//!
//! Written here rather than taken from a crate: `image` has no region growing, and
//! `imageproc`'s flood fill fills one exact colour, not a gradient or JPEG's noise.

use std::collections::VecDeque;

use image::{DynamicImage, Rgb, RgbImage};

use super::preprocess::flatten_on_white;

/// Largest difference in any channel between neighbouring backdrop pixels: a gradient
/// or JPEG's noise steps less, a product's edge more.
pub const STEP: u8 = 10;
/// Largest difference in any channel between a backdrop pixel and the border pixel its
/// region grew from, when a photo query's backdrop is made white: a backdrop's light
/// falls off less across the photo, while a product, however smoothly its edge blends
/// into the backdrop (an enlarged photo's edges are soft), differs more somewhere.
pub const DRIFT: u8 = 40;
/// Largest difference in any channel between a border pixel and the border's dominant
/// colour for the pixel to start the backdrop.
pub const SEED: u8 = 24;
/// Largest difference in any channel between one side's median colour and the whole
/// border's for that side to start the backdrop: a gradient from top to bottom differs
/// less, a side mostly covered by the product more.
pub const SIDES: u8 = 64;
/// Share of the border that must start the backdrop for the photo to have a plain one.
pub const PLAIN_BORDER: f32 = 0.6;
/// A backdrop whose dominant colour is at least this light in every channel is white
/// already, as catalogue photos are.
pub const WHITE: u8 = 235;
/// A backdrop covering more of the photo than this leaves no product to see: the photo
/// is kept as it is.
pub const MAX_SHARE: f32 = 0.97;

/// The plain backdrop of a photo: which pixels (row-major) and its dominant colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Backdrop {
    pub width: u32,
    pub height: u32,
    pub mask: Vec<bool>,
    pub colour: [u8; 3],
}

impl Backdrop {
    /// Share of the photo that is backdrop.
    pub fn share(&self) -> f32 {
        self.mask.iter().filter(|&&m| m).count() as f32 / self.mask.len().max(1) as f32
    }
}

/// A pixel's (x, y).
type Pixel = (u32, u32);

fn close(a: &Rgb<u8>, b: &Rgb<u8>, tolerance: u8) -> bool {
    a.0.iter()
        .zip(b.0)
        .all(|(&x, y)| x.abs_diff(y) <= tolerance)
}

/// The per-channel median of `pixels`.
fn median(rgb: &RgbImage, pixels: &[Pixel]) -> Rgb<u8> {
    let mut channels = [Vec::new(), Vec::new(), Vec::new()];
    for &(x, y) in pixels {
        for (c, v) in channels.iter_mut().zip(rgb.get_pixel(x, y).0) {
            c.push(v);
        }
    }
    Rgb(channels.map(|mut c| {
        c.sort_unstable();
        c.get(c.len() / 2).copied().unwrap_or(255)
    }))
}

/// The border pixels of the backdrop's colour: those within [`SEED`] of their own side's
/// median colour (each side apart, so that a gradient's light top and dark bottom both
/// count), and the median of all of them, the backdrop's colour. A side whose median
/// is further than [`SIDES`] from the whole border's is mostly product (a product
/// running off that edge) and starts nothing. `None` when fewer than [`PLAIN_BORDER`] of
/// the border are of the backdrop's colour: no plain backdrop.
fn seeds(rgb: &RgbImage) -> Option<(Vec<Pixel>, Rgb<u8>)> {
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let sides: [Vec<Pixel>; 4] = [
        (0..w).map(|x| (x, 0)).collect(),
        (0..w).map(|x| (x, h - 1)).collect(),
        (0..h).map(|y| (0, y)).collect(),
        (0..h).map(|y| (w - 1, y)).collect(),
    ];
    let whole = median(rgb, &sides.concat());
    let mut seeds: Vec<Pixel> = Vec::with_capacity(2 * (w as usize + h as usize));
    for side in &sides {
        let colour = median(rgb, side);
        if !close(&colour, &whole, SIDES) {
            continue;
        }
        seeds.extend(
            side.iter()
                .filter(|&&(x, y)| close(rgb.get_pixel(x, y), &colour, SEED)),
        );
    }
    seeds.sort_unstable();
    seeds.dedup();
    let border = (2 * (w as usize + h as usize)).saturating_sub(4).max(1);
    if (seeds.len() as f32) < PLAIN_BORDER * border as f32 {
        return None;
    }
    let colour = median(rgb, &seeds);
    Some((seeds, colour))
}

/// The photo's plain backdrop, or `None` when its border is not mostly one colour (a
/// busy scene, or a product filling the frame): the pixels reached from the border's
/// pixels of the backdrop's colour through steps of at most [`STEP`], each within
/// `drift` of the border pixel it was reached from.
pub fn find(rgb: &RgbImage, drift: u8) -> Option<Backdrop> {
    let (seeds, colour) = seeds(rgb)?;
    Some(grow(rgb, seeds, colour, drift))
}

/// The backdrop grown from `seeds` (see [`find`]).
fn grow(rgb: &RgbImage, seeds: Vec<Pixel>, colour: Rgb<u8>, drift: u8) -> Backdrop {
    let (w, h) = rgb.dimensions();
    let index = |x: u32, y: u32| y as usize * w as usize + x as usize;
    let mut mask = vec![false; w as usize * h as usize];
    let mut queue = VecDeque::new();
    for (x, y) in seeds {
        mask[index(x, y)] = true;
        queue.push_back((x, y, *rgb.get_pixel(x, y)));
    }
    while let Some((x, y, seed)) = queue.pop_front() {
        let here = rgb.get_pixel(x, y);
        let neighbours = [
            (x.wrapping_sub(1), y),
            (x + 1, y),
            (x, y.wrapping_sub(1)),
            (x, y + 1),
        ];
        for (nx, ny) in neighbours {
            if nx >= w || ny >= h || mask[index(nx, ny)] {
                continue;
            }
            let next = rgb.get_pixel(nx, ny);
            if close(next, here, STEP) && close(next, &seed, drift) {
                mask[index(nx, ny)] = true;
                queue.push_back((nx, ny, seed));
            }
        }
    }
    Backdrop {
        width: w,
        height: h,
        mask,
        colour: colour.0,
    }
}

/// `photo` with its plain, non-white backdrop made white, as the catalogue's photos
/// are; `None` when there is nothing to change (the backdrop is white already, the
/// photo has no plain backdrop, or the backdrop would be all of it).
pub fn whiten(photo: &DynamicImage) -> Option<DynamicImage> {
    let rgb = flatten_on_white(photo);
    let (seeds, colour) = seeds(&rgb)?;
    // A catalogue-like photo on white, the common case, is known from its border alone.
    if colour.0.iter().all(|&c| c >= WHITE) {
        return None;
    }
    let backdrop = grow(&rgb, seeds, colour, DRIFT);
    if backdrop.share() > MAX_SHARE {
        return None;
    }
    let mut rgb = rgb.into_owned();
    paint(&mut rgb, &backdrop, |_, _| Rgb([255; 3]));
    Some(DynamicImage::ImageRgb8(rgb))
}

/// Sets every backdrop pixel of `rgb` to `colour(x, y)`.
pub fn paint(rgb: &mut RgbImage, backdrop: &Backdrop, colour: impl Fn(u32, u32) -> Rgb<u8>) {
    if rgb.dimensions() != (backdrop.width, backdrop.height) {
        return;
    }
    for (x, y, pixel) in rgb.enumerate_pixels_mut() {
        if backdrop.mask[y as usize * backdrop.width as usize + x as usize] {
            *pixel = colour(x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark 20x30 product in the middle of a 40x50 photo on `backdrop`.
    fn product_on(backdrop: impl Fn(u32, u32) -> Rgb<u8>) -> RgbImage {
        RgbImage::from_fn(40, 50, |x, y| {
            if (10..30).contains(&x) && (10..40).contains(&y) {
                Rgb([40, 20, 120])
            } else {
                backdrop(x, y)
            }
        })
    }

    /// A 40x50 photo on grey whose product spans columns `xs` from row 20 down, running
    /// off the bottom edge.
    fn off_the_bottom(xs: std::ops::Range<u32>) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(40, 50, |x, y| {
            if xs.contains(&x) && y >= 20 {
                Rgb([40, 20, 120])
            } else {
                Rgb([150, 150, 150])
            }
        }))
    }

    #[test]
    fn a_grey_backdrop_becomes_white_and_the_product_is_kept() {
        let photo = product_on(|_, _| Rgb([150, 150, 150]));
        let out = whiten(&DynamicImage::ImageRgb8(photo)).unwrap().to_rgb8();
        assert_eq!(out.get_pixel(0, 0).0, [255; 3]);
        assert_eq!(out.get_pixel(35, 45).0, [255; 3]);
        assert_eq!(out.get_pixel(20, 25).0, [40, 20, 120]);
    }

    #[test]
    fn a_gradient_backdrop_is_followed_to_the_product() {
        // A studio sweep: from light grey at the top to a darker beige at the bottom.
        let photo = product_on(|_, y| Rgb([200 - 2 * y as u8, 190 - 2 * y as u8, 170]));
        let backdrop = find(&photo, DRIFT).unwrap();
        let inside = |x: u32, y: u32| backdrop.mask[(y * 40 + x) as usize];
        assert!(inside(0, 0) && inside(39, 49) && inside(5, 25));
        assert!(!inside(20, 25));
        assert!((backdrop.share() - (1.0 - 600.0 / 2000.0)).abs() < 1e-6);
    }

    #[test]
    fn a_soft_edge_does_not_let_the_backdrop_into_the_product() {
        // A dark disc whose edge fades into the grey backdrop over 20 pixels, in steps
        // of under STEP: the backdrop stops where the product has drifted too far.
        let photo = RgbImage::from_fn(80, 80, |x, y| {
            let r = ((x as f32 - 40.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt();
            let v = (20.0 + (r - 10.0).clamp(0.0, 20.0) / 20.0 * 150.0) as u8;
            Rgb([v, v, v])
        });
        let backdrop = find(&photo, DRIFT).unwrap();
        let inside = |x: u32, y: u32| backdrop.mask[(y * 80 + x) as usize];
        assert!(inside(0, 0) && inside(79, 40));
        assert!(!inside(40, 40) && !inside(40, 25));
    }

    #[test]
    fn a_white_backdrop_or_a_busy_scene_is_left_alone() {
        let white = product_on(|_, _| Rgb([255; 3]));
        assert_eq!(whiten(&DynamicImage::ImageRgb8(white)), None);
        // Stripes of strongly different colours: no plain backdrop.
        let busy = product_on(|x, _| Rgb(if x % 2 == 0 { [0, 200, 0] } else { [200, 0, 0] }));
        assert_eq!(find(&busy, DRIFT), None);
        assert_eq!(whiten(&DynamicImage::ImageRgb8(busy)), None);
    }

    #[test]
    fn a_product_touching_the_edge_is_not_taken_for_backdrop() {
        // The product runs off the bottom edge; its border pixels are not the backdrop's
        // colour, so the fill does not start in it.
        let out = whiten(&off_the_bottom(10..30)).unwrap().to_rgb8();
        assert_eq!(out.get_pixel(20, 49).0, [40, 20, 120]);
        assert_eq!(out.get_pixel(0, 49).0, [255; 3]);
    }

    #[test]
    fn a_side_mostly_covered_by_the_product_starts_nothing() {
        // The product covers most of the bottom edge, so that side's median is the
        // product's colour; the other three sides find the backdrop.
        let out = whiten(&off_the_bottom(2..38)).unwrap().to_rgb8();
        assert_eq!(out.get_pixel(20, 49).0, [40, 20, 120]);
        assert_eq!(out.get_pixel(20, 30).0, [40, 20, 120]);
        assert_eq!(out.get_pixel(0, 49).0, [255; 3]);
        assert_eq!(out.get_pixel(20, 5).0, [255; 3]);
    }

    #[test]
    fn a_photo_of_one_colour_or_one_pixel_is_kept() {
        let flat = RgbImage::from_pixel(8, 8, Rgb([120, 30, 30]));
        assert_eq!(whiten(&DynamicImage::ImageRgb8(flat)), None);
        let one = RgbImage::from_pixel(1, 1, Rgb([120, 30, 30]));
        assert_eq!(whiten(&DynamicImage::ImageRgb8(one)), None);
        assert_eq!(find(&RgbImage::new(0, 0), DRIFT), None);
    }
}
