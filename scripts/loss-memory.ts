// Peak memory of the queue contrastive loss (forward + backward) per implementation, at issue 13's
// sizes: the pool's peak of live bytes over the op, less what was live before (its temporaries
// and outputs). Allocation is decided while the op is recorded, so the GPU work is never waited
// for: the figures come in seconds even where running the op takes hours (lavapipe).
//   node scripts/loss-memory.mjs [--rows 1568,12544] [--k 4096,65536] [--d 128]
import { init, tensor, backward, scope, Rng } from '../engine/index.js';
import { queueContrastiveLoss, type ContrastiveVariant } from '../models/ops/contrastive.js';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const rowsList = arg('rows', '1568,12544').split(',').map(Number);
const kList = arg('k', '4096,65536').split(',').map(Number);
const D = Number(arg('d', '128'));
const MiB = 1 << 20;

const rt = await init({ quiet: true });
const rng = new Rng(1);
console.log(`adapter: ${rt.adapterDescription}`);
console.log('| R | K | D | variant | loss peak MiB | R x K logits would be MiB |');
console.log('| ---: | ---: | ---: | --- | ---: | ---: |');
for (const K of kList) {
  const queue = tensor(
    Float32Array.from({ length: K * D }, () => rng.normal()),
    [K, D],
  );
  for (const R of rowsList) {
    const q = tensor(
      Float32Array.from({ length: R * D }, () => rng.normal()),
      [R, D],
    ).requireGrad();
    const pos = tensor(new Float32Array(R), [R]);
    for (const variant of ['tiled', 'gemm'] as ContrastiveVariant[]) {
      rt.flush();
      const before = rt.memory().bytesLive;
      rt.pool.resetPeak();
      const loss = scope(() => {
        const l = queueContrastiveLoss(q, pos, queue, { tau: 0.2, variant });
        backward(l);
        return l;
      });
      const peak = rt.memory().peakBytesLive - before;
      loss.dispose();
      q.grad?.dispose();
      q.grad = null;
      console.log(
        `| ${R} | ${K} | ${D} | ${variant} | ${(peak / MiB).toFixed(2)} | ${((R * K * 4) / MiB).toFixed(0)} |`,
      );
    }
    q.dispose();
    pos.dispose();
  }
  queue.dispose();
}
// The recorded work is never awaited (hours on a CPU driver): exit without it.
process.exit(0);
