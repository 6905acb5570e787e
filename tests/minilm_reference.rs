//! The candle text tower must reproduce sentence-transformers' all-MiniLM-L6-v2.
//! Reference vectors: tests/fixtures/minilm_reference.json, made by
//! scripts/reference_embeddings.py (PyTorch CPU).

use vitrina::encoder::{minilm_dir, MiniLm, TextEncoder};

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn minilm_matches_sentence_transformers() {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    ))
    .unwrap();
    let reference: Reference = serde_json::from_str(&fixture).unwrap();
    let model = MiniLm::load(&minilm_dir(None).unwrap()).unwrap();
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let ours = model.embed_texts(&texts).unwrap();
    assert_eq!(
        ours.truncated, 1,
        "exactly the one over-long sentence is truncated"
    );
    for (i, (text, want)) in texts.iter().zip(&reference.embeddings).enumerate() {
        let got = &ours.vectors[i * 384..(i + 1) * 384];
        let cosine: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
        assert!(cosine >= 0.9999, "sentence {i} {text:?}: cosine {cosine}");
    }
}

#[test]
fn batching_does_not_change_vectors() {
    let model = MiniLm::load(&minilm_dir(None).unwrap()).unwrap();
    let texts = [
        "red party dress",
        "a much longer title about a pair of blue denim jeans for men",
    ];
    let both = model.embed_texts(&texts).unwrap().vectors;
    for (i, t) in texts.iter().enumerate() {
        let alone = model.embed_texts(&[t]).unwrap().vectors;
        let cosine: f32 = alone.iter().zip(&both[i * 384..]).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.99999, "{t}: {cosine}");
    }
}
