#!/usr/bin/env python3
"""Times numpy (its BLAS, here OpenBLAS) on the mapping network's forward,
as a peer measured on the same machine in the same session as
`stylemap bench`.

The network is the 8 x 512 shape of StyleGAN2's mapping network with
folded f32 weights (random values of the folded scale: speed does not
depend on them). One forward per batch is what a numpy user writes:
normalise z, then per layer `y = x @ W.T + b` and leaky ReLU.

    python3 tools/peer_numpy.py --threads 1,2 --batch 1,8,64,512 --json

Each thread count runs in its own process (BLAS reads its thread count at
import time). Output: one JSON object per case, the same fields as
`stylemap bench --json`, or a table.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def child(threads, batches, seconds):
    import numpy as np

    rng = np.random.default_rng(0)
    dim, layers = 512, 8
    # Folded weights: N(0, 1) * lr / sqrt(in) * sqrt(2), lr = 0.01.
    scale = 0.01 / np.sqrt(dim) * np.sqrt(2.0)
    ws = [np.ascontiguousarray((rng.standard_normal((dim, dim)) * scale).astype(np.float32).T)
          for _ in range(layers)]
    bs = [np.zeros(dim, np.float32) for _ in range(layers)]

    def forward(z):
        x = z * (1.0 / np.sqrt(np.mean(z * z, axis=1, keepdims=True) + 1e-8)).astype(np.float32)
        for wt, b in zip(ws, bs):
            y = x @ wt
            y += b
            np.maximum(y, y * np.float32(0.2), out=y)
            x = y
        return x

    for batch in batches:
        z = rng.standard_normal((batch, dim)).astype(np.float32)
        warm = time.perf_counter()
        while time.perf_counter() - warm < seconds / 10:
            forward(z)
        times = []
        start = time.perf_counter()
        while len(times) < 20 or time.perf_counter() - start < seconds:
            t = time.perf_counter()
            forward(z)
            times.append(time.perf_counter() - t)
        times.sort()
        n = len(times)
        med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
        print(json.dumps({
            "variant": f"numpy-{np.__version__}",
            "threads": threads,
            "batch": batch,
            "us_per_sample": round(med * 1e6 / batch, 3),
        }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", default="1,8,64,512")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    batches = [int(b) for b in a.batch.split(",")]
    if a.child is not None:
        child(a.child, batches, a.seconds)
        return
    if not a.json:
        print(f"{'variant':<18} {'threads':>7} {'batch':>6} {'µs/sample':>12}")
    for t in (int(t) for t in a.threads.split(",")):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t),
                   MKL_NUM_THREADS=str(t))
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(t), "--batch", a.batch,
             "--seconds", str(a.seconds)],
            env=env, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if a.json:
                print(line)
            else:
                c = json.loads(line)
                print(f"{c['variant']:<18} {c['threads']:>7} {c['batch']:>6} "
                      f"{c['us_per_sample']:>12.2f}")


if __name__ == "__main__":
    main()
