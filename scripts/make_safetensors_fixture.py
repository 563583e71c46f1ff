#!/usr/bin/python3
"""Writes test/fixtures/tiny.safetensors independently of our TypeScript code.

The `safetensors` Python package is not installed here, so the file is written by hand from the
format's definition (u64 little-endian header length, JSON header padded with spaces to a
multiple of 8, raw little-endian data; tensors ordered by dtype width then name, as the
reference writer does). The values are simple formulas that test/safetensors.test.ts re-derives.

  scripts/make_safetensors_fixture.py            write the fixture
  scripts/make_safetensors_fixture.py --check F  read F (e.g. one our code wrote) and print it
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "tiny.safetensors"

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U32": np.uint32, "U8": np.uint8}


def tensors():
    return {
        # torchvision-style names: a conv weight, BN vectors and the I64 scalar counter.
        "conv1.weight": (np.arange(2 * 3 * 3 * 3, dtype=np.float32) * 0.25 - 3.0).reshape(2, 3, 3, 3),
        "bn1.running_var": np.array([1.0, 0.5], dtype=np.float32),
        "bn1.num_batches_tracked": np.array(7, dtype=np.int64),
        "queue_ptr": np.array([-5, 2**40 + 3], dtype=np.int64),
        "labels": np.array([[0, -1, 2], [2147483647, -2147483648, 5]], dtype=np.int32),
        "rng_state": np.array([0, 1, 4294967295, 123456789], dtype=np.uint32),
        "mask": np.array([1, 0, 255], dtype=np.uint8),
    }


def write(path, ts, metadata):
    width = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "U32": 4, "U8": 1}
    name_of = {v: k for k, v in DTYPES.items()}
    items = sorted(ts.items(), key=lambda kv: (-width[name_of[kv[1].dtype.type]], kv[0]))
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, arr in items:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": name_of[arr.dtype.type], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b : base + e], dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")).reshape(info["shape"])
    return header.get("__metadata__", {}), out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        meta, ts = read(sys.argv[2])
        print("metadata", meta)
        for k in sorted(ts):
            print(k, ts[k].dtype, list(ts[k].shape), ts[k].ravel()[:6].tolist())
    else:
        write(OUT, tensors(), {"format": "pt", "note": "written by scripts/make_safetensors_fixture.py"})
        print("wrote", OUT, OUT.stat().st_size, "bytes")
