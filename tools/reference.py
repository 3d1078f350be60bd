#!/usr/bin/env python3
"""Independent float64 reference of NVlabs' StyleGAN MappingNetwork (SPEC.md §1).

Written from the maths in SPEC.md, not from NVlabs' code. Parameters and gains
are float32 values (as torch holds them); every operation after that is float64.

Also generates the synthetic "hash nets" of tools/SYNTHETIC_NETS.md, bit for bit
like the Rust test kit (src/lib.rs).

Only dependency: numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

MASK32 = 0xFFFFFFFF
SQRT3 = 1.7320508075688772  # the literal of SYNTHETIC_NETS.md
EPS = 1e-8  # normalize_2nd_moment, inside the root
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


# --------------------------------------------------------------------------
# Synthetic hash nets (tools/SYNTHETIC_NETS.md)
# --------------------------------------------------------------------------


def lowbias32(x: int) -> int:
    """Chris Wellons' lowbias32 integer hash, all arithmetic mod 2^32."""
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


def hash_unit(tensor_id: int, i: int) -> float:
    """Value in [-1, 1) for element i of tensor tensor_id; exact in f64."""
    h = lowbias32((tensor_id * 0x9E3779B9 + i) & MASK32)
    return (float(h >> 8) - 2.0**23) / 2.0**23


def _lowbias32_vec(x: np.ndarray) -> np.ndarray:
    """Vectorised lowbias32 on uint64 arrays holding 32-bit values."""
    x = x & MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


def hash_units(tensor_id: int, n: int) -> np.ndarray:
    """hash_unit(tensor_id, i) for i in 0..n, as float64 (vectorised)."""
    base = (tensor_id * 0x9E3779B9) & MASK32
    idx = np.arange(n, dtype=np.uint64)
    h = _lowbias32_vec((idx + np.uint64(base)) & np.uint64(MASK32))
    return ((h >> np.uint64(8)).astype(np.float64) - 2.0**23) / 2.0**23


@dataclass
class NetSpec:
    """Hyper-parameters of one mapping network (NVlabs names)."""

    name: str
    salt: int
    z_dim: int
    c_dim: int
    w_dim: int
    num_layers: int
    num_ws: int
    layer_features: Optional[int] = None  # None -> w_dim
    embed_features: Optional[int] = None  # None -> w_dim if c_dim > 0 else 0
    lr_multiplier: float = 0.01
    activation: str = "lrelu"  # "lrelu" | "linear"

    def __post_init__(self) -> None:
        if self.layer_features is None:
            self.layer_features = self.w_dim
        if self.embed_features is None:
            self.embed_features = self.w_dim if self.c_dim > 0 else 0
        if self.c_dim == 0:
            self.embed_features = 0
        assert self.activation in ("lrelu", "linear")

    def features(self) -> list[int]:
        """[z_dim + embed_features] + [layer_features]*(num_layers-1) + [w_dim]."""
        return (
            [self.z_dim + self.embed_features]
            + [self.layer_features] * (self.num_layers - 1)
            + [self.w_dim]
        )


def synthetic_params(spec: NetSpec) -> dict[str, np.ndarray]:
    """Raw float32 state dict of the hash net `spec` (SYNTHETIC_NETS.md)."""

    def tensor(k: int, shape: tuple[int, ...], scale: float, lr: float = 1.0) -> np.ndarray:
        n = int(np.prod(shape))
        u = hash_units(spec.salt * 1000 + k, n)
        # Left to right in f64: (unit * scale) / lr, then rounded once to f32.
        vals = (u * scale) / lr if lr != 1.0 else u * scale
        return vals.astype(np.float32).reshape(shape)

    p: dict[str, np.ndarray] = {}
    feats = spec.features()
    for i in range(spec.num_layers):
        fin, fout = feats[i], feats[i + 1]
        p[f"fc{i}.weight"] = tensor(2 * i, (fout, fin), SQRT3, spec.lr_multiplier)
        p[f"fc{i}.bias"] = tensor(2 * i + 1, (fout,), 50.0)
    if spec.c_dim > 0:
        p["embed.weight"] = tensor(100, (spec.embed_features, spec.c_dim), SQRT3)
        p["embed.bias"] = tensor(101, (spec.embed_features,), 0.5)
    p["w_avg"] = tensor(200, (spec.w_dim,), 2.0)
    return p


# --------------------------------------------------------------------------
# The mapping network (SPEC.md §1), float64
# --------------------------------------------------------------------------


def normalize_2nd_moment(x: np.ndarray) -> np.ndarray:
    """x * rsqrt(mean(x^2) + 1e-8) over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS)


def fully_connected(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, lr: float, activation: str
) -> np.ndarray:
    """NVlabs FullyConnectedLayer: act(x @ (W*wg)^T + b*bg)."""
    fin = weight.shape[1]
    wg = np.float32(lr / np.sqrt(np.float64(fin)))  # f64, rounded to f32
    bg = np.float32(lr)  # python float times an f32 tensor -> f32 scalar
    w = weight.astype(np.float64) * np.float64(wg)
    b = bias.astype(np.float64) * np.float64(bg)
    y = x @ w.T + b
    if activation == "lrelu":
        y = np.where(y >= 0.0, y, y * LRELU_SLOPE) * LRELU_GAIN
    return y


def mapping(
    params: dict[str, np.ndarray],
    spec: NetSpec,
    z: np.ndarray,
    c: Optional[np.ndarray] = None,
    psi: float = 1.0,
    cutoff: Optional[int] = None,
) -> np.ndarray:
    """z [z_dim] (and c [c_dim]) -> ws [num_ws, w_dim], float64."""
    x = normalize_2nd_moment(np.asarray(z).astype(np.float32).astype(np.float64))
    if spec.c_dim > 0:
        assert c is not None
        c64 = np.asarray(c).astype(np.float32).astype(np.float64)
        y = fully_connected(c64, params["embed.weight"], params["embed.bias"], 1.0, "linear")
        x = np.concatenate([x, normalize_2nd_moment(y)], axis=-1)
    for i in range(spec.num_layers):
        x = fully_connected(
            x, params[f"fc{i}.weight"], params[f"fc{i}.bias"], spec.lr_multiplier, spec.activation
        )
    ws = np.repeat(x[np.newaxis, :], spec.num_ws, axis=0)
    if psi != 1:
        w_avg = params["w_avg"].astype(np.float64)
        n = spec.num_ws if cutoff is None else min(cutoff, spec.num_ws)
        ws[:n] = w_avg + psi * (ws[:n] - w_avg)
    return ws


def seed_z(seed: int, z_dim: int) -> np.ndarray:
    """z as NVlabs' scripts draw it: RandomState(seed).randn(z_dim), float64."""
    return np.random.RandomState(seed).randn(z_dim)


def one_hot(class_idx: int, c_dim: int) -> np.ndarray:
    c = np.zeros(c_dim, dtype=np.float32)
    c[class_idx] = 1.0
    return c


def _self_test() -> None:
    # Hand-checked hash values (also pinned in src/lib.rs's unit tests).
    assert lowbias32(0) == 0
    assert lowbias32(0xFFFFFFFF) == lowbias32(-1 & MASK32)
    for tid, i in [(1000, 0), (1000, 5), (4200, 123456), (6201, 7)]:
        assert hash_units(tid, i + 1)[i] == hash_unit(tid, i)
    # psi=0 gives exactly w_avg; psi=1 leaves all layers identical.
    spec = NetSpec("t", 9, 5, 3, 4, 2, 6, layer_features=7)
    p = synthetic_params(spec)
    z = seed_z(0, 5)
    c = one_hot(1, 3)
    ws0 = mapping(p, spec, z, c, psi=0.0, cutoff=3)
    assert np.array_equal(ws0[:3], np.tile(p["w_avg"].astype(np.float64), (3, 1)))
    ws1 = mapping(p, spec, z, c)
    assert np.array_equal(ws1, np.tile(ws1[0], (6, 1)))
    assert np.array_equal(ws0[3:], ws1[3:])


if __name__ == "__main__":
    _self_test()
    for x in [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF]:
        print(f"lowbias32({x:#x}) = {lowbias32(x):#010x}")
    for tid, i in [(1000, 0), (1000, 1), (1001, 0), (2100, 3), (5200, 18)]:
        print(f"hash_unit({tid}, {i}) = {hash_unit(tid, i)!r}")
    print("self-test ok")
