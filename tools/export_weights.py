#!/usr/bin/env python3
"""Export a StyleGAN mapping network to safetensors for `stylemap`.

Reads an NVlabs network pickle (StyleGAN2-ADA-pytorch, StyleGAN3, or a TF
StyleGAN2 pickle via NVlabs' `legacy.py`) or a rosinality/stylegan2-pytorch
checkpoint (`.pt`), and writes the mapping network's state dict plus the
hyper-parameters the state dict lacks:

    # NVlabs: clone stylegan3 (or stylegan2-ada-pytorch) and put it on PYTHONPATH
    PYTHONPATH=/path/to/stylegan3 python3 tools/export_weights.py ffhq.pkl -o ffhq-mapping.safetensors

    # rosinality: no source tree needed (it is a plain torch.load)
    python3 tools/export_weights.py 550000.pt -o ffhq-rosinality.safetensors

    stylemap inspect ffhq-mapping.safetensors
    stylemap map --weights ffhq-mapping.safetensors --seeds 0-15 --psi 0.7 --out ws.npy

Needs torch (to unpickle), numpy and `pip install safetensors`. Only the
mapping tensors are written (a few MB), not the synthesis network.

Output
------
NVlabs: `fc{i}.weight`, `fc{i}.bias`, `w_avg` (and `embed.weight`, `embed.bias`
for conditional networks), exactly as `G.mapping.state_dict()` holds them.
rosinality: `style.{i}.weight`, `style.{i}.bias` for i = 1..n_mlp, and
`latent_avg` when the checkpoint has one (else stylemap estimates it).
Metadata (all strings): `num_ws`, `lr_multiplier`, `resolution`, `source`
(the input file name and layout). stylemap reads `num_ws`, then `resolution`
(num_ws = 2*log2(resolution) - 2), and `lr_multiplier` (default 0.01).

Tensors are float32 unless --dtype f16 or bf16 is given.

Security: a pickle or a full `.pt` can run code when loaded. Only export files
you trust (this script calls `torch.load(..., weights_only=False)` for
rosinality checkpoints, which store an argparse Namespace).

One-liner for a network already in memory
-----------------------------------------
NVlabs (G is the Generator, e.g. `legacy.load_network_pkl(f)["G_ema"]`):

    import safetensors.torch
    safetensors.torch.save_file(
        {k: v.float().contiguous() for k, v in G.mapping.state_dict().items()},
        "mapping.safetensors",
        metadata={"num_ws": str(G.mapping.num_ws), "lr_multiplier": str(G.mapping.fc0.bias_gain),
                  "resolution": str(G.img_resolution), "source": "my-network.pkl"})

rosinality (g_ema is the Generator, latent_avg optional):

    safetensors.torch.save_file(
        {k: v.float().contiguous() for k, v in g_ema.state_dict().items() if k.startswith("style.")},
        "mapping.safetensors",
        metadata={"num_ws": str(g_ema.n_latent), "lr_multiplier": "0.01",
                  "resolution": str(g_ema.size), "source": "my-checkpoint.pt"})
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

NVLABS_KEY = re.compile(r"^(fc\d+\.(weight|bias)|embed\.(weight|bias)|w_avg)$")
ROSINALITY_KEY = re.compile(r"^style\.\d+\.(weight|bias)$")


def to_numpy(v: Any) -> np.ndarray:
    """A torch tensor (or anything array-like) as a contiguous float32 numpy array."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().float().numpy()
    return np.ascontiguousarray(np.asarray(v, dtype=np.float32))


def num_ws_from_resolution(resolution: int) -> int:
    return 2 * int(round(math.log2(resolution))) - 2


def select_nvlabs(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The mapping tensors of an NVlabs state dict (with or without `mapping.`)."""
    prefix = "mapping." if any(k.startswith("mapping.fc0.") for k in state) else ""
    out = {}
    for k, v in state.items():
        if k.startswith(prefix) and NVLABS_KEY.match(k[len(prefix):]):
            out[k[len(prefix):]] = to_numpy(v)
    if "fc0.weight" not in out:
        raise SystemExit("no NVlabs mapping network (fc0.weight) in the state dict")
    return out


def select_rosinality(state: Mapping[str, Any], latent_avg: Any = None) -> dict[str, np.ndarray]:
    """The mapping tensors of a rosinality Generator state dict (+ latent_avg)."""
    out = {k: to_numpy(v) for k, v in state.items() if ROSINALITY_KEY.match(k)}
    if "style.1.weight" not in out:
        raise SystemExit("no rosinality mapping network (style.1.weight) in the state dict")
    if latent_avg is not None:
        out["latent_avg"] = to_numpy(latent_avg).reshape(-1)
    return out


def rosinality_resolution(state: Mapping[str, Any]) -> Optional[int]:
    """size = 2**log_size with len(to_rgbs) = log_size - 2."""
    idx = {int(m.group(1)) for k in state if (m := re.match(r"^to_rgbs\.(\d+)\.", k))}
    return 2 ** (len(idx) + 2) if idx else None


def load_nvlabs(path: Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """G = pickle[key] (G_ema by default); needs NVlabs' source on PYTHONPATH."""
    try:
        import legacy  # type: ignore  # NVlabs' legacy.py: also converts TF pickles

        with open(path, "rb") as f:
            data = legacy.load_network_pkl(f)
    except ImportError:
        with open(path, "rb") as f:
            data = pickle.load(f)  # needs dnnlib and torch_utils importable
    G = data[key]
    mapping = G.mapping
    tensors = select_nvlabs(mapping.state_dict())
    meta = {
        "num_ws": str(int(mapping.num_ws)),
        "lr_multiplier": repr(float(mapping.fc0.bias_gain)),
        "resolution": str(int(G.img_resolution)),
        "source": f"{path.name} (NVlabs {key})",
    }
    return tensors, meta


def load_rosinality(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import torch  # type: ignore

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        ckpt = torch.load(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise SystemExit(f"{path}: not a checkpoint dict")
    state = ckpt.get("g_ema", ckpt)
    tensors = (
        select_rosinality(state, ckpt.get("latent_avg"))
        if any(ROSINALITY_KEY.match(k) for k in state)
        else select_nvlabs(state)
    )
    meta = {"source": f"{path.name} (rosinality g_ema)", "lr_multiplier": "0.01"}
    args = ckpt.get("args")
    size = getattr(args, "size", None) or rosinality_resolution(state)
    if size:
        meta["resolution"] = str(int(size))
        meta["num_ws"] = str(num_ws_from_resolution(int(size)))
    return tensors, meta


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(a, dtype="<f4").view(np.uint32).astype(np.uint64)
    return ((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16).astype(np.uint16)


def save(tensors: dict[str, np.ndarray], meta: dict[str, str], out: Path, dtype: str) -> None:
    import safetensors
    from safetensors.numpy import save_file

    for k, v in tensors.items():
        if not np.all(np.isfinite(v)):
            raise SystemExit(f"tensor {k} holds NaN or Inf; refusing to export")
    if dtype == "bf16":
        keep = {k: to_bf16_bits(v) for k, v in tensors.items()}
        specs = {
            k: safetensors.TensorSpec(
                dtype="bfloat16", shape=v.shape, data_ptr=v.ctypes.data, data_len=v.nbytes
            )
            for k, v in keep.items()
        }
        safetensors.serialize_file(specs, str(out), metadata=meta)
    else:
        np_dtype = np.float16 if dtype == "f16" else np.float32
        save_file({k: v.astype(np_dtype) for k, v in tensors.items()}, str(out), metadata=meta)


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path, help="NVlabs .pkl or rosinality .pt")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .safetensors")
    p.add_argument("--layout", choices=["auto", "nvlabs", "rosinality"], default="auto",
                   help="auto: .pkl is NVlabs, anything else is torch.load'ed")
    p.add_argument("--network", default="G_ema", help="NVlabs pickle entry (default G_ema)")
    p.add_argument("--num-ws", type=int, help="override num_ws")
    p.add_argument("--resolution", type=int, help="override resolution")
    p.add_argument("--lr-multiplier", type=float, help="override lr_multiplier")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    args = p.parse_args(argv)

    layout = args.layout
    if layout == "auto":
        layout = "nvlabs" if args.input.suffix == ".pkl" else "rosinality"
    if layout == "nvlabs":
        tensors, meta = load_nvlabs(args.input, args.network)
    else:
        tensors, meta = load_rosinality(args.input)

    if args.resolution is not None:
        meta["resolution"] = str(args.resolution)
        meta.setdefault("num_ws", str(num_ws_from_resolution(args.resolution)))
    if args.num_ws is not None:
        meta["num_ws"] = str(args.num_ws)
    if args.lr_multiplier is not None:
        meta["lr_multiplier"] = repr(args.lr_multiplier)
    if "num_ws" not in meta:
        print("warning: num_ws unknown; pass --num-ws or --resolution, or give stylemap --num-ws",
              file=sys.stderr)
    save(tensors, meta, args.out, args.dtype)
    n = sum(v.size for v in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} values, metadata {meta}")


if __name__ == "__main__":
    main()
