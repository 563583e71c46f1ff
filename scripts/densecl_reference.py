#!/usr/bin/python3
"""A PyTorch implementation of DenseCL written from ../shared/densecl-spec.md, independent of our
engine, used to make the parity fixture test/fixtures/densecl_step.safetensors:

  /usr/bin/python3 scripts/densecl_reference.py

One training step on a tiny configuration (ResNet-18 at width 1/16 with the small-image stem,
24x24 views, batch 4, BN statistics in 2 groups, queues of 8): the fixture holds the weights of
both encoders (torchvision names), the two views, the shuffle permutation, both queues, and the
expected global loss, dense loss, correspondence indices, gradients of every query-encoder
parameter, the key encoder after its EMA update, both queues after the enqueue and the BN
running statistics after the step.
"""
import math
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_safetensors_fixture import write  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "densecl_step.safetensors"
CFG = dict(width=1 / 16, img=24, batch=4, groups=2, queue=8, dim=16, tau=0.2, m=0.999, lam=0.5, momentum_bn=0.1, eps=1e-5)


class GroupedBN(nn.Module):
    """BatchNorm2d whose training statistics are computed per group of the batch (shuffle-BN on
    one device); running statistics move towards the mean over groups of (mean, unbiased var)."""

    def __init__(self, c, groups):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        outs, means, vars_ = [], [], []
        for chunk in x.chunk(self.groups, 0):
            mean = chunk.mean(dim=(0, 2, 3))
            var = chunk.var(dim=(0, 2, 3), unbiased=False)
            n = chunk.numel() / chunk.shape[1]
            y = (chunk - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + CFG["eps"])
            outs.append(y * self.weight[None, :, None, None] + self.bias[None, :, None, None])
            means.append(mean.detach())
            vars_.append(var.detach() * n / (n - 1))
        with torch.no_grad():
            mo = CFG["momentum_bn"]
            self.running_mean.mul_(1 - mo).add_(mo * torch.stack(means).mean(0))
            self.running_var.mul_(1 - mo).add_(mo * torch.stack(vars_).mean(0))
        return torch.cat(outs, 0)


def conv(i, o, k, s, p):
    return nn.Conv2d(i, o, k, s, p, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inp, planes, stride, groups):
        super().__init__()
        self.conv1 = conv(inp, planes, 3, stride, 1)
        self.bn1 = GroupedBN(planes, groups)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = GroupedBN(planes, groups)
        self.downsample = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(conv(inp, planes, 1, stride, 0), GroupedBN(planes, groups))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18Small(nn.Module):
    """torchvision's ResNet-18 names and blocks, scaled widths, 3x3 stride-1 stem, no max-pool."""

    def __init__(self, width, groups):
        super().__init__()
        w = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = conv(3, w[0], 3, 1, 1)
        self.bn1 = GroupedBN(w[0], groups)
        inp = w[0]
        for stage in range(4):
            blocks = []
            for b in range(2):
                stride = 2 if (b == 0 and stage > 0) else 1
                blocks.append(BasicBlock(inp, w[stage], stride, groups))
                inp = w[stage]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.out_channels = inp

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ResNet18Small(CFG["width"], CFG["groups"])
        c, d = self.backbone.out_channels, CFG["dim"]
        self.neck = nn.Module()
        self.neck.mlp = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, d))
        self.neck.mlp2 = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, d, 1))

    def forward(self, x):
        feats = self.backbone(x)
        n, c, h, w = feats.shape
        q = self.neck.mlp(feats.mean(dim=(2, 3)))
        grid = self.neck.mlp2(feats)
        q2 = grid.mean(dim=(2, 3))
        grid = grid.view(n, grid.shape[1], h * w)
        return feats.view(n, c, h * w), q, grid, q2


def contrastive(pos, neg, tau):
    logits = torch.cat([pos, neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


def global_loss(q, k, queue, tau):
    """MoCo-v2's loss: q, k [N, dim] L2-normalised, queue [K, dim] of negative keys."""
    return contrastive((q * k).sum(1, keepdim=True), q @ queue.t(), tau)


def dense_loss(q_grid, k_grid, qb, kb, queue2, tau):
    """DenseCL's dense loss and correspondence: grids [N, dim, S2] and backbone features
    [N, C, S2], all L2-normalised over dim 1; each query cell's positive is the key cell whose
    backbone feature is most similar. Returns (loss, indices [N, S2])."""
    sim = torch.matmul(qb.permute(0, 2, 1), kb)
    ind = sim.max(dim=2)[1]
    matched = torch.gather(k_grid, 2, ind.unsqueeze(1).expand(-1, k_grid.shape[1], -1))
    pos_dense = (q_grid * matched).sum(1).reshape(-1, 1)
    rows = q_grid.permute(0, 2, 1).reshape(-1, q_grid.shape[1])
    return contrastive(pos_dense, rows @ queue2.t(), tau), ind


def main():
    torch.manual_seed(0)
    enc_q, enc_k = Encoder(), Encoder()
    # Distinct key weights, so the EMA update is visible in the fixture.
    with torch.no_grad():
        for p in enc_k.parameters():
            p.add_(0.05 * torch.randn_like(p))
    B, S = CFG["batch"], CFG["img"]
    xq, xk = torch.randn(B, 3, S, S), torch.randn(B, 3, S, S)
    perm = torch.randperm(B)
    queue = F.normalize(torch.randn(CFG["queue"], CFG["dim"]), dim=1)
    queue2 = F.normalize(torch.randn(CFG["queue"], CFG["dim"]), dim=1)

    fixture = {}
    for name, t in enc_q.state_dict().items():
        fixture["q." + name] = t.clone()
    for name, t in enc_k.state_dict().items():
        fixture["k." + name] = t.clone()
    fixture.update(xq=xq, xk=xk, perm=perm.to(torch.int32), queue=queue.clone(), queue2=queue2.clone())

    qb, q, q_grid, _ = enc_q(xq)
    q = F.normalize(q, dim=1)
    q_grid = F.normalize(q_grid, dim=1)
    qb = F.normalize(qb, dim=1)
    with torch.no_grad():
        for pk, pq in zip(enc_k.parameters(), enc_q.parameters()):
            pk.mul_(CFG["m"]).add_((1 - CFG["m"]) * pq)
        kb, k, k_grid, k2 = enc_k(xk[perm])
        unshuffle = torch.argsort(perm)
        kb, k, k_grid, k2 = (t[unshuffle] for t in (kb, k, k_grid, k2))
        k, k2 = F.normalize(k, dim=1), F.normalize(k2, dim=1)
        k_grid, kb = F.normalize(k_grid, dim=1), F.normalize(kb, dim=1)
    loss_global = global_loss(q, k, queue, CFG["tau"])
    loss_dense, ind = dense_loss(q_grid, k_grid, qb, kb, queue2, CFG["tau"])
    loss = (1 - CFG["lam"]) * loss_global + CFG["lam"] * loss_dense
    loss.backward()

    fixture.update(loss_global=loss_global.detach().reshape(1), loss_dense=loss_dense.detach().reshape(1), ind=ind.to(torch.int32))
    for name, p in enc_q.named_parameters():
        fixture["grad." + name] = p.grad.clone()
    for name, p in enc_k.named_parameters():
        fixture["k_after." + name] = p.detach().clone()
    for prefix, enc in (("q_after.", enc_q), ("k_after.", enc_k)):
        for name, t in enc.named_buffers():
            fixture[prefix + name] = t.clone()
    queue[0:B] = k
    queue2[0:B] = k2
    fixture.update(queue_after=queue, queue2_after=queue2)
    write(OUT, {k: v.detach().numpy() for k, v in fixture.items()}, {k: str(v) for k, v in CFG.items()})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); loss_global {loss_global.item():.6f} loss_dense {loss_dense.item():.6f}")


if __name__ == "__main__":
    main()
