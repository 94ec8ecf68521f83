#!/usr/bin/env python3
"""Independent reference for ROCmForge's block formats, built on the PyPI package gguf==0.19.0.

Used by rocmforge-gguf/tests/dequant_oracle.rs. Two commands, each over one directory:

  gguf_oracle.py dequantize DIR   for every DIR/<TYPE>.blocks (raw blocks of ggml type TYPE),
                                  write DIR/<TYPE>.f32 (little-endian f32 values)
  gguf_oracle.py quantize DIR     for every DIR/<TYPE>.src (little-endian f32 values),
                                  write DIR/<TYPE>.quant (raw blocks)

Every type is converted with gguf.quants.dequantize / gguf.quants.quantize, except the two
activation formats gguf 0.19.0 does not implement, Q8_1 and Q8_K: those are decoded here with
numpy from ggml-common.h's layouts (Q8_1: f16 d, f16 s, 32 x i8; Q8_K: f32 d, 256 x i8,
16 x i16). One line per file on stdout says which implementation was used.
Exit status 2 when gguf is missing or of another version.
"""

import sys
from importlib import metadata
from pathlib import Path

REQUIRED_GGUF = "0.19.0"


def fail(msg: str) -> "None":
    print(f"gguf_oracle: {msg}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
    import gguf
    import gguf.quants
except ImportError as e:  # pragma: no cover - reported to the Rust test
    fail(f"cannot import gguf/numpy ({e}); run `cargo xtask test` or "
         f"`python3 -m venv .venv && .venv/bin/pip install gguf=={REQUIRED_GGUF}`")

if metadata.version("gguf") != REQUIRED_GGUF:
    fail(f"gguf {metadata.version('gguf')} is installed, {REQUIRED_GGUF} is required")

QT = gguf.GGMLQuantizationType


def dequant_q8_1(raw: np.ndarray) -> np.ndarray:
    blocks = raw.reshape(-1, 36)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 4:36].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def dequant_q8_k(raw: np.ndarray) -> np.ndarray:
    blocks = raw.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)
    q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return (d * q).reshape(-1)


NUMPY_FALLBACK = {"Q8_1": dequant_q8_1, "Q8_K": dequant_q8_k}


def dequantize_dir(d: Path) -> None:
    for path in sorted(d.glob("*.blocks")):
        name = path.stem
        raw = np.fromfile(path, dtype=np.uint8)
        if name in NUMPY_FALLBACK:
            out = NUMPY_FALLBACK[name](raw)
            how = "numpy (not in gguf 0.19.0)"
        else:
            with np.errstate(all="ignore"):
                out = gguf.quants.dequantize(raw, QT[name])
            how = "gguf.quants.dequantize"
        np.asarray(out, dtype="<f4").reshape(-1).tofile(d / f"{name}.f32")
        print(f"{name}: {raw.size} bytes -> {np.asarray(out).size} values via {how}")


def quantize_dir(d: Path) -> None:
    for path in sorted(d.glob("*.src")):
        name = path.stem
        x = np.fromfile(path, dtype="<f4")
        qt = QT[name]
        block = gguf.GGML_QUANT_SIZES[qt][0]
        rows = x.reshape(-1, block) if block > 1 else x.reshape(1, -1)
        q = gguf.quants.quantize(rows, qt)
        np.ascontiguousarray(q).view(np.uint8).tofile(d / f"{name}.quant")
        print(f"{name}: {x.size} values via gguf.quants.quantize")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("dequantize", "quantize"):
        fail("usage: gguf_oracle.py (dequantize|quantize) DIR")
    d = Path(sys.argv[2])
    if not d.is_dir():
        fail(f"{d} is not a directory")
    if sys.argv[1] == "dequantize":
        dequantize_dir(d)
    else:
        quantize_dir(d)


if __name__ == "__main__":
    main()
