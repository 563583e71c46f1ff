// The demo page: trains a small DenseCL model on the built-in scenes with the package's browser
// build (the bundler maps these imports to /dist/browser), and shows the loss curves, images
// per second, the correspondences between the two views, and a per-kernel profile of a step.
//
// Query parameters: any TrainerOptions field (seed, batchSize, imgSize, lr, width, ...), plus
//   steps=N        stop after N steps (default 400; 40 on a software adapter, which also trains
//                  a smaller batch: see SOFTWARE_DEFAULTS)
//   profileAt=N    profile step N (default 4; -1 never)
//   images=N       scenes in the dataset (default 512); sceneSize=N their side (default 64)
//   check=N        parity mode: N steps, no drawing; figures in window.demo.parity
//   timestamps=0   the page requests its own device without timestamp queries and passes it to
//                  init({ device }): the profiler then shows its coarse fallback
// window.demo holds the state for tests and the console.
import { init, aggregate, shortKernelNames, type Runtime, type ProfileResult } from '../engine/index.js';
import {
  Trainer,
  TRAINER_DEFAULTS,
  SceneDataset,
  BatchLoader,
  MOCO_V2,
  type TrainerOptions,
  type StepStats,
  type Batch,
} from '../train/index.js';
import { classifyMatches, type CellMatch } from './correspondence.js';

interface DemoState {
  status: 'starting' | 'running' | 'paused' | 'done' | 'error';
  /** While running: the first step compiles the shaders. */
  phase: 'compiling shaders' | 'training' | null;
  maxSteps: number;
  adapter: string;
  hasTimestamps: boolean;
  options: TrainerOptions | null;
  steps: { step: number; loss: number; lossGlobal: number; lossDense: number | null; ms: number }[];
  imagesPerSec: number;
  /** Share of right matches among query cells inside the key crop, per step. */
  matchAccuracy: number[];
  profile: {
    step: number;
    method: ProfileResult['method'];
    dispatches: number;
    gpuMs: number;
    wallMs: number;
    rows: ReturnType<typeof aggregate>;
  } | null;
  parity: { losses: [number, number, number | null][]; inputSum: number } | null;
  error: string | null;
}

const demo: DemoState = {
  status: 'starting',
  phase: null,
  maxSteps: 0,
  adapter: '',
  hasTimestamps: false,
  options: null,
  steps: [],
  imagesPerSec: 0,
  matchAccuracy: [],
  profile: null,
  parity: null,
  error: null,
};
(globalThis as unknown as { demo: DemoState }).demo = demo;

/** Settings that show progress within a minute on a GPU (the library defaults follow the paper). */
const PAGE_DEFAULTS: Partial<TrainerOptions> = { lr: 0.5, queueSize: 32, batchSize: 16, imgSize: 32 };
const PAGE_STEPS = 400;
/**
 * A software adapter (SwiftShader, lavapipe) takes seconds per step (~5 s at batch 16 in a
 * user's run; 5-7 s at batch 8 in test:browser on 2 shared cores), so it trains half the batch
 * for 40 steps, a few minutes; the loss falls once the queue is full (from step 3).
 */
const SOFTWARE_DEFAULTS: Partial<TrainerOptions> = { lr: 1, queueSize: 16, batchSize: 8, bnGroups: 2, imgSize: 32 };
const SOFTWARE_STEPS = 40;
const isSoftware = (adapter: string) => /swiftshader|llvmpipe|lavapipe|software|basic render/i.test(adapter);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const num = (name: string, fallback: number) => (params.has(name) ? Number(params.get(name)) : fallback);

function optionsFromUrl(software: boolean): TrainerOptions {
  const o: Record<string, unknown> = { ...TRAINER_DEFAULTS, ...(software ? SOFTWARE_DEFAULTS : PAGE_DEFAULTS) };
  for (const [key, def] of Object.entries(TRAINER_DEFAULTS)) {
    const v = params.get(key);
    if (v === null) continue;
    if (typeof def === 'number') {
      if (!Number.isFinite(Number(v))) throw new Error(`?${key}=${v} is not a number`);
      o[key] = Number(v);
    } else if (typeof def === 'boolean') o[key] = v === '1' || v === 'true';
    else o[key] = v;
  }
  return o as unknown as TrainerOptions;
}

function setStatus(text: string): void {
  $('status').textContent = text;
}

function fail(e: unknown): void {
  demo.status = 'error';
  demo.error = e instanceof Error ? e.message : String(e);
  const box = $('error');
  box.hidden = false;
  box.textContent = demo.error;
  setStatus('stopped by an error');
  console.error(e);
}

/** The engine's own device, or (timestamps=0) one the page makes without timestamp queries. */
async function runtime(): Promise<Runtime> {
  if (params.get('timestamps') !== '0') return init({ quiet: true });
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('this browser has no WebGPU adapter (Chrome/Edge 113+, or --enable-unsafe-webgpu)');
  // The kernels size their tiles and buffers to the adapter's limits, as acquireGpu() asks for them.
  const keys = [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxStorageBuffersPerShaderStage',
  ] as const;
  const requiredLimits = Object.fromEntries(keys.map((k) => [k, adapter.limits[k]]));
  const requiredFeatures = (['subgroups', 'shader-f16'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return init({
    device,
    adapterDescription: `${adapter.info.vendor} / ${adapter.info.architecture} (the page's own device)`,
    quiet: true,
  });
}

async function main(): Promise<void> {
  const rt = await runtime();
  demo.adapter = rt.adapterDescription;
  demo.hasTimestamps = rt.hasTimestamps;
  const software = isSoftware(rt.adapterDescription);
  const options = (demo.options = optionsFromUrl(software));
  $('adapter').textContent =
    `WebGPU adapter: ${rt.adapterDescription}${rt.hasTimestamps ? ' (timestamp queries)' : ' (no timestamp-query)'}`;
  if (software) {
    $('adapter').textContent +=
      `. This is a software adapter (WebGPU on the CPU), so the page trains a smaller run: batch ${options.batchSize}, ${num('steps', SOFTWARE_STEPS)} steps (?batchSize=16&steps=400 for the full one).`;
  }
  demo.maxSteps = num('steps', software ? SOFTWARE_STEPS : PAGE_STEPS);
  const trainer = new Trainer(rt, options);
  const dataset = new SceneDataset({ seed: options.seed, size: num('sceneSize', 64), length: num('images', 512) });
  const loader = await BatchLoader.create(dataset, {
    batchSize: options.batchSize,
    size: options.imgSize,
    seed: options.seed,
    workers: 0,
  });
  const check = num('check', 0);
  if (check > 0) return parityRun(rt, trainer, loader, check, num('profileAt', -1));
  await trainLoop(rt, trainer, loader, dataset);
}

/** Parity mode: a few steps on the loader's first batches, figures only (and the profile of step profileAt). */
async function parityRun(
  rt: Runtime,
  trainer: Trainer,
  loader: BatchLoader,
  steps: number,
  profileAt: number,
): Promise<void> {
  demo.status = 'running';
  setStatus(`parity check: ${steps} step(s)…`);
  const losses: [number, number, number | null][] = [];
  let inputSum = 0;
  for (let i = 0; i < steps; i++) {
    const b = loader.nextSync();
    if (i === 0) for (const v of [b.q, b.k]) for (let j = 0; j < v.length; j++) inputSum += v[j];
    let s: StepStats;
    if (i === profileAt) {
      const r = await trainer.profileStep(b.q, b.k);
      showProfile(rt, i, r.profile);
      s = r.stats;
    } else {
      s = await trainer.trainStep(b.q, b.k);
    }
    losses.push([s.loss, s.lossGlobal, s.lossDense]);
  }
  demo.parity = { losses, inputSum };
  demo.status = 'done';
  setStatus(`parity check done: losses ${losses.map((l) => l[0].toFixed(6)).join(', ')}`);
}

async function trainLoop(rt: Runtime, trainer: Trainer, loader: BatchLoader, dataset: SceneDataset): Promise<void> {
  const maxSteps = demo.maxSteps;
  const profileAt = num('profileAt', 4);
  const B = trainer.options.batchSize;
  let running = true;
  let wake: (() => void) | null = null;
  const button = $<HTMLButtonElement>('toggle');
  button.disabled = false;
  button.onclick = () => {
    running = !running;
    button.textContent = running ? 'Pause' : 'Resume';
    if (running) wake?.();
  };
  demo.status = 'running';
  while (trainer.steps < maxSteps) {
    if (!running) {
      demo.status = 'paused';
      setStatus(`paused after ${trainer.steps} steps`);
      await new Promise<void>((r) => (wake = r));
      demo.status = 'running';
    }
    const t0 = performance.now();
    const batch = loader.nextSync();
    let stats: StepStats;
    if (trainer.steps === 0) {
      // The first step builds every pipeline (tens of WGSL shaders), which takes seconds.
      demo.phase = 'compiling shaders';
      setStatus('step 1: compiling shaders (the first step builds every GPU pipeline; later steps are faster)…');
    }
    if (trainer.steps === profileAt) {
      setStatus(`step ${trainer.steps + 1}: profiling every kernel…`);
      const r = await trainer.profileStep(batch.q, batch.k, { correspondence: true });
      showProfile(rt, r.stats.step, r.profile);
      stats = r.stats;
    } else {
      stats = await trainer.trainStep(batch.q, batch.k, { correspondence: true });
    }
    const ms = performance.now() - t0;
    demo.phase = 'training';
    if (!Number.isFinite(stats.loss))
      throw new Error(`the loss became ${stats.loss} at step ${stats.step}; lower ?lr=`);
    demo.steps.push({
      step: stats.step,
      loss: stats.loss,
      lossGlobal: stats.lossGlobal,
      lossDense: stats.lossDense,
      ms,
    });
    // Throughput over the last steps, leaving out the first (shader compilation) and the profiled one.
    const timed = demo.steps.filter((s) => s.step > 0 && s.step !== profileAt).slice(-10);
    if (timed.length) demo.imagesPerSec = (timed.length * B * 1000) / timed.reduce((a, s) => a + s.ms, 0);
    drawLoss();
    showFigures(stats, trainer, ms);
    if (stats.correspondence) drawCorrespondences(batch, stats.correspondence, trainer, dataset);
    setStatus(`training: step ${trainer.steps} of ${maxSteps}`);
    // Let the page paint between steps.
    await new Promise((r) => setTimeout(r, 0));
  }
  demo.status = 'done';
  button.disabled = true;
  setStatus(`done: ${trainer.steps} steps`);
}

function showFigures(s: StepStats, trainer: Trainer, ms: number): void {
  const acc = demo.matchAccuracy.at(-1);
  const items: [string, string][] = [
    ['step', String(s.step + 1)],
    ['loss', s.loss.toFixed(4)],
    ['global', s.lossGlobal.toFixed(4)],
    ['dense', s.lossDense === null ? '-' : s.lossDense.toFixed(4)],
    ['images/s', demo.imagesPerSec ? demo.imagesPerSec.toFixed(1) : '…'],
    ['last step', `${ms.toFixed(0)} ms`],
    ['lr', s.lr.toExponential(2)],
    ['batch', `${trainer.options.batchSize} × ${trainer.options.imgSize}²`],
  ];
  $('figures').innerHTML = items.map(([k, v]) => `<span>${k} <b>${v}</b></span>`).join('');
  if (acc !== undefined)
    $('corr-figures').innerHTML =
      `<span>right matches (of cells inside the key crop) <b>${(100 * acc).toFixed(1)}%</b></span>`;
}

const SERIES: { key: 'loss' | 'lossGlobal' | 'lossDense'; label: string; colour: string }[] = [
  { key: 'loss', label: 'loss', colour: '#1d2330' },
  { key: 'lossGlobal', label: 'global', colour: '#2563c9' },
  { key: 'lossDense', label: 'dense', colour: '#d9771e' },
];

function drawLoss(): void {
  const canvas = $<HTMLCanvasElement>('loss');
  const g = canvas.getContext('2d')!;
  const [W, H] = [canvas.width, canvas.height];
  const m = { l: 48, r: 14, t: 12, b: 40 };
  g.clearRect(0, 0, W, H);
  const pts = demo.steps;
  const values = pts.flatMap((p) => [p.loss, p.lossGlobal, p.lossDense ?? p.loss]);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-6) [lo, hi] = [lo - 0.5, hi + 0.5];
  const pad = 0.05 * (hi - lo);
  [lo, hi] = [lo - pad, hi + pad];
  const n = Math.max(10, pts.length);
  const x = (i: number) => m.l + ((W - m.l - m.r) * i) / (n - 1);
  const y = (v: number) => m.t + ((H - m.t - m.b) * (hi - v)) / (hi - lo);
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e3e6eb';
  g.fillStyle = '#5a6272';
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    g.beginPath();
    g.moveTo(m.l, y(v));
    g.lineTo(W - m.r, y(v));
    g.stroke();
    g.fillText(v.toFixed(2), 6, y(v) + 4);
  }
  // Tick labels centred under their ticks (the last one ends at the plot's edge), the axis title below them.
  for (let k = 0; k <= 4; k++) {
    const i = Math.round(((n - 1) * k) / 4);
    g.textAlign = k === 4 ? 'right' : k === 0 ? 'left' : 'center';
    g.fillText(String(i + 1), x(i), H - m.b + 16);
  }
  g.textAlign = 'center';
  g.fillText('step', m.l + (W - m.l - m.r) / 2, H - 6);
  g.textAlign = 'left';
  SERIES.forEach((s, idx) => {
    g.strokeStyle = s.colour;
    g.lineWidth = s.key === 'loss' ? 2 : 1.3;
    g.beginPath();
    pts.forEach((p, i) => {
      const v = p[s.key];
      if (v === null) return;
      if (i === 0) g.moveTo(x(i), y(v));
      else g.lineTo(x(i), y(v));
    });
    g.stroke();
    g.fillStyle = s.colour;
    g.fillRect(W - m.r - 190 + idx * 64, m.t + 2, 10, 3);
    g.fillText(s.label, W - m.r - 176 + idx * 64, m.t + 8);
  });
  g.lineWidth = 1;
}

/** A normalised CHW view (at `offset` of a batch) as an image. */
function viewImage(x: Float32Array, offset: number, S: number): ImageData {
  const img = new ImageData(S, S);
  const plane = S * S;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = x[offset + c * plane + i] * MOCO_V2.std[c] + MOCO_V2.mean[c];
      img.data[4 * i + c] = Math.max(0, Math.min(255, Math.round(255 * v)));
    }
    img.data[4 * i + 3] = 255;
  }
  return img;
}

function rgbImage(data: Uint8Array, w: number, h: number): ImageData {
  const img = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data.set(data.subarray(3 * i, 3 * i + 3), 4 * i);
    img.data[4 * i + 3] = 255;
  }
  return img;
}

function blit(g: CanvasRenderingContext2D, img: ImageData, x: number, y: number, size: number): void {
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  c.getContext('2d')!.putImageData(img, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(c, x, y, size, size);
}

const KIND_COLOUR: Record<CellMatch['kind'], string> = {
  right: '#18a34a',
  wrong: '#dc2626',
  outside: 'rgba(120,120,120,0.55)',
};

function drawCorrespondences(batch: Batch, corr: Int32Array, trainer: Trainer, dataset: SceneDataset): void {
  const canvas = $<HTMLCanvasElement>('corr');
  const S = trainer.options.imgSize;
  const grid = S / trainer.model.backbone.stride;
  const S2 = grid * grid;
  const rows = Math.min(3, trainer.options.batchSize);
  const side = 150;
  const gap = 56;
  const rowH = side + 14;
  canvas.height = rows * rowH;
  const g = canvas.getContext('2d')!;
  g.clearRect(0, 0, canvas.width, canvas.height);
  let right = 0;
  let inside = 0;
  const per = 3 * S * S;
  for (let b = 0; b < trainer.options.batchSize; b++) {
    const q = batch.geometry.q[b];
    const k = batch.geometry.k[b];
    const matches = classifyMatches(q, k, corr.subarray(b * S2, (b + 1) * S2), grid);
    right += matches.filter((m) => m.kind === 'right').length;
    inside += matches.filter((m) => m.kind !== 'outside').length;
    if (b >= rows) continue;
    const y0 = b * rowH + 4;
    const src = dataset.get(batch.indices[b]).image;
    const sc = side / src.width;
    blit(g, rgbImage(src.data, src.width, src.height), 0, y0, side);
    for (const [p, colour] of [
      [q, '#06b6d4'],
      [k, '#d946ef'],
    ] as const) {
      g.strokeStyle = colour;
      g.lineWidth = 2;
      g.strokeRect(p.box.left * sc, y0 + p.box.top * sc, p.box.width * sc, p.box.height * sc);
    }
    const qx = side + 24;
    const kx = qx + side + gap;
    blit(g, viewImage(batch.q, b * per, S), qx, y0, side);
    blit(g, viewImage(batch.k, b * per, S), kx, y0, side);
    const v = side / S;
    g.lineWidth = 1.4;
    for (const m of matches) {
      g.strokeStyle = KIND_COLOUR[m.kind];
      g.beginPath();
      g.moveTo(qx + m.query[0] * v, y0 + m.query[1] * v);
      g.lineTo(kx + m.key[0] * v, y0 + m.key[1] * v);
      g.stroke();
      g.fillStyle = KIND_COLOUR[m.kind];
      g.fillRect(qx + m.query[0] * v - 2, y0 + m.query[1] * v - 2, 4, 4);
    }
  }
  g.lineWidth = 1;
  demo.matchAccuracy.push(inside ? right / inside : 0);
}

function showProfile(rt: Runtime, step: number, p: ProfileResult): void {
  const rows = aggregate(p.records, 'kernel');
  const gpuMs = p.records.reduce((s, r) => s + r.gpuMs, 0);
  demo.profile = { step, method: p.method, dispatches: p.records.length, gpuMs, wallMs: p.wallMs, rows };
  const how =
    p.method === 'timestamps'
      ? 'GPU timestamp queries around every dispatch'
      : 'coarse timing: this adapter lacks timestamp-query, so each kernel was submitted and waited for alone (figures include submission overhead)';
  $('profile-note').textContent =
    `Step ${step + 1} on ${rt.adapterDescription}: ${p.records.length} dispatches, ${gpuMs.toFixed(1)} ms of kernel time, ${p.wallMs.toFixed(0)} ms wall. Timing: ${how}.`;
  const head =
    '<tr><th>kernel</th><th>calls</th><th>total ms</th><th>mean ms</th><th>share</th><th>GFLOP/s</th><th>GB/s</th></tr>';
  const esc = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
  const shown = rows.slice(0, 20);
  const short = shortKernelNames(shown.map((r) => r.name));
  const body = shown.map(
    (r) =>
      `<tr><td title="${esc(r.name)}">${esc(short.get(r.name)!)}</td><td>${r.calls}</td><td>${r.totalMs.toFixed(3)}</td><td>${r.meanMs.toFixed(4)}</td><td>${(100 * r.share).toFixed(1)}%</td><td>${r.gflops.toFixed(2)}</td><td>${r.gbps.toFixed(2)}</td></tr>`,
  );
  const more = rows.length > 20 ? `<tr><td colspan="7">… ${rows.length - 20} more kernels</td></tr>` : '';
  $<HTMLTableElement>('profile').innerHTML = head + body.join('') + more;
}

main().catch(fail);
