// `npm run bench -- gpu`: one report of the engine on the adapter it runs on. The adapter, driver
// and measured peaks; our end-to-end training steps (DenseCL and MoCo-v2, train/trainer.ts's
// step) with their top kernels; the same steps in PyTorch (scripts/bench_torch_cuda.py) where
// python3 with torch and CUDA is present; matmul and the ResNet conv shapes beside TensorFlow.js's
// WebGPU backend. BENCH_GPU_SIZES picks the size set (gpu/sizes.ts): 'full' for a GPU, 'tiny' for
// lavapipe. Writes gpu.md and gpu.json (BENCH_RESULTS_DIR, else bench/results).
import { measurePeak, describePeak, markdownTable as kernelTable, type Peak } from '../engine/index.js';
import type { BenchContext } from './lib/context.js';
import { writeReport } from './lib/report.js';
import type { Measurement } from './lib/timing.js';
import { sizeSet, describeSizes, mixedSetting } from './gpu/sizes.js';
import { measureSteps, type StepFigures } from './gpu/steps.js';
import { runTorch, TORCH_MODES, type TorchRun, type TorchMode } from './gpu/torch.js';
import { matmulVsTfjs, convVsTfjs, geomeanSpeedup } from './gpu/kernels.js';

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** PyTorch's ms/step for one of our steps and mode, or why there is none. */
function torchMs(torch: TorchRun, s: StepFigures, mode: TorchMode): number | string {
  if (!torch.ok) return torch.short;
  const r = torch.results.find(
    (x) =>
      x.arch === s.options.arch &&
      x.method === s.method &&
      x.batch === s.options.batchSize &&
      x.size === s.options.imgSize &&
      x.mode === mode,
  );
  return r ? r.ms : 'missing';
}

function stepTable(steps: StepFigures[], torch: TorchRun): string {
  const head = [
    'setting',
    'method',
    'ours ms/step',
    'ours img/s',
    'recording ms',
    'recording CPU ms',
    'kernel ms',
    'GPU busy',
    ...TORCH_MODES.map((m) => `PyTorch ${m} ms`),
    ...TORCH_MODES.map((m) => `ours/PyTorch ${m}`),
  ];
  const rows = steps.map((s) => {
    const peer = TORCH_MODES.map((m) => torchMs(torch, s, m));
    return [
      s.setting,
      s.method,
      fmt(s.medianMs),
      fmt(s.imagesPerSec),
      fmt(s.recordMs),
      fmt(s.recordCpuMs),
      fmt(s.kernelMs),
      `${fmt(100 * s.gpuBusy, 0)}%`,
      ...peer.map((p) => (typeof p === 'number' ? fmt(p, 2) : p)),
      ...peer.map((p) => (typeof p === 'number' ? `${fmt(p / s.medianMs, 2)}x` : p)),
    ];
  });
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** DenseCL / MoCo-v2 per setting: ours by wall and kernel time, PyTorch fp32 by wall time. */
function methodRatios(
  steps: StepFigures[],
  torch: TorchRun,
): { setting: string; wall: number; kernel: number; pytorch: number | null }[] {
  const out = [];
  for (const d of steps.filter((s) => s.method === 'densecl')) {
    const m = steps.find((s) => s.method === 'mocov2' && s.setting === d.setting);
    if (!m) continue;
    const [td, tm] = [torchMs(torch, d, 'fp32'), torchMs(torch, m, 'fp32')];
    out.push({
      setting: d.setting,
      wall: d.medianMs / m.medianMs,
      kernel: d.kernelMs / m.kernelMs,
      pytorch: typeof td === 'number' && typeof tm === 'number' ? td / tm : null,
    });
  }
  return out;
}

function adapterSection(ctx: BenchContext, peak: Peak): string {
  const info = ctx.rt.device.adapterInfo as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const sub = info.subgroupMinSize ? `; subgroup size ${info.subgroupMinSize}-${info.subgroupMaxSize}` : '';
  return [
    `- adapter: ${ctx.adapter}`,
    `- vendor ${info.vendor || '?'}, architecture ${info.architecture || '?'}, device ${info.device || '?'}; driver: ${info.description || 'not reported'}`,
    `- features: ${[...ctx.rt.device.features].sort().join(', ') || 'none'}${sub}`,
    `- ${describePeak(peak)}`,
  ].join('\n');
}

export async function run(ctx: BenchContext): Promise<void> {
  const sizes = sizeSet();
  const cpuDriver = /llvmpipe|lavapipe|swiftshader/i.test(ctx.adapter);
  const seconds: Record<string, number> = {};
  const timed = async <T>(part: string, f: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    seconds[part] = (performance.now() - t0) / 1000;
    return r;
  };
  console.log(`[gpu] ${describeSizes(sizes)}`);

  const peak = await timed('peaks', () => measurePeak(ctx.rt));
  const steps = await timed('our steps', async () => {
    const out: StepFigures[] = [];
    for (const setting of sizes.settings) {
      // The first setting's DenseCL step again at --precision mixed, where the set asks and the adapter has f16.
      const mixed =
        sizes.mixedStep && setting === sizes.settings[0] && ctx.rt.profile.features.shaderF16
          ? [{ setting: mixedSetting(setting), method: 'densecl' as const }]
          : [];
      for (const { setting: at, method } of [...sizes.methods.map((method) => ({ setting, method })), ...mixed]) {
        const s = await measureSteps(ctx.rt, at, method, sizes, peak);
        console.log(
          `[gpu] ours ${s.setting} ${method}: ${fmt(s.medianMs)} ms/step (${fmt(s.imagesPerSec)} img/s), recording ${fmt(s.recordMs)} ms, kernels ${fmt(s.kernelMs)} ms`,
        );
        out.push(s);
      }
    }
    return out;
  });
  const torchCases = sizes.settings.flatMap((s) => sizes.methods.map((method) => ({ ...s.options, method })));
  const torch = await timed('PyTorch', () =>
    runTorch(torchCases, { warmup: sizes.warmupSteps, steps: sizes.timedSteps, timeoutS: sizes.torchTimeoutS }),
  );
  console.log(
    torch.ok
      ? `[gpu] PyTorch ${torch.torch} on ${torch.device}: ${torch.results.length} figures`
      : `[gpu] PyTorch not measured: ${torch.reason}`,
  );

  const tfjs = await ctx.tfjs();
  const mm = await timed('matmul', () => matmulVsTfjs(ctx.rt, tfjs, sizes.matmul, sizes.kernelTiming));
  const conv = await timed('conv', () => convVsTfjs(ctx.rt, tfjs, sizes.conv, sizes.kernelTiming));
  const measurements: Measurement[] = [...mm.measurements, ...conv.measurements];
  const total = Object.values(seconds).reduce((a, b) => a + b, 0);

  const ratios = methodRatios(steps, torch);
  const torchLine = torch.ok
    ? `PyTorch ${torch.torch} (torchvision ${torch.torchvision}, CUDA ${torch.cuda}) on ${torch.device}, ${torch.python} scripts/bench_torch_cuda.py: the same steps, median of ${torch.steps} after ${torch.warmup} warm-up, each step synchronised; fp32 = TF32 off, tf32 = TF32 on, bf16 = autocast to bfloat16 with channels_last; cudnn.benchmark on.`
    : `PyTorch: not measured (${torch.short}): ${torch.reason}.`;
  const stepsMarkdown = [
    stepTable(steps, torch),
    '',
    ...ratios.map(
      (r) =>
        `- DenseCL/MoCo-v2 step time, ${r.setting}: ours ${fmt(r.wall, 2)} by wall time, ${fmt(r.kernel, 2)} by kernel time; PyTorch fp32 ${r.pytorch === null ? (torch.ok ? '-' : `not measured (${torch.short})`) : fmt(r.pytorch, 2)}.`,
    ),
    `- ours/PyTorch is PyTorch's time over ours (above 1: ours is faster). ${torchLine}`,
    `- ours: train/trainer.ts's Trainer.trainStep (what \`densecl pretrain\` runs per step) on synthetic views, one step in flight as in pretrain: ms/step is the median time between the completions of consecutive steps over ${sizes.timedSteps} steps after ${sizes.warmupSteps} warm-up; recording = the synchronous part of trainStep (building and submitting the step's commands), wall and process CPU time; kernel ms = summed GPU time of one further profiled step; GPU busy = kernel ms / ms per step.`,
  ].join('\n');

  const settingsLine = sizes.settings.map((s) => {
    const o = s.options;
    return `${s.label}: ${o.arch} width ${o.width}, ${o.smallStem ? 'small stem' : '7x7 stem'}, queue ${o.queueSize}, dim ${o.dim}, BN statistics in ${o.bnGroups} group(s) of ${o.batchSize / o.bnGroups} images, tau ${o.tau}, EMA ${o.emaMomentum}, lambda ${o.lambda}, SGD lr ${o.lr} per 256 images, momentum ${o.momentum}, weight decay ${o.weightDecay}`;
  });
  const title = cpuDriver
    ? `GPU benchmark, ${sizes.name} sizes, on a CPU Vulkan driver (${ctx.adapter.includes('llvmpipe') ? 'lavapipe' : ctx.adapter}): NOT a GPU figure`
    : `GPU benchmark, ${sizes.name} sizes, on ${ctx.adapter}`;
  const out = writeReport({
    suite: 'gpu',
    title,
    adapter: ctx.adapter,
    ours: 'ours',
    measurements,
    leadSections: [
      { title: `Training steps: ours and PyTorch (${sizes.name} sizes)`, markdown: stepsMarkdown },
      { title: 'Adapter, driver and measured peaks', markdown: adapterSection(ctx, peak) },
    ],
    tableTitle: `Kernels: ours and TensorFlow.js WebGPU on the same device (matmul ${sizes.matmul.join(', ')}; conv at batch ${sizes.conv.batch})`,
    notes: [
      `Size set: ${describeSizes(sizes)} (BENCH_GPU_SIZES=${sizes.name}).`,
      ...(cpuDriver
        ? [
            'This adapter is a CPU Vulkan driver: these figures check that the suite runs; they say nothing about GPU speed.',
          ]
        : []),
      ...settingsLine,
      `Conv geometric mean ours/tfjs: fwd ${fmt(geomeanSpeedup(conv.measurements, ' fwd'), 2)}x, dx ${fmt(geomeanSpeedup(conv.measurements, ' dx'), 2)}x, dw ${fmt(geomeanSpeedup(conv.measurements, ' dw'), 2)}x (bench/conv.ts's shapes; every pair checked before timing: largest difference ${mm.worstDiff.toExponential(1)} for matmul, ${conv.worstDiff.toExponential(1)} of the largest value for conv).`,
      `Time per part (s): ${Object.entries(seconds)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')}; total ${fmt(total)} s.`,
    ],
    sections: steps.map((s) => ({
      title: `Top 10 kernels: ${s.setting}, ${s.method}`,
      markdown: `One profiled step (${s.profileMethod}): ${fmt(s.kernelMs)} ms of kernels in ${s.dispatches} dispatches; shares of this step's kernel time, % of the measured peaks.\n\n${kernelTable(s.topKernels)}`,
    })),
    extra: {
      sizes: sizes.name,
      cpuDriver,
      peak,
      adapterInfo: { ...ctx.rt.device.adapterInfo },
      steps: steps.map((s) => ({
        ...s,
        pytorch: Object.fromEntries(TORCH_MODES.map((m) => [m, torchMs(torch, s, m)])),
      })),
      denseclOverMocov2: ratios,
      pytorch: torch,
      seconds: { ...seconds, total },
    },
  });
  console.log(stepsMarkdown);
  console.log(`[bench] wrote ${out.json} and ${out.markdown} in ${fmt(total)} s`);
}
