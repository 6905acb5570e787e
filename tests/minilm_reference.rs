//! The built-in text tower must reproduce sentence-transformers' all-MiniLM-L6-v2 on
//! every runtime. Reference vectors: tests/fixtures/minilm_reference.json, made by
//! scripts/reference_embeddings.py (PyTorch CPU).

use vitrina::encoder::{minilm_dir, MiniLm, TextBackend, TextEncoder};

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

/// The lowest cosine between `backend`'s vectors and the reference, over all sentences.
fn worst_cosine(backend: TextBackend) -> f32 {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    ))
    .unwrap();
    let reference: Reference = serde_json::from_str(&fixture).unwrap();
    let model = MiniLm::load_with(&minilm_dir(None).unwrap(), backend).unwrap();
    assert_eq!(model.backend(), backend);
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let ours = model.embed_texts(&texts).unwrap();
    assert_eq!(
        ours.truncated, 1,
        "{backend:?}: exactly the one over-long sentence is truncated"
    );
    let mut worst = 1f32;
    for (i, (text, want)) in texts.iter().zip(&reference.embeddings).enumerate() {
        let got = &ours.vectors[i * 384..(i + 1) * 384];
        let cosine: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
        eprintln!("{backend:?} sentence {i} {text:?}: cosine {cosine}");
        worst = worst.min(cosine);
    }
    worst
}

#[test]
fn candle_matches_sentence_transformers() {
    let worst = worst_cosine(TextBackend::Candle);
    assert!(worst >= 0.9999, "worst cosine {worst}");
}

#[test]
fn onnx_runtime_matches_sentence_transformers() {
    let worst = worst_cosine(TextBackend::Onnx);
    assert!(worst >= 0.9999, "worst cosine {worst}");
}

/// int8 is opt-in because it moves vectors; this pins how far (README: "text encoding").
#[test]
fn int8_stays_within_its_stated_bound() {
    let worst = worst_cosine(TextBackend::OnnxInt8);
    assert!(worst >= 0.98, "worst cosine {worst}");
    assert!(worst < 0.9999, "int8 cannot be exact: {worst}");
}

#[test]
fn batching_does_not_change_vectors() {
    for backend in [TextBackend::Candle, TextBackend::Onnx] {
        let model = MiniLm::load_with(&minilm_dir(None).unwrap(), backend).unwrap();
        let texts = [
            "red party dress",
            "a much longer title about a pair of blue denim jeans for men",
        ];
        let both = model.embed_texts(&texts).unwrap().vectors;
        for (i, t) in texts.iter().enumerate() {
            let alone = model.embed_texts(&[t]).unwrap().vectors;
            let cosine: f32 = alone.iter().zip(&both[i * 384..]).map(|(a, b)| a * b).sum();
            assert!(cosine > 0.99999, "{backend:?} {t}: {cosine}");
        }
    }
}

#[test]
fn unknown_backend_is_a_clear_error() {
    let err = TextBackend::parse("cuda").unwrap_err().to_string();
    assert!(err.contains("onnx, onnx-int8, candle"), "{err}");
}

/// On real catalogue titles of every length, batched as indexing batches them, the two
/// float32 runtimes give the same vectors (so the same rankings and evaluation figures).
#[test]
fn runtimes_agree_on_real_titles() {
    use vitrina::catalog::{Catalog, CatalogSpec, Split};
    let spec = CatalogSpec::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml"),
    )
    .unwrap();
    let mut catalog = Catalog::load(&spec).unwrap();
    catalog.select(Split::Test, Some(400));
    let titles: Vec<&str> = catalog.products.iter().map(|p| p.text.as_str()).collect();
    let dir = minilm_dir(None).unwrap();
    let onnx = MiniLm::load_with(&dir, TextBackend::Onnx).unwrap();
    let candle = MiniLm::load_with(&dir, TextBackend::Candle).unwrap();
    let a = onnx.embed_texts(&titles).unwrap().vectors;
    let b = candle.embed_texts(&titles).unwrap().vectors;
    for (i, (x, y)) in a.chunks_exact(384).zip(b.chunks_exact(384)).enumerate() {
        let cosine: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        assert!(cosine > 0.99999, "{:?}: cosine {cosine}", titles[i]);
    }
}
