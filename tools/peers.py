#!/usr/bin/env python3
"""Times peers (numpy with its BLAS, ONNX Runtime) on the mapping network's
forward, measured on the same machine in the same session as
`stylemap bench`.

The network is the 8 x 512 shape of StyleGAN2's mapping network with
folded f32 weights (random values of the folded scale: speed does not
depend on them). One forward: normalise z (x / sqrt(mean(x^2) + 1e-8)),
then per layer `y = x @ W.T + b` and leaky ReLU (slope 0.2).

- numpy: what a numpy user writes (BLAS sgemm per layer).
- onnxruntime: the same graph as ONNX (ReduceMean/Sqrt/Div, then MatMul,
  Add, LeakyRelu per layer; batch dimension dynamic), default graph
  optimisations, `intra_op_num_threads` = the thread count. Needs the
  `onnxruntime` and `onnx` packages.
- torch / torch.compile: `addmm` + `leaky_relu` per layer under
  `inference_mode`, `torch.set_num_threads`; compiled with inductor
  (`dynamic=False`: one graph per batch size, compiled in the warm-up).
A peer whose package is missing is skipped with a note.

    python3 tools/peers.py --threads 1,2 --batch 1,8,64,512 --json

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


def network():
    import numpy as np

    rng = np.random.default_rng(0)
    dim, layers = 512, 8
    # Folded weights: N(0, 1) * lr / sqrt(in) * sqrt(2), lr = 0.01.
    scale = 0.01 / np.sqrt(dim) * np.sqrt(2.0)
    wts = [np.ascontiguousarray((rng.standard_normal((dim, dim)) * scale).astype(np.float32).T)
           for _ in range(layers)]
    bs = [np.zeros(dim, np.float32) for _ in range(layers)]
    return dim, wts, bs


def numpy_forward():
    import numpy as np

    _, wts, bs = network()

    def forward(z):
        x = z / np.sqrt(np.mean(z * z, axis=1, keepdims=True) + np.float32(1e-8))
        for wt, b in zip(wts, bs):
            y = x @ wt
            y += b
            np.maximum(y, y * np.float32(0.2), out=y)
            x = y
        return x

    return f"numpy-{np.__version__}", forward


def ort_forward(threads):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    dim, wts, bs = network()
    nodes, inits = [], [numpy_helper.from_array(np.array(1e-8, np.float32), "eps")]
    nodes += [
        helper.make_node("Mul", ["z", "z"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["mse"]),
        helper.make_node("Sqrt", ["mse"], ["rms"]),
        helper.make_node("Div", ["z", "rms"], ["x0"]),
    ]
    x = "x0"
    for i, (wt, b) in enumerate(zip(wts, bs)):
        inits += [numpy_helper.from_array(wt, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("LeakyRelu", [f"a{i}"], [f"x{i + 1}"], alpha=0.2),
        ]
        x = f"x{i + 1}"
    graph = helper.make_graph(
        nodes, "mapping",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", dim])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])

    def forward(z):
        return sess.run(None, {"z": z})[0]

    return f"onnxruntime-{ort.__version__}", forward


def torch_forward(threads, compiled):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    _, wts, bs = network()
    ws = [torch.from_numpy(w) for w in wts]
    bt = [torch.from_numpy(b) for b in bs]

    def fwd(z):
        x = z * torch.rsqrt(torch.mean(z * z, dim=1, keepdim=True) + 1e-8)
        for w, b in zip(ws, bt):
            x = torch.nn.functional.leaky_relu(torch.addmm(b, x, w), 0.2)
        return x

    f = torch.compile(fwd, dynamic=False) if compiled else fwd

    def forward(z):
        with torch.inference_mode():
            return f(torch.from_numpy(z))

    name = "torch.compile" if compiled else "torch-eager"
    return f"{name}-{torch.__version__.split('+')[0]}", forward


def child(peer, threads, batches, seconds):
    import numpy as np

    makers = {
        "numpy": numpy_forward,
        "onnxruntime": lambda: ort_forward(threads),
        "torch": lambda: torch_forward(threads, False),
        "torch.compile": lambda: torch_forward(threads, True),
    }
    try:
        variant, forward = makers[peer]()
    except ImportError as e:
        print(f"note: {peer} skipped ({e})", file=sys.stderr)
        return
    rng = np.random.default_rng(1)
    for batch in batches:
        z = rng.standard_normal((batch, 512)).astype(np.float32)
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
            "variant": variant,
            "threads": threads,
            "batch": batch,
            "us_per_sample": round(med * 1e6 / batch, 3),
        }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", default="1,8,64,512")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--peers", default="numpy,onnxruntime,torch,torch.compile")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    batches = [int(b) for b in a.batch.split(",")]
    if a.child is not None:
        child(a.peers, a.child, batches, a.seconds)
        return
    if not a.json:
        print(f"{'variant':<24} {'threads':>7} {'batch':>6} {'µs/sample':>12}")
    cases = [(p, int(t)) for p in a.peers.split(",") for t in a.threads.split(",")]
    for peer, t in cases:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t),
                   MKL_NUM_THREADS=str(t))
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(t), "--peers", peer,
             "--batch", a.batch, "--seconds", str(a.seconds)],
            env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            if a.json:
                print(line)
            else:
                c = json.loads(line)
                print(f"{c['variant']:<18} {c['threads']:>7} {c['batch']:>6} "
                      f"{c['us_per_sample']:>12.2f}")

if __name__ == "__main__":
    main()
