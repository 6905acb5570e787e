"""Peer for `vitrina bench`: sentence-transformers (PyTorch, CPU) encoding the same
titles vitrina encodes, in the same run. Prints one JSON line: {"titles_per_second": x}.

    vitrina bench --peer-python /tmp/peers/bin/python   (runs this script)
"""
import json
import sys
import time

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    model_dir, titles_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    titles = [line.rstrip("\n") for line in open(titles_file, encoding="utf-8")]
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(titles[:batch], batch_size=batch)  # warm-up
    start = time.perf_counter()
    model.encode(titles, batch_size=batch, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "titles_per_second": len(titles) / seconds,
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
