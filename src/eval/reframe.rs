//! A shopper's upload made from a catalogue photo: much larger, off-centre on a white
//! margin, and JPEG-compressed, the way a studio shot or phone photo arrives. The scale
//! test and the trainer's held-out figures both measure whether such a photo finds the
//! same top 10 as the catalogue's thumbnail.

use image::{imageops, DynamicImage, ImageFormat, Rgb, RgbImage};

/// Uneven white margins (left, right, top, bottom, in percent of the side): the
/// re-framed case of #12's goal.
pub const OFF_CENTRE: [u32; 4] = [8, 2, 6, 3];

/// `photo` enlarged `factor` times (bicubic), placed on a white canvas with `margins`
/// (left, right, top, bottom, in percent of the enlarged side), and round-tripped
/// through JPEG at the encoder's default quality.
pub fn enlarge_and_reframe(photo: &DynamicImage, factor: u32, margins: [u32; 4]) -> DynamicImage {
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
    let mut jpeg = Vec::new();
    let encoded = DynamicImage::ImageRgb8(canvas.clone())
        .write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg);
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
}
