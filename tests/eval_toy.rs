//! The evaluation on a hand-built index whose answers are known: 4 broad categories of
//! 10 products, each split into 2 fine categories of 5. Text vectors point along the
//! broad category's axis, nudged along a fine-category axis; image vectors point along
//! the *next* broad category's axis, so image search is wrong on purpose.

use std::collections::BTreeMap;

use vitrina::catalog::Product;
use vitrina::eval::{draw_queries, evaluate, results_markdown, EvalConfig, MethodFigures};
use vitrina::search::{Diversify, Mode, Ranking, Searcher};
use vitrina::store::{
    Entry, Filter, MemoryStore, Snapshot, Store, StoreMeta, StoreWriter, StoredProduct, VectorKind,
};

const DIM: usize = 16;
const BROAD: [&str; 4] = ["tops", "shoes", "bags", "watches"];

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn toy_index() -> Snapshot {
    let mut entries = Vec::new();
    for i in 0..40 {
        let g = i / 10;
        let f = (i % 10) / 5;
        let product = StoredProduct {
            product: Product {
                id: format!("p{i}"),
                text: format!("{} style{f}", BROAD[g]),
                broad: Some(BROAD[g].into()),
                fine: Some(format!("{}-{f}", BROAD[g])),
                attributes: Default::default(),
                image: None,
            },
            has_image: true,
            content_hash: 0,
        };
        let mut t = vec![0f32; DIM];
        t[g] = 1.0;
        t[4 + 2 * g + f] = 0.3;
        t[12 + i % 4] = 0.01 * (i % 7) as f32; // tiny per-product noise
        let mut im = vec![0f32; DIM];
        im[(g + 1) % 4] = 1.0;
        im[8 + i % 5] = 0.2;
        let (t, im) = (unit(t), unit(im));
        let mut vectors = BTreeMap::new();
        vectors.insert(
            VectorKind::Average,
            unit(t.iter().zip(&im).map(|(a, b)| a + b).collect()),
        );
        vectors.insert(VectorKind::Text, t);
        vectors.insert(VectorKind::Image, im);
        entries.push(Entry { product, vectors });
    }
    let mut store = MemoryStore::new(StoreMeta {
        model: "toy".into(),
        model_dir: None,
        dim: DIM,
        kinds: vec![VectorKind::Text, VectorKind::Image, VectorKind::Average],
        catalog: "toy".into(),
    });
    store.upsert(entries).unwrap();
    store.into_snapshot()
}

fn method<'a>(methods: &'a [MethodFigures], name: &str) -> &'a MethodFigures {
    methods
        .iter()
        .find(|m| m.method == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn precision_at_k_matches_hand_computed_answers() {
    let index = toy_index();
    let searcher = Searcher::stored_vectors_only(&index);
    let config = EvalConfig {
        split: "all".into(),
        queries: 40,
        seed: 1,
        diversify: vec![
            Diversify::KMeans {
                clusters: 5,
                seed: 0,
            },
            Diversify::Mmr { lambda: 1.0 },
        ],
        sweep_alpha: true,
        sweep_fusion: false,
        sweep_diversity: false,
        sweep_feedback: true,
        filter: Filter::default(),
    };
    let report = evaluate(&searcher, &config).unwrap();
    assert_eq!(report.queries, 40);
    let description = method(&report.methods, "description");
    // The 9 other products of the broad category come first, the 4 of the fine first of all.
    assert!(
        close(description.broad[&10], 0.9),
        "{:?}",
        description.broad
    );
    assert!(close(description.fine[&10], 0.4), "{:?}", description.fine);
    assert!(close(description.broad[&20], 9.0 / 20.0));
    // 39 results exist; the missing 100th counts as a miss.
    assert!(close(description.broad[&100], 9.0 / 100.0));
    // Image vectors point at the wrong category: the top 9 are all the next category.
    let image = method(&report.methods, "image");
    assert!(close(image.broad[&10], 0.0), "{:?}", image.broad);
    // Keyword: identical titles score 1, same broad word next.
    let keyword = method(&report.methods, "keyword (TF-IDF)");
    assert!(
        close(keyword.broad[&10], 0.9) && close(keyword.fine[&10], 0.4),
        "{keyword:?}"
    );
    // BM25 ranks the same way here: the 4 identical titles, then the same broad word.
    let bm25 = method(&report.methods, "keyword (BM25)");
    assert!(
        close(bm25.broad[&10], 0.9) && close(bm25.fine[&10], 0.4),
        "{bm25:?}"
    );
    // Hybrid fuses BM25 with average mode (its vectors also keep the broad category
    // together), so its top 10 is the broad category too.
    let hybrid = report
        .methods
        .iter()
        .find(|m| m.method.starts_with("hybrid") && m.diversify == "none")
        .unwrap();
    assert!(close(hybrid.broad[&10], 0.9), "{hybrid:?}");
    // Photo queries: a photo finds its own category's photos (all point at the next
    // category alike), and the next category's texts.
    assert_eq!(report.photo_queries.len(), 3);
    let photo = |name: &str| method(&report.photo_queries, name);
    assert!(close(photo("photo -> image").broad[&10], 0.9));
    assert!(close(photo("photo -> description").broad[&10], 0.0));
    // MMR with lambda = 1 is the plain ranking.
    let mmr = method(&report.methods, "description+mmr(1)");
    assert_eq!(mmr.broad, description.broad);
    assert_eq!(mmr.fine, description.fine);
    // k-means over image vectors spreads the top 10 over looks: less precise, more varied.
    let kmeans = method(&report.methods, "description+kmeans");
    assert!(kmeans.broad[&10] < description.broad[&10]);
    assert!(kmeans.variety.visual_distance.unwrap() > description.variety.visual_distance.unwrap());
    assert!(
        close(kmeans.broad[&50], description.broad[&50]),
        "the top-50 set is unchanged"
    );
    // Visual and title feedback follow the first results: for titles in image mode they
    // are all the wrong category, so the refined query and the titles it is re-scored by
    // stay wrong; a photo's are its own category's, so it stays right. Every setting of
    // the sweep (13 visual, 4 title weights), both kinds of query.
    assert_eq!(report.feedback_sweep.len(), 17 * 7);
    assert_eq!(
        report
            .feedback_sweep
            .iter()
            .filter(|p| p.title_weight > 0.0)
            .count(),
        4 * 7
    );
    for p in &report.feedback_sweep {
        match (p.queries, p.mode) {
            ("titles", Mode::Image) => assert!(close(p.broad, 0.0), "{p:?}"),
            ("photos", Mode::Image) => assert!(close(p.broad, 0.9), "{p:?}"),
            _ => {}
        }
    }
    // alpha = 1 is pure text, alpha = 0 pure image.
    assert_eq!(report.alpha_sweep.len(), 11);
    assert!(close(report.alpha_sweep[10].broad, 0.9));
    assert!(close(report.alpha_sweep[0].broad, 0.0));
    // The Markdown report has a section for each part that was run, and only those.
    let md = results_markdown(&report);
    for section in [
        "## Precision@k",
        "## Average mode: product text weight alpha",
        "## Photo queries",
        "## Visual and title feedback settings",
    ] {
        assert!(md.contains(section), "{section} missing");
    }
    assert!(!md.contains("## Fusion"));
    assert!(!md.contains("## Diversification: the precision/variety trade-off"));
    // Its precision table holds the figures above, to three decimals: TF-IDF, BM25 and
    // description at 0.9 / 0.4, image broad at 0.
    assert!(
        md.contains("| 10 | 0.900 | 0.400 | 0.900 | 0.400 | 0.900 | 0.400 | 0.000 |"),
        "{md}"
    );
}

#[test]
fn a_query_never_finds_its_own_product() {
    let index = toy_index();
    let searcher = Searcher::stored_vectors_only(&index);
    let products = index.products().unwrap();
    for q in draw_queries(&products, 40, 3, &Filter::default()) {
        let id = products[q].id();
        let text = index
            .vectors(VectorKind::Text, &[id])
            .unwrap()
            .remove(0)
            .unwrap();
        for mode in Mode::VECTOR {
            let hits = searcher
                .rank(&text, &Ranking::new(mode, 39), &[id])
                .unwrap();
            assert_eq!(hits.len(), 39);
            assert!(hits.iter().all(|h| h.id != id), "{mode:?} query {id}");
        }
        // Without exclusion the product itself is the best text match.
        let hits = searcher
            .rank(&text, &Ranking::new(Mode::Description, 1), &[])
            .unwrap();
        assert_eq!(hits[0].id, id);
    }
}

#[test]
fn draw_queries_is_seeded() {
    let products = toy_index().products().unwrap();
    let all = Filter::default();
    assert_eq!(
        draw_queries(&products, 10, 7, &all),
        draw_queries(&products, 10, 7, &all)
    );
    assert_ne!(
        draw_queries(&products, 10, 7, &all),
        draw_queries(&products, 10, 8, &all)
    );
    // Filtered: only matching products are drawn.
    let shoes = Filter::parse(&["broad=shoes"]).unwrap();
    let drawn = draw_queries(&products, 40, 7, &shoes);
    assert_eq!(drawn.len(), 10);
    assert!(drawn
        .iter()
        .all(|&q| products[q].product.broad.as_deref() == Some("shoes")));
}
