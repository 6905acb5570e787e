//! Visual feedback through the searcher, on a hand-built index whose answers are known:
//! a query between two groups of products, one group (Y) a little nearer and tight, a
//! second group of the same kind (Y2) farther from the query but near Y, and a distractor
//! group (Z) in between. Plain search ranks Y, then Z; feedback from the first results
//! (all Y) moves the query towards Y's kind, so Y2 replaces Z.

use std::collections::BTreeMap;

use vitrina::catalog::Product;
use vitrina::search::{Feedback, Mode, Ranking, Searcher};
use vitrina::store::{
    Entry, MemoryStore, Snapshot, StoreMeta, StoreWriter, StoredProduct, VectorKind,
};

fn unit(v: [f32; 4]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Products `y0..y3`, `y2-0..y2-3` and `z0..z3` with the vectors described above.
fn index() -> Snapshot {
    let mut entries = Vec::new();
    for i in 0..4 {
        let s = i as f32;
        for (id, v) in [
            (format!("y{i}"), unit([1.0, 0.0, 0.9, 0.05 * s])),
            (format!("y2-{i}"), unit([1.0, 0.0, 0.2, 0.1 * s])),
            (format!("z{i}"), unit([0.0, 1.0, 0.6, 0.05 * s])),
        ] {
            let product = StoredProduct {
                product: Product {
                    id: id.clone(),
                    text: id,
                    broad: None,
                    fine: None,
                    attributes: Default::default(),
                    image: None,
                },
                has_image: true,
                content_hash: 0,
            };
            let vectors: BTreeMap<VectorKind, Vec<f32>> =
                [VectorKind::Text, VectorKind::Image, VectorKind::Average]
                    .into_iter()
                    .map(|kind| (kind, v.clone()))
                    .collect();
            entries.push(Entry { product, vectors });
        }
    }
    let mut store = MemoryStore::new(StoreMeta {
        model: "toy".into(),
        model_dir: None,
        dim: 4,
        kinds: vec![VectorKind::Text, VectorKind::Image, VectorKind::Average],
        catalog: "toy".into(),
    });
    store.upsert(entries).unwrap();
    store.into_snapshot()
}

fn ids(searcher: &Searcher, query: &[f32], feedback: Option<Feedback>) -> Vec<String> {
    let mut ranking = Ranking::new(Mode::Image, 8);
    ranking.feedback = feedback;
    let hits = searcher.rank(query, &ranking, &[]).unwrap();
    let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

#[test]
fn feedback_brings_the_first_results_kind_forward() {
    let snapshot = index();
    let searcher = Searcher::stored_vectors_only(&snapshot);
    let query = unit([0.6, 0.55, 0.58, 0.0]);
    let group = |prefix: &str| -> Vec<String> { (0..4).map(|i| format!("{prefix}{i}")).collect() };
    let (y, y2, z) = (group("y"), group("y2-"), group("z"));

    let plain = ids(&searcher, &query, Some(Feedback::OFF));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(plain, sorted([y.clone(), z].concat()));

    let feedback = Feedback {
        depth: 4,
        query_weight: 0.5,
    };
    let refined = ids(&searcher, &query, Some(feedback));
    assert_eq!(refined, sorted([y, y2].concat()));
    // Image mode's default is on, at the setting chosen on Myntra's train split.
    assert_eq!(Feedback::default_for(Mode::Image), Feedback::DEFAULT);
    assert!(Feedback::DEFAULT.is_on());
    assert!(!Feedback::default_for(Mode::Description).is_on());
}

#[test]
fn an_exact_match_keeps_first_place_and_its_score_with_feedback() {
    let snapshot = index();
    let searcher = Searcher::stored_vectors_only(&snapshot);
    // A shopper's photo of a catalogue product: its vector is the product's own.
    let query = unit([1.0, 0.0, 0.2, 0.3]);
    for feedback in [None, Some(Feedback::OFF), Some(Feedback::DEFAULT)] {
        let hits = searcher
            .rank(
                &query,
                &Ranking {
                    feedback,
                    ..Ranking::new(Mode::Image, 5)
                },
                &[],
            )
            .unwrap();
        assert_eq!(hits[0].id, "y2-3", "{feedback:?}: {hits:?}");
        assert!(hits[0].score > 0.999, "{feedback:?}: {hits:?}");
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{hits:?}"
        );
    }
}
