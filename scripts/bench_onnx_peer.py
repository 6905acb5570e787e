"""Peer for `vitrina bench --onnx-dir`: bare onnxruntime in Python running the same
vision export on the same preprocessed tensors (float32 file written by vitrina), same
batch size and thread count. Prints one JSON line: {"images_per_second": x}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, pixels_file, n, size, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    pixels = np.fromfile(pixels_file, dtype=np.float32).reshape(n, 3, size, size)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    session.run(None, {"pixel_values": pixels[:batch]})  # warm-up
    start = time.perf_counter()
    for i in range(0, n, batch):
        session.run(None, {"pixel_values": pixels[i:i + batch]})
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": n / seconds, "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
