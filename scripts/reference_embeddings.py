"""Reference all-MiniLM-L6-v2 embeddings from sentence-transformers (PyTorch, CPU).

Writes tests/fixtures/minilm_reference.json; the Rust test `minilm_matches_reference`
checks vitrina's candle implementation against it (cosine >= 0.9999 per sentence).

    python scripts/reference_embeddings.py --model-dir ~/.cache/vitrina/models/all-MiniLM-L6-v2
"""
import argparse
import json
import pathlib

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "black leather belt",
    "red party dress",
    "Turtle Check Men Navy Blue Shirt",
    "Peter England Men Party Blue Jeans",
    "Titan Women Silver Watch",
    "Manchester United Men Solid Black Track Pants",
    "Puma Men Grey T-shirt",
    "Inkfruit Mens Chain Reaction T-shirt",
    "Fabindia Men Striped Green Shirt",
    "Jealous 21 Women Purple Shirt",
    "Boss Men Perfume, After Shave Balm and Shower Gel Set",
    "yellow printed silk t-shirt dress black",
    "blue one shoulder dress",
    "Nike Unisex Blue & White Running Shoes",
    "Café crème — sandales à talons, été 2012",
    "SHOUTING CAPS AND NUMBERS 1234567890",
    "a",
    "   leading and trailing spaces   ",
    "emoji 👗👠 in a title",
    # Longer than MiniLM's 256-token limit: both sides must truncate the same way.
    " ".join(["cotton kurta with embroidered neckline and three-quarter sleeves"] * 40),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True, help="folder with the all-MiniLM-L6-v2 files")
    parser.add_argument("--out", default="tests/fixtures/minilm_reference.json")
    args = parser.parse_args()
    model = SentenceTransformer(args.model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "model": "all-MiniLM-L6-v2",
        "max_seq_length": model.max_seq_length,
        "produced_by": "scripts/reference_embeddings.py (sentence-transformers, PyTorch CPU)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }
    pathlib.Path(args.out).write_text(json.dumps(out) + "\n")
    print(f"wrote {len(SENTENCES)} reference vectors to {args.out}")


if __name__ == "__main__":
    main()
