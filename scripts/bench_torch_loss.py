"""Times the contrastive loss of bench/contrastive.ts in PyTorch on CUDA, logits materialised.

loss = mean_r [logsumexp([pos_r, q_r . queue_j] / tau) - pos_r / tau], forward and backward for
q and pos, as DenseCL's and MoCo's reference code computes it (cat the positive and the
negative logits, cross-entropy with label 0). fp32 with TF32 off. Prints one JSON line per row
count: {"R", "K", "D", "device", "ms" (median of 10 after 3 warm-up, CUDA events),
"peak_bytes" (torch.cuda.max_memory_allocated over one op, less what was allocated before)};
without CUDA, one line {"skipped": reason}.

Usage: python3 scripts/bench_torch_loss.py --rows 1568,12544 --queue 65536 --dim 128
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def step(q, pos, queue, tau):
    q.grad = None
    pos.grad = None
    logits = torch.cat([pos[:, None], q @ queue.t()], dim=1) / tau
    loss = F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
    loss.backward()
    return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1568,12544")
    ap.add_argument("--queue", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--tau", type=float, default=0.2)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "torch.cuda.is_available() is False"}))
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(0)
    queue = F.normalize(torch.randn(a.queue, a.dim, generator=g), dim=1).to(dev)
    for R in [int(r) for r in a.rows.split(",")]:
        q = F.normalize(torch.randn(R, a.dim, generator=g), dim=1).to(dev).requires_grad_()
        pos = (torch.rand(R, generator=g) - 0.2).to(dev).requires_grad_()
        for _ in range(3):
            step(q, pos, queue, a.tau)
        torch.cuda.synchronize()
        times = []
        for _ in range(10):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step(q, pos, queue, a.tau)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        q.grad = None
        pos.grad = None
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(q, pos, queue, a.tau)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        print(json.dumps({"R": R, "K": a.queue, "D": a.dim, "device": torch.cuda.get_device_name(0),
                          "ms": statistics.median(times), "peak_bytes": peak}))


if __name__ == "__main__":
    main()
