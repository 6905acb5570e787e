//! A shopper's photo of a product finds the same products whatever its size and framing:
//! the built-in image tower gives (nearly) the same top 10 for a Myntra test-split photo
//! at its catalogue size (60x80) and for a 10x larger copy, re-framed off-centre with a
//! white margin and saved as JPEG, the way a studio shot or phone photo arrives.

use std::collections::BTreeMap;
use std::path::Path;

use image::DynamicImage;
use vitrina::catalog::{Catalog, CatalogSpec, Split};
use vitrina::encoder::preprocess::load_product_image;
use vitrina::encoder::Model;
use vitrina::eval::reframe::{enlarge_and_reframe, OFF_CENTRE};
use vitrina::search::{title_feedback, Feedback, Mode, Ranking, Searcher};
use vitrina::store::{
    Entry, MemoryStore, Snapshot, StoreMeta, StoreWriter, StoredProduct, VectorKind,
};

/// Products searched over and photos used as queries.
const PRODUCTS: usize = 3000;
const QUERIES: usize = 60;

/// Myntra test-split products with their photos and titles in an in-memory store,
/// searched as `search --image` does.
struct Fixture {
    model: Model,
    photos: Vec<DynamicImage>,
    ids: Vec<String>,
    /// Each product's fine category, by id.
    fine: BTreeMap<String, Option<String>>,
    /// The catalogue's stored image vectors, one photo after the other.
    stored: Vec<f32>,
    snapshot: Snapshot,
    /// Photos used as queries, spread over the products.
    queries: Vec<usize>,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml");
    let catalog = Catalog::load(&CatalogSpec::from_file(&path).unwrap()).unwrap();
    let (products, photos): (Vec<_>, Vec<DynamicImage>) = catalog
        .split_products(Split::Test, None)
        .iter()
        .filter_map(|p| Some((p.clone(), load_product_image(p).ok()?)))
        .take(PRODUCTS)
        .unzip();
    assert_eq!(photos.len(), PRODUCTS);
    let model = Model::builtin(None).unwrap();
    let tower = model.image_encoder().unwrap();
    let dim = tower.dim();
    let stored = tower.embed_images(&photos).unwrap().vectors;
    let titles: Vec<&str> = products.iter().map(|p| p.text.as_str()).collect();
    let title_vectors = model.text.embed_texts(&titles).unwrap().vectors;
    let mut store = MemoryStore::new(StoreMeta {
        model: model.id().into(),
        model_dir: None,
        dim,
        kinds: vec![VectorKind::Text, VectorKind::Image],
        catalog: "myntra".into(),
    });
    let ids: Vec<String> = products.iter().map(|p| p.id.clone()).collect();
    let fine = products
        .iter()
        .map(|p| (p.id.clone(), p.fine.clone()))
        .collect();
    let entries = products
        .into_iter()
        .zip(stored.chunks(dim).zip(title_vectors.chunks(dim)))
        .map(|(product, (image, title))| Entry {
            product: StoredProduct {
                product,
                has_image: true,
                content_hash: 0,
            },
            vectors: BTreeMap::from([
                (VectorKind::Image, image.to_vec()),
                (VectorKind::Text, title.to_vec()),
            ]),
        })
        .collect();
    store.upsert(entries).unwrap();
    let step = PRODUCTS / QUERIES;
    Fixture {
        model,
        photos,
        ids,
        fine,
        stored,
        snapshot: store.into_snapshot(),
        queries: (0..QUERIES).map(|q| q * step).collect(),
    }
}

impl Fixture {
    /// The first 10 products in image mode for a query vector, the query photo's own
    /// product left out, with visual feedback and title feedback at these settings.
    fn top10(
        &self,
        searcher: &Searcher,
        query: &[f32],
        own: usize,
        (feedback, titles): (Feedback, f32),
    ) -> Vec<String> {
        let ranking = Ranking {
            feedback: Some(feedback),
            title_feedback: Some(titles),
            ..Ranking::new(Mode::Image, 10)
        };
        searcher
            .rank(query, &ranking, &[self.ids[own].as_str()])
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    /// How many of `hits` share the query product's fine category.
    fn same_kind(&self, own: usize, hits: &[String]) -> usize {
        let kind = &self.fine[&self.ids[own]];
        hits.iter()
            .filter(|id| self.fine.get(*id) == Some(kind))
            .count()
    }
}

#[test]
fn a_photo_ten_times_larger_and_reframed_finds_the_same_top_ten() {
    let fx = fixture();
    let searcher = Searcher::stored_vectors_only(&fx.snapshot);
    let tower = fx.model.image_encoder().unwrap();
    let dim = tower.dim();
    let (photos, stored, queries) = (&fx.photos, &fx.stored, &fx.queries);
    let top10 = |query: &[f32], own: usize, setting| fx.top10(&searcher, query, own, setting);
    // Centred, and off-centre with uneven margins (8% left, 2% right, 6% top, 3% bottom).
    // The goal (#12) is 8 of 10 for both. Measured two ways: the tower alone (the
    // catalogue's stored vector of the 60x80 photo against one view of the large one),
    // and as a shopper searches (both photos uploaded: `embed_query_image`, the mean of
    // six views, `query_views.rs`).
    //
    // One view: the built-in tower (v6) meets the goal for size alone (9.50); re-framed
    // it keeps 6.90 (v1, trained without warping, kept 4.9; v3, without token mixing,
    // 6.15; warping 80% of the photos kept 7.3 but lost held-out precision: README, The
    // built-in model), so that case is held near its measured level, a guard against
    // getting worse. Visual feedback (on by default) keeps both about where they are, as
    // does title feedback (on by default in image mode; 9.23 and 6.65 with both): it
    // re-orders a pool of 100 among many products of one kind, so the exact ten may shift,
    // though the re-framed upload finds its kind of product more often (`eval`'s upload
    // rows, README).
    //
    // Six views: both photos' vectors are averaged over the same nearby framings, which
    // keeps more of the re-framed case's ten (7.53 without feedback, 7.82 with visual
    // feedback, 7.32 with both, against 6.90, 6.87 and 6.65 from one view), short of the
    // goal still; the floors hold them near what was measured. (The few 60x80 photos on a
    // plain grey backdrop are whitened as queries, `backdrop.rs`, and their uploads on a
    // white margin are not: 7.63, 7.93 and 7.25 before.)
    let single = |photo: &DynamicImage| {
        tower
            .embed_images(std::slice::from_ref(photo))
            .unwrap()
            .vectors
    };
    let viewed = |photo: &DynamicImage| tower.embed_query_image(photo).unwrap().ranked().to_vec();
    let settings = [
        ("without", (Feedback::OFF, 0.0)),
        ("with visual", (Feedback::DEFAULT, 0.0)),
        (
            "with visual and title",
            (Feedback::DEFAULT, title_feedback::DEFAULT_WEIGHT),
        ),
    ];
    let mut failed = Vec::new();
    for (what, margins, floors) in [
        ("10x", [0; 4], [8.0, 8.0, 8.0, 8.0, 8.0, 8.0]),
        ("10x re-framed", OFF_CENTRE, [6.5, 6.5, 6.5, 7.4, 7.6, 6.9]),
    ] {
        let large: Vec<DynamicImage> = queries
            .iter()
            .map(|&q| enlarge_and_reframe(&photos[q], 10, margins))
            .collect();
        // (small photo's query vector, large photo's), one view and six.
        let one_view: Vec<(Vec<f32>, Vec<f32>)> = queries
            .iter()
            .zip(&large)
            .map(|(&q, big)| (stored[q * dim..(q + 1) * dim].to_vec(), single(big)))
            .collect();
        let six_views: Vec<(Vec<f32>, Vec<f32>)> = queries
            .iter()
            .zip(&large)
            .map(|(&q, big)| (viewed(&photos[q]), viewed(big)))
            .collect();
        let cases = [("one view", &one_view), ("six views", &six_views)];
        let runs = cases
            .iter()
            .flat_map(|case| settings.iter().map(move |setting| (case, setting)));
        for (((views, pairs), (how, feedback)), floor) in runs.zip(floors) {
            let overlaps: Vec<usize> = queries
                .iter()
                .zip(pairs.iter())
                .map(|(&q, (small, big))| {
                    let small = top10(small, q, *feedback);
                    let big = top10(big, q, *feedback);
                    big.iter().filter(|r| small.contains(r)).count()
                })
                .collect();
            let mean = overlaps.iter().sum::<usize>() as f64 / overlaps.len() as f64;
            let worst = *overlaps.iter().min().unwrap();
            eprintln!(
                "top-10 overlap, 60x80 vs {what}, {views}, {how} feedback: mean {mean:.2}, worst {worst}"
            );
            if mean < floor {
                failed.push(format!(
                    "{what}, {views}, {how} feedback: mean overlap {mean:.2} of 10 (worst {worst}), under {floor}"
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

/// `eval` measures a shopper's upload of each query photo (10x, off-centre, JPEG,
/// embedded afresh from the photo's file) beside the catalogue's own photo, on real
/// Myntra products with the built-in model: every query photo is read and measured, and
/// the upload finds its kind of product far above chance.
#[test]
fn eval_measures_re_framed_uploads_of_the_query_photos() {
    use vitrina::eval::{evaluate, EvalConfig};
    use vitrina::store::Filter;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml");
    let mut catalog = Catalog::load(&CatalogSpec::from_file(&path).unwrap()).unwrap();
    catalog.select(Split::Test, Some(400));
    let model = Model::builtin(None).unwrap();
    let (index, _) = vitrina::indexing::build_in_memory(&catalog, &model).unwrap();
    let searcher = Searcher::new(&index, &model).unwrap();
    let config = EvalConfig {
        split: "test".into(),
        queries: 100,
        seed: 0,
        diversify: Vec::new(),
        sweep_alpha: false,
        sweep_fusion: false,
        sweep_diversity: false,
        sweep_feedback: false,
        filter: Filter::default(),
    };
    let report = evaluate(&searcher, &config).unwrap();
    // No query photo's file was left out (that would be noted).
    assert_eq!(report.photo_query_count, 100);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let names: Vec<&str> = report
        .photo_queries
        .iter()
        .map(|m| m.method.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "photo -> description",
            "photo -> image",
            "photo -> average",
            "re-framed upload -> image",
            "re-framed upload -> average",
            "re-framed upload on grey -> image",
            "re-framed upload on grey -> average"
        ]
    );
    for upload in &report.photo_queries[3..] {
        // Chance for a broad category among these products is under a fifth.
        assert!(
            upload.broad[&10] > 0.6,
            "{}: {:?}",
            upload.method,
            upload.broad
        );
    }
}

/// A backdrop's colour at each pixel of the upload.
type Backdrop<'a> = dyn Fn(u32, u32) -> image::Rgb<u8> + 'a;

/// A shopper photographs a product against a grey wall, a beige table or a studio
/// sweep, not on white. The tower learned products on white and is lost on such a
/// backdrop; search makes a plain backdrop white before it embeds a photo query
/// (`backdrop.rs`), which brings its kind of product back. Measured on the same
/// re-framed 10x uploads, shot on each backdrop: the share of the top 10 (search's
/// defaults) of the query product's fine category, as search embeds the upload, and
/// with the backdrop kept (the same six views, not whitened).
#[test]
fn a_photo_on_a_plain_backdrop_finds_its_kind_of_product() {
    use image::{imageops::FilterType, Rgb};
    use vitrina::encoder::query_views::{mean_direction, views};
    use vitrina::eval::reframe::enlarge_and_reframe_on;

    let fx = fixture();
    let searcher = Searcher::stored_vectors_only(&fx.snapshot);
    let tower = fx.model.image_encoder().unwrap();
    let dim = tower.dim();
    let defaults = (Feedback::DEFAULT, title_feedback::DEFAULT_WEIGHT);
    // Share of the queries' top 10 of their product's kind, for one query vector each.
    let precision = |vectors: &[Vec<f32>]| {
        let hits: usize = fx
            .queries
            .iter()
            .zip(vectors)
            .map(|(&q, v)| fx.same_kind(q, &fx.top10(&searcher, v, q, defaults)))
            .sum();
        hits as f64 / (10 * fx.queries.len()) as f64
    };
    let searched = |photo: &DynamicImage| tower.embed_query_image(photo).unwrap().ranked().to_vec();
    // The views search would cut, from the photo as it is (shrunk to twice the 64x80
    // canvas, as search shrinks it).
    let kept = |photo: &DynamicImage| {
        let small = photo.resize(128, 160, FilterType::Triangle);
        mean_direction(&tower.embed_images(&views(&small)).unwrap().vectors, dim)
    };
    let upload = |q: usize, backdrop: &Backdrop<'_>| {
        enlarge_and_reframe_on(&fx.photos[q], 10, OFF_CENTRE, backdrop)
    };
    let on_white: Vec<Vec<f32>> = fx
        .queries
        .iter()
        .map(|&q| searched(&enlarge_and_reframe(&fx.photos[q], 10, OFF_CENTRE)))
        .collect();
    let white = precision(&on_white);
    eprintln!("fine P@10 of the upload on white: {white:.3}");
    let grain = |x: u32, y: u32| ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 33) as u8;
    let backdrops: [(&str, &Backdrop<'_>); 5] = [
        ("grey", &|_, _| Rgb([170, 170, 170])),
        ("beige", &|_, _| Rgb([222, 205, 180])),
        ("dark slate", &|_, _| Rgb([60, 62, 75])),
        (
            "studio sweep (light grey to grey, top to bottom)",
            &|_, y| {
                let v = (230 - y / 8).max(140) as u8;
                Rgb([v, v, v - 5])
            },
        ),
        ("grainy beige", &|x, y| {
            let g = grain(x, y);
            Rgb([200 + g, 185 + g, 160 + g])
        }),
    ];
    let mut failed = Vec::new();
    for (name, backdrop) in backdrops {
        let photos: Vec<DynamicImage> = fx.queries.iter().map(|&q| upload(q, backdrop)).collect();
        let whitened = precision(&photos.iter().map(searched).collect::<Vec<_>>());
        let as_shot = precision(&photos.iter().map(kept).collect::<Vec<_>>());
        eprintln!("fine P@10 on {name}: {whitened:.3} as search embeds it, {as_shot:.3} with the backdrop kept");
        if whitened < white - 0.1 || whitened < as_shot + 0.15 {
            failed.push(format!(
                "{name}: {whitened:.3} (backdrop kept: {as_shot:.3}, on white: {white:.3})"
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

/// A phone stores a portrait photo sideways, as its sensor read it, with an EXIF tag
/// saying how to turn it; browsers and galleries show it turned, so that is the photo
/// the shopper means. Each re-framed 10x upload is stored turned 90 degrees
/// counter-clockwise with orientation 6 (turn clockwise to show) and decoded as search
/// decodes an upload: it lists what the same upload stored upright lists, and finds its
/// kind of product as often, where the photo searched as stored, sideways, would not.
#[test]
fn a_phone_photo_stored_sideways_is_searched_upright() {
    use image::codecs::jpeg::JpegEncoder;
    use image::ImageEncoder;
    use vitrina::encoder::preprocess::decode_image;

    let fx = fixture();
    let searcher = Searcher::stored_vectors_only(&fx.snapshot);
    let tower = fx.model.image_encoder().unwrap();
    let defaults = (Feedback::DEFAULT, title_feedback::DEFAULT_WEIGHT);
    // Orientation 6 alone, in a little-endian EXIF block.
    let mut exif = b"II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes());
    exif.extend_from_slice(&1u16.to_le_bytes());
    exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    exif.extend_from_slice(&0u32.to_le_bytes());
    let jpeg = |photo: &DynamicImage, exif: Option<&Vec<u8>>| {
        let rgb = photo.to_rgb8();
        let mut bytes = Vec::new();
        let mut encoder = JpegEncoder::new(&mut bytes);
        if let Some(exif) = exif {
            encoder.set_exif_metadata(exif.clone()).unwrap();
        }
        let (w, h) = rgb.dimensions();
        encoder
            .write_image(rgb.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    };
    let top10 = |photo: &DynamicImage, q: usize| {
        let query = tower.embed_query_image(photo).unwrap();
        fx.top10(&searcher, query.ranked(), q, defaults)
    };
    let (mut overlap, mut upright_kind, mut tagged_kind, mut sideways_kind) = (0, 0, 0, 0);
    for &q in &fx.queries {
        let upload = enlarge_and_reframe(&fx.photos[q], 10, OFF_CENTRE);
        let sideways = upload.rotate270();
        let upright = top10(&decode_image(&jpeg(&upload, None)).unwrap(), q);
        let tagged = decode_image(&jpeg(&sideways, Some(&exif))).unwrap();
        assert_eq!(
            (tagged.width(), tagged.height()),
            (upload.width(), upload.height())
        );
        let tagged = top10(&tagged, q);
        let as_stored = top10(&decode_image(&jpeg(&sideways, None)).unwrap(), q);
        overlap += tagged.iter().filter(|id| upright.contains(id)).count();
        upright_kind += fx.same_kind(q, &upright);
        tagged_kind += fx.same_kind(q, &tagged);
        sideways_kind += fx.same_kind(q, &as_stored);
    }
    let n = fx.queries.len() as f64;
    let overlap = overlap as f64 / n;
    let [upright_kind, tagged_kind, sideways_kind] =
        [upright_kind, tagged_kind, sideways_kind].map(|hits| hits as f64 / (10.0 * n));
    eprintln!(
        "sideways upload with its EXIF turn: top-10 overlap with the upright upload {overlap:.2}; \
         fine P@10 {tagged_kind:.3}, upright {upright_kind:.3}, searched sideways {sideways_kind:.3}"
    );
    assert!(overlap >= 9.0, "overlap {overlap:.2}");
    assert!(
        (tagged_kind - upright_kind).abs() <= 0.02,
        "{tagged_kind:.3} against {upright_kind:.3} upright"
    );
    assert!(
        sideways_kind < upright_kind - 0.1,
        "sideways {sideways_kind:.3} against upright {upright_kind:.3}"
    );
}
