"""Peer for `vitrina bench --suite ann`: faiss's IndexHNSWFlat on the same vectors and
queries (float32 files written by vitrina), inner product, the same M and
efConstruction, the same efSearch values, one query at a time, 2 threads.
Recall@10 is measured against the exact answers vitrina wrote (row ids, int64); then
vitrina's filters (every n-th row) inside the graph search. Prints one JSON document.
"""
import json
import sys
import time

import faiss
import numpy as np


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def summary(times: list) -> dict:
    """p50, p99 and queries a second of one pass's per-query times (seconds)."""
    times = sorted(times)
    return {
        "p50_ms": times[len(times) // 2] * 1e3,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
        "qps": len(times) / sum(times),
    }


def main() -> None:
    base_file, query_file, truth_file = sys.argv[1], sys.argv[2], sys.argv[3]
    n, q, dim, m, ef_construction = (int(x) for x in sys.argv[4:9])
    efs = [int(x) for x in sys.argv[9].split(",")]
    threads = int(sys.argv[10])
    filters = [int(x) for x in sys.argv[11].split(",")]
    faiss.omp_set_num_threads(threads)
    base = np.fromfile(base_file, dtype=np.float32).reshape(n, dim)
    queries = np.fromfile(query_file, dtype=np.float32).reshape(q, dim)
    truth = np.fromfile(truth_file, dtype=np.int64).reshape(q, 10)
    index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    before = resident_mb()
    start = time.perf_counter()
    index.add(base)
    build = time.perf_counter() - start
    out = {
        "faiss": faiss.__version__,
        "build_seconds": build,
        # faiss keeps its own copy of the vectors beside the links.
        "build_mb": resident_mb() - before,
        "runs": [],
        "filtered": [],
    }
    for ef in efs:
        index.hnsw.efSearch = ef
        times, found = [], 0
        for i in range(q):
            t = time.perf_counter()
            _, ids = index.search(queries[i:i + 1], 10)
            times.append(time.perf_counter() - t)
            found += len(set(ids[0].tolist()) & set(truth[i].tolist()))
        out["runs"].append({"ef": ef, "recall": found / (10 * q), **summary(times)})
    # vitrina's filters (every n-th row), applied inside faiss's graph search
    # (IDSelectorBitmap), at the largest efSearch; recall against the exact filtered answer.
    index.hnsw.efSearch = efs[-1]
    scores = queries @ base.T
    for every in filters:
        keep = np.arange(n) % every == 0
        bitmap = np.packbits(keep, bitorder="little")
        selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(efSearch=efs[-1], sel=selector)
        masked = np.where(keep[None, :], scores, -np.inf)
        want = np.argsort(-masked, axis=1)[:, :10]
        times, found, returned = [], 0, 0
        for i in range(q):
            t = time.perf_counter()
            _, ids = index.search(queries[i:i + 1], 10, params=params)
            times.append(time.perf_counter() - t)
            got = [x for x in ids[0].tolist() if x >= 0]
            returned += len(got)
            found += len(set(got) & set(want[i].tolist()))
        out["filtered"].append({
            "every": every,
            "ef": efs[-1],
            "recall": found / (10 * q),
            "results": returned / q,
            **summary(times),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
