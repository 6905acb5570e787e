//! Visual and title feedback through the searcher, on a hand-built index whose answers
//! are known: a query between two groups of products, one group (Y) a little nearer and
//! tight, a second group of the same kind (Y2) farther from the query but near Y, and a
//! distractor group (Z) in between. Plain search ranks Y, then Z; visual feedback from
//! the first results (all Y) moves the query towards Y's kind, so Y2 replaces Z. Y and
//! Y2 share a title ("skirt"), Z has another ("sock"): title feedback, which re-scores
//! the list by its first results' titles, brings Y2 forward too.

use std::collections::BTreeMap;

use vitrina::catalog::Product;
use vitrina::search::{title_feedback, Feedback, Mode, Ranking, Searcher};
use vitrina::store::{
    Entry, MemoryStore, Snapshot, StoreMeta, StoreWriter, StoredProduct, VectorKind,
};

fn unit(v: [f32; 4]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Products `y0..y3`, `y2-0..y2-3` and `z0..z3` with the vectors described above,
/// and the title vectors `kinds` holds.
fn index(kinds: &[VectorKind]) -> Snapshot {
    let (skirt, sock) = (unit([1.0, 0.0, 0.0, 0.0]), unit([0.0, 1.0, 0.0, 0.0]));
    let mut entries = Vec::new();
    for i in 0..4 {
        let s = i as f32;
        for (id, v, title) in [
            (format!("y{i}"), unit([1.0, 0.0, 0.9, 0.05 * s]), &skirt),
            (format!("y2-{i}"), unit([1.0, 0.0, 0.2, 0.1 * s]), &skirt),
            (format!("z{i}"), unit([0.0, 1.0, 0.6, 0.05 * s]), &sock),
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
            let vectors: BTreeMap<VectorKind, Vec<f32>> = kinds
                .iter()
                .map(|&kind| match kind {
                    VectorKind::Text => (kind, title.clone()),
                    _ => (kind, v.clone()),
                })
                .collect();
            entries.push(Entry { product, vectors });
        }
    }
    let mut store = MemoryStore::new(StoreMeta {
        model: "toy".into(),
        model_dir: None,
        dim: 4,
        kinds: kinds.to_vec(),
        catalog: "toy".into(),
    });
    store.upsert(entries).unwrap();
    store.into_snapshot()
}

const ALL: [VectorKind; 3] = [VectorKind::Text, VectorKind::Image, VectorKind::Average];

/// The query between the groups.
fn between() -> Vec<f32> {
    unit([0.6, 0.55, 0.58, 0.0])
}

/// The first 8 products of image mode, as a sorted set; visual feedback as given, title
/// feedback at `titles`.
fn top8(
    searcher: &Searcher,
    query: &[f32],
    feedback: Option<Feedback>,
    titles: f32,
) -> Vec<String> {
    let mut ranking = Ranking::new(Mode::Image, 8);
    ranking.feedback = feedback;
    ranking.title_feedback = Some(titles);
    let hits = searcher.rank(query, &ranking, &[]).unwrap();
    sorted(hits.into_iter().map(|h| h.id).collect())
}

/// The ids of groups Y, Y2 and Z.
fn groups() -> (Vec<String>, Vec<String>, Vec<String>) {
    let group = |prefix: &str| -> Vec<String> { (0..4).map(|i| format!("{prefix}{i}")).collect() };
    (group("y"), group("y2-"), group("z"))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn feedback_brings_the_first_results_kind_forward() {
    let snapshot = index(&ALL);
    let searcher = Searcher::stored_vectors_only(&snapshot);
    let query = between();
    let (y, y2, z) = groups();

    let plain = top8(&searcher, &query, Some(Feedback::OFF), 0.0);
    assert_eq!(plain, sorted([y.clone(), z].concat()));

    let feedback = Feedback {
        depth: 4,
        query_weight: 0.5,
    };
    let refined = top8(&searcher, &query, Some(feedback), 0.0);
    assert_eq!(refined, sorted([y, y2].concat()));
    // Image mode's default is on, at the setting chosen on Myntra's train split.
    assert_eq!(Feedback::default_for(Mode::Image), Feedback::DEFAULT);
    assert!(Feedback::DEFAULT.is_on());
    assert!(!Feedback::default_for(Mode::Description).is_on());
}

#[test]
fn title_feedback_brings_the_first_results_kind_of_title_forward() {
    let snapshot = index(&ALL);
    let searcher = Searcher::stored_vectors_only(&snapshot);
    let query = between();
    let (y, y2, z) = groups();
    assert_eq!(
        top8(&searcher, &query, Some(Feedback::OFF), 0.0),
        sorted([y.clone(), z].concat())
    );
    // The first 5 are Y's four skirts and a sock: the skirts' title wins, and Y2's
    // skirts pass Z's socks, whose photos are nearer.
    assert_eq!(
        top8(&searcher, &query, Some(Feedback::OFF), 1.0),
        sorted([y, y2].concat())
    );
    // A page of k is the first k of a longer list: the re-scored pool does not depend on k.
    let ranked = |k: usize| -> Vec<String> {
        let ranking = Ranking {
            feedback: Some(Feedback::OFF),
            ..Ranking::new(Mode::Image, k)
        };
        let hits = searcher.rank(&query, &ranking, &[]).unwrap();
        hits.into_iter().map(|h| h.id).collect()
    };
    assert_eq!(ranked(6), ranked(12)[..6]);
    // On by default in image mode only; refused out of range, by name.
    assert_eq!(
        title_feedback::default_for(Mode::Image),
        title_feedback::DEFAULT_WEIGHT
    );
    assert_eq!(title_feedback::default_for(Mode::Average), 0.0);
    assert_eq!(title_feedback::default_for(Mode::Description), 0.0);
    let too_much = Ranking {
        title_feedback: Some(11.0),
        ..Ranking::new(Mode::Image, 8)
    };
    let err = searcher.rank(&query, &too_much, &[]).unwrap_err();
    assert!(err.to_string().contains("title_feedback"), "{err}");
}

#[test]
fn an_index_without_title_vectors_is_searched_without_title_feedback() {
    let snapshot = index(&[VectorKind::Image]);
    let searcher = Searcher::stored_vectors_only(&snapshot);
    let query = between();
    // The default (title feedback unset) quietly does without it: the list with it off.
    let off = top8(&searcher, &query, Some(Feedback::OFF), 0.0);
    let ranking = Ranking {
        feedback: Some(Feedback::OFF),
        ..Ranking::new(Mode::Image, 8)
    };
    let hits = searcher.rank(&query, &ranking, &[]).unwrap();
    assert_eq!(sorted(hits.into_iter().map(|h| h.id).collect()), off);
    // Asked for, it is refused with the reason.
    let asked = Ranking {
        title_feedback: Some(1.0),
        ..ranking
    };
    let err = searcher.rank(&query, &asked, &[]).unwrap_err();
    assert!(err.to_string().contains("title vectors"), "{err}");
}

#[test]
fn an_exact_match_keeps_first_place_and_its_score_with_feedback() {
    let snapshot = index(&ALL);
    let searcher = Searcher::stored_vectors_only(&snapshot);
    // A shopper's photo of a catalogue product: its vector is the product's own.
    let query = unit([1.0, 0.0, 0.2, 0.3]);
    // Visual feedback's default, off and on; title feedback's default, off and strong.
    let settings = [None, Some(Feedback::OFF), Some(Feedback::DEFAULT)]
        .into_iter()
        .flat_map(|f| [None, Some(0.0), Some(title_feedback::MAX_WEIGHT)].map(move |t| (f, t)));
    for (feedback, title_feedback) in settings {
        let hits = searcher
            .rank(
                &query,
                &Ranking {
                    feedback,
                    title_feedback,
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
