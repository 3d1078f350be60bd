#!/usr/bin/env python3
"""Write the small safetensors checkpoints of tests/fixtures/checkpoints/.

Run from anywhere:  python3 tools/make_checkpoints.py
Needs numpy and `pip install safetensors` (0.8.0 was used); no torch.

Each checkpoint is a tiny synthetic "hash net" (tools/SYNTHETIC_NETS.md, generated
by tools/reference.py) stored the way PyTorch's state dicts would store it, in
one of the layouts `crates/stylemap` loads:

| file | layout | what it exercises |
|---|---|---|
| nvlabs_uncond.safetensors | NVlabs, keys under `mapping.` | whole-Generator state dict (an extra `synthesis.*` tensor), hidden width != w_dim, metadata num_ws/lr_multiplier/source |
| nvlabs_cond.safetensors | NVlabs, no prefix | conditional (embed.*), num_ws from metadata `resolution` only |
| rosinality.safetensors | rosinality `style.{1..n}` | `latent_avg`, metadata num_ws |
| rosinality_noavg.safetensors | rosinality under `g_ema.` | no `latent_avg` (w_avg is estimated), num_ws from `resolution` |
| nvlabs_f16.safetensors | NVlabs, F16 tensors | dtype conversion |
| nvlabs_bf16.safetensors | NVlabs, BF16 tensors under `mapping.` | dtype conversion, conditional |
| nvlabs_bare.safetensors | NVlabs, no metadata at all | num_ws must be passed explicitly |

The malformed variants (missing key, wrong shape or dtype, truncation, bad
header, NaN, dims that do not chain) are made from these bytes by the Rust tests
in crates/stylemap/tests/malformed.rs, not stored.

`reference.json` beside them holds, per file, the dims, the metadata-derived
num_ws, the stored w_avg (after the dtype's rounding, as float32 values) and
cases: seed, class (or null), z = np.random.RandomState(seed).randn(z_dim)
(float64) and the float64 reference w of tools/reference.py computed from the
parameters *as stored* (f16/bf16-rounded where applicable). Rust tests check
load -> map against w within 1e-4.

Deterministic: the same numpy and safetensors give byte-identical files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import safetensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference as ref  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "checkpoints"
TOLERANCE_W_ABS = 1e-4


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(a, dtype="<f4").view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bf16_bits(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(
    tensors: dict[str, tuple[str, np.ndarray]], path: Path, metadata: dict[str, str]
) -> None:
    """Deterministic safetensors writer: {name: (dtype tag, little-endian array)}.

    The safetensors library serialises `__metadata__` from a hash map, so its key
    order (and the file's bytes) change from run to run; this writer sorts keys.
    The files are then read back with the official library (`check_roundtrip`).
    Layout as the format specifies: u64 LE header length, JSON header padded with
    spaces to a multiple of 8, then the tensors' bytes in header order.
    """
    header: dict = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    blobs = []
    offset = 0
    for name in sorted(tensors):
        tag, arr = tensors[name]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": tag, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    path.chmod(0o644)


def check_roundtrip(path: Path, expected: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """The official safetensors reader sees the same tensors and metadata."""
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert (f.metadata() or {}) == metadata, path
        assert sorted(f.keys()) == sorted(expected), path
        for k, v in expected.items():
            sl = f.get_slice(k)
            assert tuple(sl.get_shape()) == v.shape, (path, k)
            if sl.get_dtype() == "BF16":
                continue  # numpy cannot hold bf16; the Rust tests check these values
            got = f.get_tensor(k).astype(np.float32)
            assert np.array_equal(got, v), (path, k)


# name, NetSpec, layout, key prefix, dtype, metadata, extra tensors, cases [(seed, class)]
FIXTURES = [
    (
        "nvlabs_uncond",
        ref.NetSpec("nvlabs_uncond", 21, z_dim=16, c_dim=0, w_dim=16, num_layers=3, num_ws=6,
                    layer_features=24),
        "nvlabs", "mapping.", "f32",
        {"num_ws": "6", "lr_multiplier": "0.01", "source": "tools/make_checkpoints.py"},
        {"synthesis.b4.const": np.arange(32, dtype=np.float32).reshape(2, 4, 4)},
        [(0, None), (85, None)],
    ),
    (
        "nvlabs_cond",
        ref.NetSpec("nvlabs_cond", 22, z_dim=12, c_dim=5, w_dim=16, num_layers=2, num_ws=8),
        "nvlabs", "", "f32",
        {"resolution": "32"},
        {},
        [(1, 3), (2, 0)],
    ),
    (
        "rosinality",
        ref.NetSpec("rosinality", 23, z_dim=16, c_dim=0, w_dim=16, num_layers=4, num_ws=10),
        "rosinality", "", "f32",
        {"num_ws": "10", "source": "tools/make_checkpoints.py (rosinality layout)"},
        {},
        [(0, None), (7, None)],
    ),
    (
        "rosinality_noavg",
        ref.NetSpec("rosinality_noavg", 24, z_dim=16, c_dim=0, w_dim=16, num_layers=2,
                    num_ws=6),
        "rosinality", "g_ema.", "f32",
        {"resolution": "16"},
        {"g_ema.input.input": np.ones((1, 4, 2, 2), dtype=np.float32)},
        [(3, None)],
    ),
    (
        "nvlabs_f16",
        ref.NetSpec("nvlabs_f16", 25, z_dim=16, c_dim=0, w_dim=16, num_layers=3, num_ws=6),
        "nvlabs", "", "f16",
        {"num_ws": "6"},
        {},
        [(0, None), (1, None)],
    ),
    (
        "nvlabs_bf16",
        ref.NetSpec("nvlabs_bf16", 26, z_dim=16, c_dim=4, w_dim=16, num_layers=3, num_ws=6),
        "nvlabs", "mapping.", "bf16",
        {"num_ws": "6"},
        {},
        [(0, 2), (1, 1)],
    ),
    (
        "nvlabs_bare",
        ref.NetSpec("nvlabs_bare", 27, z_dim=8, c_dim=0, w_dim=8, num_layers=2, num_ws=4),
        "nvlabs", "", "f32",
        {},
        {},
        [(5, None)],
    ),
]


def stored_params(spec: ref.NetSpec, dtype: str) -> dict[str, np.ndarray]:
    """Hash-net params after the storage dtype's rounding, as float32."""
    p = ref.synthetic_params(spec)
    if dtype == "f16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in p.items()}
    if dtype == "bf16":
        return {k: from_bf16_bits(to_bf16_bits(v)) for k, v in p.items()}
    return p


def state_dict(params: dict[str, np.ndarray], layout: str, prefix: str) -> dict[str, np.ndarray]:
    if layout == "nvlabs":
        return {prefix + k: v for k, v in params.items()}
    out = {}
    for k, v in params.items():
        if k == "w_avg":
            out[prefix + "latent_avg"] = v
        else:
            i, kind = k[2:].split(".")  # fc{i}.weight -> style.{i+1}.weight
            out[f"{prefix}style.{int(i) + 1}.{kind}"] = v
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in list(OUT.glob("*.safetensors")) + [OUT / "reference.json"]:
        if old.exists():
            old.unlink()
    entries = []
    for name, spec, layout, prefix, dtype, metadata, extra, cases in FIXTURES:
        params = stored_params(spec, dtype)
        sd = state_dict(params, layout, prefix)
        has_w_avg = name != "rosinality_noavg"
        if not has_w_avg:
            sd = {k: v for k, v in sd.items() if not k.endswith("latent_avg")}
        sd.update(extra)
        path = OUT / f"{name}.safetensors"
        if dtype == "bf16":
            tagged = {k: ("BF16", to_bf16_bits(v).astype("<u2")) for k, v in sd.items()}
        elif dtype == "f16":
            tagged = {k: ("F16", v.astype("<f2")) for k, v in sd.items()}
        else:
            tagged = {k: ("F32", v.astype("<f4")) for k, v in sd.items()}
        write_safetensors(tagged, path, metadata)
        check_roundtrip(path, sd, metadata)
        out_cases = []
        for seed, cls in cases:
            z = ref.seed_z(seed, spec.z_dim)
            c = ref.one_hot(cls, spec.c_dim) if cls is not None else None
            w = ref.mapping(params, spec, z, c)[0]
            out_cases.append({"seed": seed, "class": cls, "z": z.tolist(), "w": w.tolist()})
        entries.append({
            "file": path.name,
            "layout": layout,
            "key_prefix": prefix,
            "dtype": dtype.upper(),
            "z_dim": spec.z_dim,
            "c_dim": spec.c_dim,
            "w_dim": spec.w_dim,
            "num_layers": spec.num_layers,
            "layer_features": spec.layer_features,
            "embed_features": spec.embed_features,
            "num_ws": spec.num_ws if metadata else None,
            "lr_multiplier": spec.lr_multiplier,
            "w_avg": params["w_avg"].astype(np.float64).tolist() if has_w_avg else None,
            "cases": out_cases,
        })
    manifest = {
        "tolerance_w_abs": TOLERANCE_W_ABS,
        "note": "Generated by tools/make_checkpoints.py: hash nets (tools/SYNTHETIC_NETS.md) "
                "stored as safetensors; w is the float64 reference (tools/reference.py) of the "
                "parameters as stored; z = np.random.RandomState(seed).randn(z_dim).",
        "numpy_version": np.__version__,
        "safetensors_version": safetensors.__version__,
        "fixtures": entries,
    }
    (OUT / "reference.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(entries)} checkpoints + reference.json to {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
