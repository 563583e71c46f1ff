#!/usr/bin/python3
"""The training step of `npm run bench -- gpu` in PyTorch, to set beside our engine's on one GPU.

The step is train/trainer.ts's: the query encoder's forward (torchvision's ResNet without fc, the
global MLP head Linear-ReLU-Linear and, for DenseCL, the dense head 1x1 conv-ReLU-1x1 conv), the
momentum update of the key encoder's parameters, the key encoder's forward on the shuffled key
batch (shuffle-BN on one device: BN statistics in groups of the batch, outputs unshuffled),
MoCo-v2's global loss against a queue and DenseCL's dense loss (the loss code of
scripts/densecl_reference.py), backward, SGD with momentum and weight decay, the enqueue. The
width multiplier and small-image stem of models/resnet.ts are supported for small test sizes.

  bench_torch_cuda.py --cases JSON [--warmup 3] [--steps 10] [--modes fp32,tf32,bf16] [--device cuda]
      Times each case (a JSON list of train/trainer.ts TrainerOptions) in each mode on synthetic
      inputs: the median of --steps steps after --warmup, each step synchronised. Prints one
      JSON object. Without torch, torchvision or a CUDA device it prints {"unavailable": why,
      "missing": what} and exits 2. --device cpu runs the same on the CPU (to try the script).
  bench_torch_cuda.py --check STATE INPUTS [STATE INPUTS ...]
      Steps on the CPU in fp32 from our engine's state (Trainer.saveState: configuration,
      weights, queues) and inputs (xq, xk [T, B, 3, S, S] and the shuffle permutations perm
      [T, B]); prints the losses of each step of each pair as JSON {"runs": [[{loss, lossGlobal,
      lossDense}, ...], ...]}. test/bench_gpu.test.ts compares them with our steps'.

Modes: fp32 = TF32 off for matmuls and cuDNN; tf32 = TF32 on; bf16 = autocast to bfloat16 with
channels_last. cudnn.benchmark is on.
"""
import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path


def unavailable(why, missing):
    print(json.dumps({"unavailable": why, "missing": missing}))
    sys.exit(2)


try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
except ImportError as e:
    unavailable(f"{e} in {sys.executable} (Debian: apt-get install python3-torch python3-torchvision; or set BENCH_PYTHON to a python with them)", "torch")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch_step import GroupedBatchNorm2d  # noqa: E402
from densecl_reference import dense_loss, global_loss  # noqa: E402
from make_safetensors_fixture import read as read_safetensors  # noqa: E402

LAYOUT = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]), "resnet50": (Bottleneck, [3, 4, 6, 3])}


def check_config(cfg):
    if cfg["arch"] not in LAYOUT:
        raise SystemExit(f"bench_torch_cuda: arch {cfg['arch']!r} is not one of {sorted(LAYOUT)}")
    if cfg.get("startIters", 0) != 0 or cfg.get("totalSteps", 0) != 0:
        raise SystemExit("bench_torch_cuda: the step takes a constant learning rate and lambda (startIters 0, totalSteps 0)")


class ScaledResNet(ResNet):
    """torchvision's ResNet with every stage width times `width` (rounded as models/resnet.ts
    does) and optionally the small-image stem (3x3 stride-1 conv, no max-pool); width 1 with the
    7x7 stem is torchvision's model."""

    def __init__(self, arch, width, small_stem, norm):
        self.scale = lambda c: max(1, math.floor(c * width + 0.5))
        block, layers = LAYOUT[arch]
        super().__init__(block, layers, norm_layer=norm)
        del self.fc
        c = self.scale(64)
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False) if small_stem else nn.Conv2d(3, c, 7, 2, 3, bias=False)
        self.bn1 = norm(c)
        if small_stem:
            self.maxpool = nn.Identity()
        self.out_channels = self.scale(512) * block.expansion

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = self.scale(64)
        return super()._make_layer(block, self.scale(planes), blocks, stride, dilate)


class Encoder(nn.Module):
    """Backbone and heads under our engine's parameter names (backbone.*, neck.mlp.*, neck.mlp2.*)."""

    def __init__(self, cfg):
        super().__init__()
        groups = cfg["bnGroups"]
        norm = nn.BatchNorm2d if groups == 1 else (lambda c: GroupedBatchNorm2d(c, groups))
        self.backbone = ScaledResNet(cfg["arch"], cfg["width"], cfg["smallStem"], norm)
        self.dense = cfg["method"] == "densecl"
        c, d = self.backbone.out_channels, cfg["dim"]
        self.neck = nn.Module()
        self.neck.mlp = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, d))
        if self.dense:
            self.neck.mlp2 = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True), nn.Conv2d(c, d, 1))

    def forward(self, x):
        """Global embedding [N, dim]; for DenseCL also the backbone features [N, C, S2] (no
        gradient: they only choose the correspondence), the dense grid [N, dim, S2] and its
        pooled vector [N, dim]; each L2-normalised over dim 1."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        feats = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        n, c, h, w = feats.shape
        g = F.normalize(self.neck.mlp(feats.mean(dim=(2, 3))), dim=1)
        if not self.dense:
            return g, None, None, None
        grid = self.neck.mlp2(feats)
        pooled = F.normalize(grid.mean(dim=(2, 3)), dim=1)
        grid = F.normalize(grid.reshape(n, grid.shape[1], h * w), dim=1)
        return g, F.normalize(feats.detach().reshape(n, c, h * w), dim=1), grid, pooled


class Step:
    """Both encoders, the queues ([K, dim], one key per row, as ours) and SGD."""

    def __init__(self, cfg, device):
        check_config(cfg)
        self.cfg = cfg
        self.q = Encoder(cfg).to(device)
        self.k = Encoder(cfg).to(device)
        self.k.load_state_dict(self.q.state_dict())
        for p in self.k.parameters():
            p.requires_grad = False
        shape = (cfg["queueSize"], cfg["dim"])
        self.queue = F.normalize(torch.randn(shape, device=device), dim=1)
        self.queue2 = F.normalize(torch.randn(shape, device=device), dim=1) if self.q.dense else None
        self.ptr = 0
        # The learning rate per 256 images scaled to the batch (train/optim/schedule.ts scaledLr).
        lr = cfg["lr"] * cfg["batchSize"] / 256
        self.opt = torch.optim.SGD(self.q.parameters(), lr=lr, momentum=cfg["momentum"], weight_decay=cfg["weightDecay"])

    def load(self, state):
        """Our engine's checkpoint tensors: encoder_q.*, encoder_k.*, queue, queue2 (+ pointers)."""
        meta, tensors = state
        for prefix, enc in (("encoder_q.", self.q), ("encoder_k.", self.k)):
            own = {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in tensors.items() if k.startswith(prefix)}
            missing, unexpected = enc.load_state_dict(own, strict=False)
            missing = [m for m in missing if not m.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise SystemExit(f"bench_torch_cuda: the state does not fit {self.cfg['arch']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.queue.copy_(torch.from_numpy(tensors["queue"].copy()))
        if self.queue2 is not None:
            self.queue2.copy_(torch.from_numpy(tensors["queue2"].copy()))
        self.ptr = int(meta.get("queue_ptr", 0))

    def __call__(self, xq, xk, perm, autocast):
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        with autocast:
            q, qb, q_grid, _ = self.q(xq)
            with torch.no_grad():
                m = cfg["emaMomentum"]
                for pk, pq in zip(self.k.parameters(), self.q.parameters()):
                    pk.mul_(m).add_(pq.detach(), alpha=1 - m)
                unshuffle = torch.argsort(perm)
                k, kb, k_grid, k2 = (t[unshuffle] if t is not None else None for t in self.k(xk[perm]))
            loss_global = global_loss(q, k, self.queue, cfg["tau"])
            loss_dense = None
            loss = loss_global
            if self.q.dense:
                loss_dense, _ = dense_loss(q_grid, k_grid, qb, kb, self.queue2, cfg["tau"])
                loss = (1 - cfg["lambda"]) * loss_global + cfg["lambda"] * loss_dense
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            n = k.shape[0]
            self.queue[self.ptr:self.ptr + n] = k
            if self.queue2 is not None:
                self.queue2[self.ptr:self.ptr + n] = k2
            self.ptr = (self.ptr + n) % cfg["queueSize"]
        return loss, loss_global, loss_dense


def set_mode(mode, device):
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    if mode == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def time_case(cfg, mode, args, device):
    torch.manual_seed(0)
    autocast = set_mode(mode, device)
    step = Step(cfg, device)
    B, S = cfg["batchSize"], cfg["imgSize"]
    xq = torch.randn(B, 3, S, S, device=device)
    xk = torch.randn(B, 3, S, S, device=device)
    if mode == "bf16":
        step.q.to(memory_format=torch.channels_last)
        step.k.to(memory_format=torch.channels_last)
        xq, xk = xq.contiguous(memory_format=torch.channels_last), xk.contiguous(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.warmup + args.steps):
        perm = torch.randperm(B, device=device)
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss, _, _ = step(xq, xk, perm, autocast())
        if cuda:
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    value = loss.item()
    if value != value or abs(value) == float("inf"):
        raise SystemExit(f"bench_torch_cuda: the loss is {value} ({cfg['method']} {cfg['arch']} {mode})")
    ms = 1000 * statistics.median(times)
    out = {
        "arch": cfg["arch"], "method": cfg["method"], "batch": B, "size": S, "queue": cfg["queueSize"], "bnGroups": cfg["bnGroups"],
        "mode": mode, "ms": ms, "ms_min": 1000 * min(times), "img_s": B / (ms / 1000), "step_ms": [round(1000 * t, 3) for t in times],
        "loss": value, "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
    }
    del step, xq, xk
    if cuda:
        torch.cuda.empty_cache()
    return out


def bench(args):
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        unavailable(f"torch {torch.__version__} ({build}) in {sys.executable} sees no CUDA device", "cuda")
    cases = json.loads(args.cases)
    results = []
    for cfg in cases:
        for mode in args.modes.split(","):
            if mode not in ("fp32", "tf32", "bf16"):
                raise SystemExit(f"bench_torch_cuda: unknown mode {mode!r}; use fp32, tf32 or bf16")
            r = time_case(cfg, mode, args, device)
            print(f"[torch] {r['method']} {r['arch']} batch {r['batch']} {r['size']} px {mode}: {r['ms']:.2f} ms/step", file=sys.stderr, flush=True)
            results.append(r)
    print(json.dumps({
        "torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "warmup": args.warmup, "steps": args.steps, "results": results,
    }))


def check(state_path, inputs_path):
    """The losses of the steps of one (state, inputs) pair."""
    meta, tensors = read_safetensors(state_path)
    cfg = json.loads(meta["counters"])["config"]
    torch.manual_seed(0)
    step = Step(cfg, torch.device("cpu"))
    step.load((meta, tensors))
    _, inputs = read_safetensors(inputs_path)
    losses = []
    for t in range(inputs["xq"].shape[0]):
        xq, xk = (torch.from_numpy(inputs[name][t].copy()) for name in ("xq", "xk"))
        perm = torch.from_numpy(inputs["perm"][t].astype("int64"))
        loss, lg, ld = step(xq, xk, perm, contextlib.nullcontext())
        losses.append({"loss": loss.item(), "lossGlobal": lg.item(), "lossDense": None if ld is None else ld.item()})
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="JSON list of TrainerOptions")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--modes", default="fp32,tf32,bf16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--check", nargs="+", metavar="STATE INPUTS")
    args = ap.parse_args()
    if args.check:
        if len(args.check) % 2:
            ap.error("--check takes pairs of files: STATE INPUTS [STATE INPUTS ...]")
        pairs = zip(args.check[::2], args.check[1::2])
        print(json.dumps({"torch": torch.__version__, "runs": [check(s, i) for s, i in pairs]}))
    elif args.cases:
        bench(args)
    else:
        ap.error("give --cases JSON (benchmark) or --check STATE INPUTS")


if __name__ == "__main__":
    main()
