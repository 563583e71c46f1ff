#!/usr/bin/python3
"""Checks an exported backbone against torchvision (python3-torch / python3-torchvision 0.14):

  /usr/bin/python3 scripts/verify_export.py RUNDIR/backbone_torchvision.safetensors resnet18|resnet50

Loads the file into torchvision's model (every key must match; fc alone may be missing), runs
our engine's `densecl features` on the same random input, and compares the last-stage features
(eval-mode BN) with torchvision's. Prints the key check and the largest relative difference.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_safetensors_fixture import read, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(path, arch):
    _, tensors = read(path)
    model = getattr(torchvision.models, arch)()
    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = sorted(result.missing_keys), sorted(result.unexpected_keys)
    print(f"missing keys: {missing}\nunexpected keys: {unexpected}")
    ok_keys = missing == ["fc.bias", "fc.weight"] and unexpected == []
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            h = getattr(model, name)(h)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "input.safetensors", Path(tmp) / "features.safetensors"
        write(inp, {"input": x.numpy()}, {})
        subprocess.run(["node", str(ROOT / "dist/cli.mjs"), "features", "--backbone", str(path), "--arch", arch, "--input", str(inp), "--out", str(out)], check=True)
        ours = torch.from_numpy(np.array(read(out)[1]["features"]))
    scale = h.abs().max().item()
    diff = (ours - h).abs().max().item()
    print(json.dumps({"arch": arch, "keys_match_except_fc": ok_keys, "max_abs_diff": diff, "max_abs_feature": scale, "relative": diff / scale}))
    return 0 if ok_keys and diff <= 1e-4 * scale else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
