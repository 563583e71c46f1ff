#!/usr/bin/python3
"""PyTorch reference fixtures for bilinear resizing and the pixel loss (test/upsample.test.ts).

Run with Debian's python3 (package python3-torch, PyTorch 1.13):
    /usr/bin/python3 scripts/make_upsample_fixtures.py      writes test/fixtures/upsample.json

Same layout as scripts/make_fixtures.py (its FixtureFile). Cases:
- bilinearUpsample2d: F.interpolate(x, size, mode='bilinear', align_corners=...) up and down,
  integer and non-integer ratios, one axis unchanged, a 1-pixel input and a 1-pixel output.
- pixelCrossEntropy: F.cross_entropy(logits [N, C, H, W], labels [N, H, W], ignore_index=255)
  with some pixels ignored, as 'mean' and 'sum'.
"""
import torch
import torch.nn.functional as F

from make_fixtures import FixtureFile


def up(size, align):
    return lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=align)


def cases(f):
    for name, shape, size in [
        ("up_x8", [1, 2, 2, 3], [16, 24]),
        ("up_non_integer", [2, 3, 3, 5], [7, 11]),
        ("down", [1, 2, 9, 7], [4, 3]),
        ("mixed", [1, 1, 5, 4], [3, 10]),
        ("same_rows", [1, 2, 4, 3], [4, 6]),
        ("from_one_pixel", [1, 2, 1, 1], [3, 2]),
        ("to_one_pixel", [1, 1, 4, 5], [1, 1]),
    ]:
        for align in (False, True):
            f.case(
                f"{name}{'_align' if align else ''}",
                "bilinearUpsample2d",
                up(size, align),
                [f.rand(shape)],
                args={"size": size, "alignCorners": align},
            )
    for red in ("mean", "sum"):
        labels = f.ints([2, 3, 4], 5)
        labels[0, 1, :2] = 255
        labels[1, 2, 3] = 255
        f.case(
            f"pixel_ce_{red}",
            "pixelCrossEntropy",
            lambda x, y, r=red: F.cross_entropy(x, y, ignore_index=255, reduction=r),
            [f.rand([2, 5, 3, 4], -3, 3), labels],
            args={"reduction": red, "ignoreIndex": 255},
        )
    labels = f.ints([1, 6, 7], 3)
    labels[0, :, 0] = 255
    f.case(
        "pixel_ce_mean_wide",
        "pixelCrossEntropy",
        lambda x, y: F.cross_entropy(x, y, ignore_index=255),
        [f.rand([1, 3, 6, 7], -3, 3), labels],
        args={"reduction": "mean", "ignoreIndex": 255},
    )


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    f = FixtureFile("upsample", seed=7)
    cases(f)
    f.write()
