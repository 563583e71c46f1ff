// PyTorch's figures for the same training steps: scripts/bench_torch_cuda.py run by the python
// of BENCH_PYTHON (default python3). When it cannot run (no such python, no torch, no CUDA
// device, a failure) the result says why, and the report shows that in PyTorch's columns.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TrainerOptions } from '../../train/trainer.js';

export const TORCH_MODES = ['fp32', 'tf32', 'bf16'] as const;
export type TorchMode = (typeof TORCH_MODES)[number];

export interface TorchCaseResult {
  arch: string;
  method: string;
  batch: number;
  size: number;
  mode: TorchMode;
  ms: number;
  img_s: number;
  step_ms: number[];
  loss: number;
  peak_mib: number | null;
}

export type TorchRun =
  | {
      ok: true;
      python: string;
      torch: string;
      torchvision: string;
      cuda: string;
      device: string;
      warmup: number;
      steps: number;
      results: TorchCaseResult[];
    }
  /** `short` fits a table cell ('no python', 'no torch', 'no CUDA', 'failed'); `reason` says what to do. */
  | { ok: false; python: string; short: string; reason: string };

// The bundle runs from .build/bench/; the script stays in the source tree.
const SCRIPT = fileURLToPath(new URL('../../scripts/bench_torch_cuda.py', import.meta.url));

export function torchPython(): string {
  return process.env.BENCH_PYTHON || 'python3';
}

export function runTorch(
  cases: TrainerOptions[],
  opts: { warmup: number; steps: number; timeoutS: number; python?: string },
): TorchRun {
  const python = opts.python ?? torchPython();
  const args = [
    SCRIPT,
    '--cases',
    JSON.stringify(cases),
    '--warmup',
    String(opts.warmup),
    '--steps',
    String(opts.steps),
    '--modes',
    TORCH_MODES.join(','),
  ];
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    timeout: opts.timeoutS * 1000,
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const fail = (short: string, reason: string): TorchRun => ({ ok: false, python, short, reason });
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT')
    return fail(
      'no python',
      `${python} was not found; set BENCH_PYTHON to a python3 with torch, torchvision and a CUDA device`,
    );
  if (code === 'ETIMEDOUT' || r.signal)
    return fail(
      'failed',
      `${python} ${SCRIPT} did not finish within ${opts.timeoutS} s${r.signal ? ` (${r.signal})` : ''}`,
    );
  if (r.error) return fail('failed', `${python} could not be run: ${r.error.message}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> | null = null;
  try {
    out = JSON.parse(last) as Record<string, unknown>;
  } catch {
    out = null;
  }
  if (r.status === 2 && out && typeof out.unavailable === 'string') {
    return fail(out.missing === 'cuda' ? 'no CUDA' : 'no torch', out.unavailable);
  }
  if (r.status !== 0 || !out || !Array.isArray(out.results)) {
    const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
    return fail('failed', `${python} ${SCRIPT} exited with ${r.status}: ${tail || last || 'no output'}`);
  }
  return { ok: true, python, ...(out as Omit<Extract<TorchRun, { ok: true }>, 'ok' | 'python'>) };
}
