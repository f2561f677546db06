"""Synthetic NDJSON for the scale bench (benches/scale_load.sh).

usage: scale_data.py N MODEL DIMS > out.ndjson

N memories with recall_load.py's text generator (fixed seed) over 10
projects, each with a vector in signet's export form (model, dimensions,
little-endian f32 as base64). The vectors are synthetic but clustered
like text embeddings are: 2,000 random centres, each vector a centre plus
noise, normalised; that makes nearest-neighbour search about as hard for
an approximate index as real embeddings (uniform random vectors would be
easier for quantisation and harder for partitioning than real data).
"""
import base64
import json
import random
import sys

import numpy as np

sys.path.insert(0, "benches")
from recall_load import memory  # noqa: E402


def main():
    n, model, dims = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = random.Random(42)
    np_rng = np.random.default_rng(42)
    centres = np_rng.standard_normal((2000, dims), dtype=np.float32)
    out = sys.stdout
    chunk = 10_000
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        which = np_rng.integers(0, len(centres), k)
        v = centres[which] + 0.9 * np_rng.standard_normal((k, dims), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v = v.astype("<f4")
        for j in range(k):
            i = start + j
            m = memory(rng, i, 10)
            m["created_at"] = f"2026-01-01T{i // 3_600_000 % 24:02d}:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z"
            m["embedding"] = {
                "model": model,
                "dimensions": dims,
                "vector": base64.b64encode(v[j].tobytes()).decode(),
            }
            out.write(json.dumps(m))
            out.write("\n")


if __name__ == "__main__":
    main()
