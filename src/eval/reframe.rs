//! A shopper's upload made from a catalogue photo: much larger, off-centre on a white
//! margin, and JPEG-compressed, the way a studio shot or phone photo arrives. The scale
//! test and the trainer's held-out figures both measure whether such a photo finds the
//! same top 10 as the catalogue's thumbnail; `eval` also shoots it against a grey
//! backdrop.

use image::{imageops, DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::encoder::backdrop;

/// Uneven white margins (left, right, top, bottom, in percent of the side): the
/// re-framed case of #12's goal.
pub const OFF_CENTRE: [u32; 4] = [8, 2, 6, 3];

/// How far from the white of the margin the white behind the product may be to take the
/// backdrop's colour: JPEG's noise on a catalogue photo's white, not a white product's
/// shading.
const WHITE_DRIFT: u8 = 12;

/// The plain grey of the backdrop upload: a photo taken against a grey wall or table.
pub const GREY_BACKDROP: [u8; 3] = [170, 170, 170];

/// `photo` enlarged `factor` times (bicubic), placed on a white canvas with `margins`
/// (left, right, top, bottom, in percent of the enlarged side), and round-tripped
/// through JPEG at the encoder's default quality.
pub fn enlarge_and_reframe(photo: &DynamicImage, factor: u32, margins: [u32; 4]) -> DynamicImage {
    jpeg_round_trip(enlarge_on_white(photo, factor, margins))
}

/// The same upload shot against a plain backdrop instead of white: its white
/// background and margins, as far as they reach from the edge ([`backdrop::find`],
/// within [`WHITE_DRIFT`] of white), take the colour `backdrop(x, y)` (one colour, or a
/// gradient) before the JPEG round trip.
pub fn enlarge_and_reframe_on(
    photo: &DynamicImage,
    factor: u32,
    margins: [u32; 4],
    backdrop: impl Fn(u32, u32) -> Rgb<u8>,
) -> DynamicImage {
    let mut canvas = enlarge_on_white(photo, factor, margins);
    if let Some(found) = backdrop::find(&canvas, WHITE_DRIFT) {
        backdrop::paint(&mut canvas, &found, backdrop);
    }
    jpeg_round_trip(canvas)
}

fn enlarge_on_white(photo: &DynamicImage, factor: u32, margins: [u32; 4]) -> RgbImage {
    let big = imageops::resize(
        &photo.to_rgb8(),
        photo.width() * factor,
        photo.height() * factor,
        imageops::FilterType::CatmullRom,
    );
    let (w, h) = big.dimensions();
    let [left, right, top, bottom] = margins;
    let (left, right, top, bottom) = (
        w * left / 100,
        w * right / 100,
        h * top / 100,
        h * bottom / 100,
    );
    let mut canvas = RgbImage::from_pixel(w + left + right, h + top + bottom, Rgb([255; 3]));
    imageops::replace(&mut canvas, &big, left as i64, top as i64);
    canvas
}

fn jpeg_round_trip(canvas: RgbImage) -> DynamicImage {
    let mut jpeg = Vec::new();
    let encoded = canvas.write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg);
    // Encoding an RGB buffer to memory does not fail; if it ever did, the photo is
    // still enlarged and re-framed.
    match encoded.and_then(|_| image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg)) {
        Ok(photo) => photo,
        Err(_) => DynamicImage::ImageRgb8(canvas),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_enlarged_and_placed_inside_its_margins() {
        let photo = RgbImage::from_pixel(10, 20, Rgb([0, 0, 0]));
        let out = enlarge_and_reframe(&DynamicImage::ImageRgb8(photo), 10, [10, 0, 5, 5]);
        assert_eq!((out.width(), out.height()), (100 + 10, 200 + 10 + 10));
        let rgb = out.to_rgb8();
        // White margin on the left and top, the dark product from (10, 10) on.
        assert!(rgb.get_pixel(2, 100).0.iter().all(|&c| c > 240));
        assert!(rgb.get_pixel(50, 3).0.iter().all(|&c| c > 240));
        assert!(rgb.get_pixel(60, 100).0.iter().all(|&c| c < 15));
    }

    #[test]
    fn the_backdrop_upload_is_grey_where_the_white_was() {
        // A dark product on white, inside a white frame of its own.
        let photo = RgbImage::from_fn(10, 20, |x, y| {
            if (3..7).contains(&x) && (5..15).contains(&y) {
                Rgb([0, 0, 0])
            } else {
                Rgb([255; 3])
            }
        });
        let out = enlarge_and_reframe_on(
            &DynamicImage::ImageRgb8(photo),
            10,
            [10, 0, 5, 5],
            |_, _| Rgb(GREY_BACKDROP),
        );
        let rgb = out.to_rgb8();
        let grey = |p: &Rgb<u8>| p.0.iter().all(|&c| c.abs_diff(170) < 12);
        // The margin and the photo's own white are grey; the product is still dark.
        assert!(grey(rgb.get_pixel(2, 100)));
        assert!(grey(rgb.get_pixel(20, 30)));
        assert!(rgb.get_pixel(60, 110).0.iter().all(|&c| c < 15));
    }
}
