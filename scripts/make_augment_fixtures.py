#!/usr/bin/python3
"""Writes test/fixtures/augment.json: torchvision 0.14's functional ops, applied with fixed
parameters to a small float image, for test/augment.test.ts (train/data/augment.ts).

Run with the system Python, which has python3-torch and python3-torchvision:
  /usr/bin/python3 scripts/make_augment_fixtures.py
"""
import json
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode, RandomResizedCrop

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "augment.json"
H, W = 10, 12


def image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, H, W, generator=g)
    # Pixels that exercise the hue formula's special cases: gray (max == min), ties between the
    # largest channels, pure primaries, black and white.
    special = [(0.5, 0.5, 0.5), (0.8, 0.8, 0.2), (0.3, 0.9, 0.9), (0.7, 0.1, 0.7), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0), (1, 1, 1)]
    for k, rgb in enumerate(special):
        x[:, 0, k] = torch.tensor(rgb)
    # Values with 4 decimals are the same float32 in JSON on both sides.
    return torch.round(x * 10000) / 10000


def flat(t):
    return [float(f"{v:.8g}") for v in t.reshape(-1).tolist()]


def main():
    x = image()
    cases = []

    def add(name, op, params, out):
        cases.append({"name": name, "op": op, "params": params, "shape": list(out.shape), "out": flat(out)})

    for f in (0.6, 1.3):
        add(f"brightness {f}", "brightness", {"factor": f}, F.adjust_brightness(x, f))
    for f in (0.6, 1.4):
        add(f"contrast {f}", "contrast", {"factor": f}, F.adjust_contrast(x, f))
    for f in (0.6, 1.4):
        add(f"saturation {f}", "saturation", {"factor": f}, F.adjust_saturation(x, f))
    for f in (-0.1, 0.07, 0.5, -0.5):
        add(f"hue {f}", "hue", {"factor": f}, F.adjust_hue(x, f))
    add("grayscale", "grayscale", {}, F.rgb_to_grayscale(x, num_output_channels=3))
    for k, s in ((3, 0.4), (5, 1.3), (7, 2.0)):
        add(f"gaussian_blur k{k} s{s}", "blur", {"kernel": k, "sigma": s}, F.gaussian_blur(x, [k, k], [s, s]))
    add("hflip", "hflip", {}, F.hflip(x))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    add("normalize", "normalize", {"mean": mean, "std": std}, F.normalize(x, mean, std))
    box = {"top": 1, "left": 2, "height": 9, "width": 7}
    for oh, ow in ((5, 6), (4, 3), (16, 13), (9, 7), (2, 11)):
        for aa in (False, True):
            out = F.resized_crop(x, box["top"], box["left"], box["height"], box["width"], [oh, ow], InterpolationMode.BILINEAR, antialias=aa)
            add(f"resized_crop to {oh}x{ow} antialias={aa}", "resized_crop", {"box": box, "size": [oh, ow], "antialias": aa}, out)
    # A jitter sequence in a fixed order, as ColorJitter applies its four ops.
    y = F.adjust_hue(F.adjust_contrast(F.adjust_saturation(F.adjust_brightness(x, 1.2), 0.7), 1.3), -0.05)
    add("jitter b1.2 s0.7 c1.3 h-0.05", "jitter", {"order": [0, 2, 1, 3], "brightness": 1.2, "contrast": 1.3, "saturation": 0.7, "hue": -0.05}, y)

    # RandomResizedCrop's fallback (every try fails), which involves no random numbers.
    fallbacks = []
    for h, w, scale in ((10, 100, (1.0, 1.0)), (100, 10, (1.0, 1.0)), (50, 50, (2.0, 2.0)), (30, 41, (2.0, 2.0))):
        i, j, hh, ww = RandomResizedCrop.get_params(torch.zeros(3, h, w), list(scale), [3 / 4, 4 / 3])
        fallbacks.append({"height": h, "width": w, "scale": list(scale), "box": {"top": i, "left": j, "height": hh, "width": ww}})

    doc = {
        "generator": "scripts/make_augment_fixtures.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "input": {"shape": [3, H, W], "data": flat(x)},
        "cases": cases,
        "crop_fallback": fallbacks,
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")))
    print("wrote", OUT, OUT.stat().st_size, "bytes,", len(cases), "cases")


if __name__ == "__main__":
    main()
