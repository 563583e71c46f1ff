"""Times a MoCo-v2-like ResNet-18 training step in PyTorch on the CPU and prints one JSON line.

The step matches bench/train_step.ts's MoCo-v2 step on our engine: query encoder forward and
backward (torchvision ResNet-18 without fc, global MLP head 512-512-128, L2 normalisation),
momentum update of the key encoder's parameters, key encoder forward on a permuted batch with BN
statistics in groups (shuffle-BN emulated on one device), contrastive loss against a queue of
negatives, SGD with momentum and weight decay, enqueue.

Usage: python3 scripts/bench_torch_step.py [--batch 32] [--size 64] [--threads 2] [--steps 8]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class GroupedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are computed per group of the batch.

    The batch is split into `groups` contiguous blocks; folding the block index into the channel
    dimension lets one batch_norm call compute per-(group, channel) statistics. Running
    statistics are updated with the mean over groups.
    """

    def __init__(self, channels, groups):
        super().__init__(channels)
        self.groups = groups

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        n, c, h, w = x.shape
        g = self.groups
        folded = x.view(g, n // g, c, h, w).transpose(0, 1).reshape(n // g, g * c, h, w)
        rm = self.running_mean.repeat(g)
        rv = self.running_var.repeat(g)
        y = F.batch_norm(folded, rm, rv, self.weight.repeat(g), self.bias.repeat(g), True, self.momentum, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(rm.view(g, c).mean(0))
            self.running_var.copy_(rv.view(g, c).mean(0))
        return y.view(n // g, g, c, h, w).transpose(0, 1).reshape(n, c, h, w)


def encoder(groups, dim):
    net = torchvision.models.resnet18(norm_layer=lambda c: GroupedBatchNorm2d(c, groups))
    net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, dim))
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--groups', type=int, default=8)
    ap.add_argument('--queue', type=int, default=4096)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dim, tau, m = 128, 0.2, 0.999

    enc_q = encoder(args.groups, dim)
    enc_k = encoder(args.groups, dim)
    enc_k.load_state_dict(enc_q.state_dict())
    for p in enc_k.parameters():
        p.requires_grad = False
    queue = F.normalize(torch.randn(dim, args.queue), dim=0)
    ptr = 0
    opt = torch.optim.SGD(enc_q.parameters(), lr=0.03 * args.batch / 256, momentum=0.9, weight_decay=1e-4)
    xq = torch.randn(args.batch, 3, args.size, args.size)
    xk = torch.randn(args.batch, 3, args.size, args.size)

    def step():
        nonlocal ptr, queue
        opt.zero_grad()
        q = F.normalize(enc_q(xq), dim=1)
        with torch.no_grad():
            for pk, pq in zip(enc_k.parameters(), enc_q.parameters()):
                pk.mul_(m).add_(pq.detach(), alpha=1 - m)
            perm = torch.randperm(args.batch)
            k = F.normalize(enc_k(xk[perm]), dim=1)[torch.argsort(perm)]
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ queue
        logits = torch.cat([l_pos, l_neg], 1) / tau
        loss = F.cross_entropy(logits, torch.zeros(args.batch, dtype=torch.long))
        loss.backward()
        opt.step()
        with torch.no_grad():
            queue[:, ptr:ptr + args.batch] = k.t()
            ptr = (ptr + args.batch) % args.queue
        return loss.item()

    for _ in range(args.warmup):
        loss = step()
    # Wall clock and process CPU time per step: other jobs on shared cores stretch the first.
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ms = 1000 * statistics.median(times)
    print(json.dumps({
        'torch': torch.__version__,
        'torchvision': torchvision.__version__,
        'threads': torch.get_num_threads(),
        'batch': args.batch,
        'size': args.size,
        'bn_groups': args.groups,
        'queue': args.queue,
        'steps': args.steps,
        'ms_per_step': ms,
        'ms_per_step_min': 1000 * min(times),
        'cpu_ms_per_step': 1000 * statistics.mean(cpu),
        'step_ms': [round(1000 * t, 2) for t in times],
        'images_per_s': args.batch / (ms / 1000),
        'loss': loss,
    }))


if __name__ == '__main__':
    main()
