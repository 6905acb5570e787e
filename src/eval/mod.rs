//! Evaluation: the reference experiment (random product titles as queries, precision@k
//! of category match, broad and fine) for every search type, the keyword baseline
//! beside them, and what diversification costs and buys.
//!
//! A query is a product's title; its own product is excluded from its results. The
//! query vector is the product's stored text vector, which is exactly what embedding
//! the title again would give (same model, same text), at no cost.

pub mod metrics;
mod plot;
pub mod reframe;
mod report;

pub use plot::{plot_precision, plot_tradeoff};
pub use report::{precision_csv, results_markdown};

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::encoder::preprocess::load_product_image;
use crate::search::keyword::Tfidf;
use crate::search::{
    syntax, Diversify, Feedback, Fusion, FusionMethod, Mode, ParsedQuery, Query, Ranking, Searcher,
};
use crate::store::{Filter, Hit, Store, StoredProduct, VectorKind};
use metrics::precision_at_k;

/// The reference experiment's cut-offs.
pub const KS: [usize; 4] = [10, 20, 50, 100];
/// Near-duplicate threshold on image cosine similarity.
pub const NEAR_DUPLICATE: f32 = 0.97;

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalConfig {
    /// Which split the store holds (for the report).
    pub split: String,
    pub queries: usize,
    pub seed: u64,
    /// Diversification variants run beside each plain search type.
    pub diversify: Vec<Diversify>,
    pub sweep_alpha: bool,
    /// Also measure hybrid mode for each fusion method and keyword weight.
    #[serde(default)]
    pub sweep_fusion: bool,
    /// Also measure the precision/variety trade-off of every diversification method
    /// over its parameter range, in the default mode.
    #[serde(default)]
    pub sweep_diversity: bool,
    /// Also measure visual feedback at each depth and query weight.
    #[serde(default)]
    pub sweep_feedback: bool,
    /// Evaluate within the products that pass this filter: queries are drawn from them
    /// and every method searches only them.
    #[serde(skip_serializing_if = "Filter::is_empty")]
    pub filter: Filter,
}

/// Top-10 variety. The visual figures need image vectors (`None` without them).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Variety {
    /// Mean pairwise cosine distance of the top-10 image vectors.
    pub visual_distance: Option<f64>,
    /// Distinct fine categories in the top 10.
    pub distinct_fine: f64,
    /// Pairs in the top 10 whose images have cosine > 0.97.
    pub near_duplicate_pairs: Option<f64>,
}

/// One method's figures, averaged over queries.
#[derive(Debug, Clone, Serialize)]
pub struct MethodFigures {
    /// "keyword", "description", "image", "average", with "+kmeans"/"+mmr(l)" if diversified.
    pub method: String,
    pub mode: Option<Mode>,
    pub diversify: String,
    /// k -> precision@k, broad category.
    pub broad: BTreeMap<usize, f64>,
    /// k -> precision@k, fine category.
    pub fine: BTreeMap<usize, f64>,
    pub variety: Variety,
    /// Ranking time per query (exact scan, and diversification if any), milliseconds.
    pub ms_per_query: f64,
}

/// Precision@10 at one product-side text weight.
#[derive(Debug, Clone, Serialize)]
pub struct AlphaPoint {
    pub alpha: f32,
    pub broad: f64,
    pub fine: f64,
}

/// Precision@10 of a text-query ranking at one fusion and boost setting.
#[derive(Debug, Clone, Serialize)]
pub struct FusionPoint {
    pub mode: Mode,
    /// "rrf(0.5)" etc. for hybrid mode.
    pub fusion: Option<String>,
    pub boost: f32,
    pub broad: f64,
    pub fine: f64,
}

/// Precision@10 of one kind of query in one mode at one feedback setting (visual and
/// title feedback).
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackPoint {
    /// "titles" or "photos".
    pub queries: &'static str,
    pub mode: Mode,
    pub depth: usize,
    pub query_weight: f32,
    /// Title feedback's weight (0: off).
    pub title_weight: f32,
    pub broad: f64,
    pub fine: f64,
}

/// Feedback depths and query weights `--sweep-feedback` measures.
const FEEDBACK_DEPTHS: [usize; 4] = [3, 5, 10, 20];
const FEEDBACK_WEIGHTS: [f32; 3] = [0.5, 0.25, 0.1];
/// Title feedback weights `--sweep-feedback` measures, with visual feedback's default.
const TITLE_WEIGHTS: [f32; 4] = [0.25, 0.5, 1.0, 2.0];

/// Everything `vitrina eval` measured, with its parameters.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub catalog: String,
    pub split: String,
    pub model: String,
    pub products: usize,
    pub products_with_image: usize,
    pub queries: usize,
    pub seed: u64,
    pub config: EvalConfig,
    pub methods: Vec<MethodFigures>,
    pub alpha_sweep: Vec<AlphaPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fusion_sweep: Vec<FusionPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feedback_sweep: Vec<FeedbackPoint>,
    /// The same figures with products' own photos as queries (stored image vectors;
    /// the query's product excluded), per vector mode; then the same photos as a
    /// shopper's re-framed upload of them, on white and on a grey backdrop (image and
    /// average mode), when the model and the photos' files are at hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub photo_queries: Vec<MethodFigures>,
    /// `--sweep-diversity`: the default mode undiversified, then each method and setting.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diversity_curve: Vec<MethodFigures>,
    /// How many photo queries were drawn (seeded as the title queries).
    pub photo_query_count: usize,
    /// Why a part was not run (e.g. the catalogue has no images).
    pub notes: Vec<String>,
}

/// Per-query accumulation of one method's figures.
struct Tally {
    broad: BTreeMap<usize, f64>,
    fine: BTreeMap<usize, f64>,
    distinct_fine: f64,
    visual_distance: f64,
    near_duplicate_pairs: f64,
    seconds: f64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            broad: KS.iter().map(|&k| (k, 0.0)).collect(),
            fine: KS.iter().map(|&k| (k, 0.0)).collect(),
            distinct_fine: 0.0,
            visual_distance: 0.0,
            near_duplicate_pairs: 0.0,
            seconds: 0.0,
        }
    }

    fn add(&mut self, products: &Products, query: &StoredProduct, hits: &[Hit]) -> Result<()> {
        let q = &query.product;
        let found: Vec<&StoredProduct> = hits.iter().filter_map(|h| products.get(&h.id)).collect();
        let broad: Vec<Option<&str>> = found.iter().map(|p| p.product.broad.as_deref()).collect();
        let fine: Vec<Option<&str>> = found.iter().map(|p| p.product.fine.as_deref()).collect();
        for &k in &KS {
            if let Some(b) = &q.broad {
                *self.broad.get_mut(&k).unwrap() += precision_at_k(b, &broad, k);
            }
            if let Some(f) = &q.fine {
                *self.fine.get_mut(&k).unwrap() += precision_at_k(f, &fine, k);
            }
        }
        let top: Vec<&StoredProduct> = found.iter().take(10).copied().collect();
        let distinct: std::collections::HashSet<&str> = top
            .iter()
            .filter_map(|p| p.product.fine.as_deref())
            .collect();
        self.distinct_fine += distinct.len() as f64;
        if products.store.meta().kinds.contains(&VectorKind::Image) {
            let ids: Vec<&str> = top.iter().filter(|p| p.has_image).map(|p| p.id()).collect();
            let vectors = products.store.vectors(VectorKind::Image, &ids)?;
            let with_image: Vec<&[f32]> = vectors.iter().flatten().map(Vec::as_slice).collect();
            let (mut distance, mut pairs, mut dups) = (0.0, 0usize, 0usize);
            for a in 0..with_image.len() {
                for b in a + 1..with_image.len() {
                    let cos = crate::store::scan::dot(with_image[a], with_image[b]);
                    distance += (1.0 - cos) as f64;
                    pairs += 1;
                    dups += usize::from(cos > NEAR_DUPLICATE);
                }
            }
            if pairs > 0 {
                self.visual_distance += distance / pairs as f64;
            }
            self.near_duplicate_pairs += dups as f64;
        }
        Ok(())
    }

    fn finish(
        mut self,
        method: String,
        mode: Option<Mode>,
        diversify: &Diversify,
        n: usize,
        has_images: bool,
    ) -> MethodFigures {
        let n = n.max(1) as f64;
        self.broad.values_mut().for_each(|v| *v /= n);
        self.fine.values_mut().for_each(|v| *v /= n);
        MethodFigures {
            method,
            mode,
            diversify: diversify.label(),
            broad: self.broad,
            fine: self.fine,
            variety: Variety {
                visual_distance: has_images.then_some(self.visual_distance / n),
                distinct_fine: self.distinct_fine / n,
                near_duplicate_pairs: has_images.then_some(self.near_duplicate_pairs / n),
            },
            ms_per_query: self.seconds * 1e3 / n,
        }
    }
}

/// The store's products, by id, for judging results.
struct Products<'a> {
    store: &'a dyn Store,
    by_id: HashMap<&'a str, &'a StoredProduct>,
}

impl Products<'_> {
    fn get(&self, id: &str) -> Option<&StoredProduct> {
        self.by_id.get(id).copied()
    }
}

/// Draws the queries: a seeded sample of products that have both categories and pass
/// `filter` (positions in `products`).
pub fn draw_queries(
    products: &[StoredProduct],
    count: usize,
    seed: u64,
    filter: &Filter,
) -> Vec<usize> {
    draw(products, count, seed, |p| filter.matches(p))
}

/// Draws photo queries: as [`draw_queries`], among products with a usable image.
pub fn draw_photo_queries(
    products: &[StoredProduct],
    count: usize,
    seed: u64,
    filter: &Filter,
) -> Vec<usize> {
    draw(products, count, seed, |p| p.has_image && filter.matches(p))
}

fn draw(
    products: &[StoredProduct],
    count: usize,
    seed: u64,
    keep: impl Fn(&StoredProduct) -> bool,
) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..products.len())
        .filter(|&i| {
            let p = &products[i].product;
            p.broad.is_some() && p.fine.is_some() && keep(&products[i])
        })
        .collect();
    candidates.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    candidates.truncate(count);
    candidates
}

/// Each photo query's product photo read from its file and made a shopper's upload of
/// it by `make` (such as [`reframe::enlarge_and_reframe`]: 10x, off-centre, JPEG),
/// embedded by the searcher's model; products whose file cannot be read are left out.
fn uploads(
    searcher: &Searcher,
    all: &[StoredProduct],
    photo: &[usize],
    make: impl Fn(&image::DynamicImage) -> image::DynamicImage + Sync,
) -> Result<Vec<(usize, Vec<f32>)>> {
    use rayon::prelude::*;
    let mut uploads = Vec::new();
    // In chunks, so that no more than a chunk of 10x photos is held at once.
    for chunk in photo.chunks(64) {
        let made: Vec<(usize, image::DynamicImage)> = chunk
            .par_iter()
            .filter_map(|&q| Some((q, make(&load_product_image(&all[q].product).ok()?))))
            .collect();
        for (q, upload) in made {
            let query = Query {
                image: Some(upload),
                ..Query::default()
            };
            uploads.push((q, searcher.embed(&query)?));
        }
    }
    Ok(uploads)
}

/// Runs the experiment on a store with its own model.
pub fn evaluate(searcher: &Searcher, config: &EvalConfig) -> Result<EvalReport> {
    let store = searcher.store;
    let all = store.products()?;
    ensure!(
        all.len() > 1,
        "the index holds {} products; evaluation needs at least 2",
        all.len()
    );
    let products = Products {
        store,
        by_id: all.iter().map(|p| (p.id(), p)).collect(),
    };
    if !config.filter.is_empty() {
        config.filter.check(&*store.facets()?)?;
    }
    let queries = draw_queries(&all, config.queries, config.seed, &config.filter);
    let query_ids: Vec<&str> = queries.iter().map(|&q| all[q].id()).collect();
    let query_vectors: Vec<Vec<f32>> = store
        .vectors(VectorKind::Text, &query_ids)?
        .into_iter()
        .map(|v| v.expect("a stored product"))
        .collect();
    let has_images = store.meta().kinds.contains(&VectorKind::Image);
    let mut notes = Vec::new();
    let k_max = *KS.last().unwrap();
    let mut methods = Vec::new();

    // Keyword baseline.
    let titles: Vec<&str> = all.iter().map(|p| p.product.text.as_str()).collect();
    let tfidf = Tfidf::new(&titles);
    let mut tally = Tally::new();
    for &q in &queries {
        let started = Instant::now();
        let hits: Vec<Hit> = tfidf
            .search(titles[q], k_max, |i| {
                i != q && config.filter.matches(&all[i])
            })
            .into_iter()
            .map(|h| Hit {
                id: all[h.row].id().to_string(),
                score: h.score,
            })
            .collect();
        tally.seconds += started.elapsed().as_secs_f64();
        tally.add(&products, &all[q], &hits)?;
    }
    methods.push(tally.finish(
        "keyword (TF-IDF)".into(),
        None,
        &Diversify::None,
        queries.len(),
        has_images,
    ));

    // BM25 first (beside the TF-IDF baseline), the vector modes, then hybrid.
    let modes: Vec<Mode> = if has_images {
        vec![
            Mode::Keyword,
            Mode::Description,
            Mode::Image,
            Mode::Average,
            Mode::Hybrid,
        ]
    } else {
        notes.push(format!(
            "catalogue `{}` has no image vectors: the image and average search types and \
             diversification are unavailable; only keyword, description and hybrid are measured",
            store.meta().catalog
        ));
        vec![Mode::Keyword, Mode::Description, Mode::Hybrid]
    };
    // Keyword and hybrid modes read the title as a shopper's query (its syntax parsed);
    // the vector modes rank by its stored text vector alone, as in the reference.
    let parsed: Vec<ParsedQuery> = queries
        .iter()
        .map(|&q| syntax::parse(&all[q].product.text))
        .collect();
    // One ranking over every title query, by exact search (so the figures do not depend
    // on a graph's build) within the evaluation's filter; `text`: with the parsed title.
    let measure = |mut ranking: Ranking, text: bool| -> Result<Tally> {
        ranking.filter = config.filter.clone();
        ranking.method = crate::store::Method::Exact;
        let mut tally = Tally::new();
        for (j, &q) in queries.iter().enumerate() {
            let started = Instant::now();
            let hits = searcher.rank_query(
                Some(&query_vectors[j]),
                None,
                text.then(|| &parsed[j]),
                &ranking,
                &[query_ids[j]],
            )?;
            tally.seconds += started.elapsed().as_secs_f64();
            tally.add(&products, &all[q], &hits)?;
        }
        Ok(tally)
    };
    let reads_text = |mode: Mode| matches!(mode, Mode::Keyword | Mode::Hybrid);
    let mut variants = vec![Diversify::None];
    if has_images {
        variants.extend(config.diversify.iter().copied());
    }
    for &mode in &modes {
        // Diversifying the keyword list is not measured: it is a baseline.
        let variants = if mode == Mode::Keyword {
            &variants[..1]
        } else {
            &variants[..]
        };
        for diversify in variants {
            let mut ranking = Ranking::new(mode, k_max);
            ranking.diversify = *diversify;
            let tally = measure(ranking.clone(), reads_text(mode))?;
            let base = match mode {
                Mode::Keyword => "keyword (BM25)".to_string(),
                Mode::Hybrid => format!("hybrid {}", ranking.fusion.label()),
                other => other.name().to_string(),
            };
            let name = match diversify {
                Diversify::None => base,
                other => format!("{base}+{}", other.label()),
            };
            methods.push(tally.finish(name, Some(mode), diversify, queries.len(), has_images));
        }
    }

    let mut alpha_sweep = Vec::new();
    if config.sweep_alpha && has_images {
        for step in 0..=10 {
            let alpha = step as f32 / 10.0;
            let mut ranking = Ranking::new(Mode::Average, 10);
            ranking.alpha = alpha;
            let tally = measure(ranking, false)?;
            let n = queries.len().max(1) as f64;
            alpha_sweep.push(AlphaPoint {
                alpha,
                broad: tally.broad[&10] / n,
                fine: tally.fine[&10] / n,
            });
        }
    } else if config.sweep_alpha {
        notes.push("alpha sweep skipped: no image vectors".into());
    }

    // Photo queries: a product's own photo (its stored image vector, which is exactly
    // what embedding the photo again gives) against each vector mode's vectors.
    let mut photo_queries = Vec::new();
    let photo = if has_images {
        draw_photo_queries(&all, config.queries, config.seed, &config.filter)
    } else {
        Vec::new()
    };
    let photo_ids: Vec<&str> = photo.iter().map(|&q| all[q].id()).collect();
    let stored_photos: Vec<(usize, Vec<f32>)> = photo
        .iter()
        .zip(store.vectors(VectorKind::Image, &photo_ids)?)
        .map(|(&q, v)| (q, v.expect("a stored product")))
        .collect();
    // One ranking over photo queries (the query's product, its index in `all`, and the
    // photo's vector), by exact search within the evaluation's filter.
    let measure_photos = |mut ranking: Ranking, asked: &[(usize, Vec<f32>)]| -> Result<Tally> {
        ranking.filter = config.filter.clone();
        ranking.method = crate::store::Method::Exact;
        let mut tally = Tally::new();
        for (q, vector) in asked {
            let started = Instant::now();
            let hits = searcher.rank(vector, &ranking, &[all[*q].id()])?;
            tally.seconds += started.elapsed().as_secs_f64();
            tally.add(&products, &all[*q], &hits)?;
        }
        Ok(tally)
    };
    for mode in Mode::VECTOR.into_iter().filter(|_| has_images) {
        let tally = measure_photos(Ranking::new(mode, k_max), &stored_photos)?;
        let name = format!("photo -> {}", mode.name());
        photo_queries.push(tally.finish(name, Some(mode), &Diversify::None, photo.len(), true));
    }
    // The same photos as a shopper's upload of them: 10x larger, off-centre on a white
    // margin, JPEG ([`reframe::enlarge_and_reframe`]), embedded afresh; then the same
    // upload shot against a plain grey backdrop. Needs the model and the photos' files;
    // products whose file cannot be read are left out and counted.
    if has_images && searcher.can_embed() {
        let on_white =
            |p: &image::DynamicImage| reframe::enlarge_and_reframe(p, 10, reframe::OFF_CENTRE);
        let on_grey = |p: &image::DynamicImage| {
            reframe::enlarge_and_reframe_on(p, 10, reframe::OFF_CENTRE, |_, _| {
                image::Rgb(reframe::GREY_BACKDROP)
            })
        };
        let kinds = [
            (
                "re-framed upload",
                uploads(searcher, &all, &photo, on_white)?,
            ),
            (
                "re-framed upload on grey",
                uploads(searcher, &all, &photo, on_grey)?,
            ),
        ];
        for (kind, uploads) in kinds {
            if uploads.len() < photo.len() {
                notes.push(format!(
                    "{kind}s: {} of {} photo queries' files could not be read and were left out",
                    photo.len() - uploads.len(),
                    photo.len()
                ));
            }
            for mode in [Mode::Image, Mode::Average] {
                let tally = measure_photos(Ranking::new(mode, k_max), &uploads)?;
                let name = format!("{kind} -> {}", mode.name());
                photo_queries.push(tally.finish(
                    name,
                    Some(mode),
                    &Diversify::None,
                    uploads.len(),
                    true,
                ));
            }
        }
    }

    // Visual feedback at each depth and query weight without title feedback, then title
    // feedback at each weight over visual feedback's default, for titles and photos in
    // the modes they may serve (the defaults were chosen from this sweep on the train
    // split).
    let mut feedback_sweep = Vec::new();
    if config.sweep_feedback && has_images {
        let mut settings = vec![(Feedback::OFF, 0.0)];
        for depth in FEEDBACK_DEPTHS {
            for query_weight in FEEDBACK_WEIGHTS {
                let visual = Feedback {
                    depth,
                    query_weight,
                };
                settings.push((visual, 0.0));
            }
        }
        settings.extend(TITLE_WEIGHTS.map(|w| (Feedback::DEFAULT, w)));
        let n = |count: usize| count.max(1) as f64;
        for (feedback, title_weight) in settings {
            for (queries_are, mode) in [
                ("titles", Mode::Description),
                ("titles", Mode::Image),
                ("titles", Mode::Average),
                ("titles", Mode::Hybrid),
                ("photos", Mode::Description),
                ("photos", Mode::Image),
                ("photos", Mode::Average),
            ] {
                let mut ranking = Ranking::new(mode, 10);
                ranking.feedback = Some(feedback);
                ranking.title_feedback = Some(title_weight);
                let (tally, count) = if queries_are == "titles" {
                    (measure(ranking, reads_text(mode))?, queries.len())
                } else {
                    (measure_photos(ranking, &stored_photos)?, photo.len())
                };
                feedback_sweep.push(FeedbackPoint {
                    queries: queries_are,
                    mode,
                    depth: feedback.depth,
                    query_weight: feedback.query_weight,
                    title_weight,
                    broad: tally.broad[&10] / n(count),
                    fine: tally.fine[&10] / n(count),
                });
            }
        }
    } else if config.sweep_feedback {
        notes.push("feedback sweep skipped: no image vectors".into());
    }

    // The settings hybrid mode and the attribute boost were chosen from (on the train
    // split): each fusion method and keyword weight without boosts, then boosts for
    // hybrid (default fusion) and average mode (the title's words understood).
    let mut fusion_sweep = Vec::new();
    if config.sweep_fusion {
        let mut settings = Vec::new();
        for method in [FusionMethod::Rrf, FusionMethod::Blend] {
            for step in 0..=10 {
                let mut ranking = Ranking::new(Mode::Hybrid, 10);
                ranking.boost = 0.0;
                ranking.fusion = Fusion {
                    method,
                    keyword_weight: step as f32 / 10.0,
                };
                settings.push(ranking);
            }
        }
        for mode in [Mode::Hybrid, Mode::Average]
            .into_iter()
            .filter(|m| modes.contains(m))
        {
            for boost in [0.0, 0.1, 0.2, 0.3, 0.5, 1.0] {
                let mut ranking = Ranking::new(mode, 10);
                ranking.boost = boost;
                settings.push(ranking);
            }
        }
        for ranking in settings {
            let tally = measure(ranking.clone(), true)?;
            let n = queries.len().max(1) as f64;
            fusion_sweep.push(FusionPoint {
                mode: ranking.mode,
                fusion: (ranking.mode == Mode::Hybrid).then(|| ranking.fusion.label()),
                boost: ranking.boost,
                broad: tally.broad[&10] / n,
                fine: tally.fine[&10] / n,
            });
        }
    }

    let mut diversity_curve = Vec::new();
    if config.sweep_diversity && has_images {
        let mode = Mode::default_for(store.meta());
        let mut methods = vec![
            Diversify::None,
            Diversify::KMeans {
                clusters: crate::search::diversify::CLUSTERS,
                seed: config.seed,
            },
        ];
        methods.extend([0.5, 0.6, 0.7, 0.8, 0.9, 0.95].map(|lambda| Diversify::Mmr { lambda }));
        methods.extend(
            [0.98, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8]
                .map(|threshold| Diversify::Dedup { threshold }),
        );
        for diversify in methods {
            let mut ranking = Ranking::new(mode, k_max);
            ranking.diversify = diversify;
            let tally = measure(ranking, reads_text(mode))?;
            let name = format!("{}+{}", mode.name(), diversify.label());
            diversity_curve.push(tally.finish(name, Some(mode), &diversify, queries.len(), true));
        }
    }

    let meta = store.meta();
    Ok(EvalReport {
        catalog: meta.catalog.clone(),
        split: config.split.clone(),
        model: meta.model.clone(),
        products: all.len(),
        products_with_image: all.iter().filter(|p| p.has_image).count(),
        queries: queries.len(),
        seed: config.seed,
        config: config.clone(),
        methods,
        alpha_sweep,
        fusion_sweep,
        photo_queries,
        feedback_sweep,
        diversity_curve,
        photo_query_count: photo.len(),
        notes,
    })
}
