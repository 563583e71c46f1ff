// Times candidate kernels on the GPU, apart from the runtime's recorded work: own scratch
// buffers, own uniform buffers, own command buffers (the runtime's open encoder is neither
// flushed nor touched). One pass per run, timed by timestamp queries where the device has them
// (else by the wall clock around each submit). Round 1 runs every candidate once after a warm-up
// run; round 2 repeats those within 1.5x of the best as often as the budget allows (at most
// 4 times); each candidate's time is its fastest run.
import { packParams, type ParamValues, type ShaderInterface } from '../uniforms.js';

/** What timing a kernel binds of it (the runtime's Kernel has these; named here so the runtime,
 *  which owns the tuner, is not imported back). */
export interface TimedKernel {
  key: string;
  iface: ShaderInterface;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** What a candidate records one run of its work through. */
export interface TuneRecorder {
  /** A storage buffer of at least `bytes` for operand `slot`, shared by all candidates; contents unspecified. */
  scratch(slot: number, bytes: number): GPUBuffer;
  /** Records one dispatch into the timed pass. */
  dispatch(k: TimedKernel, params: ParamValues, buffers: GPUBuffer[], workgroups: [number, number, number]): void;
}

export type RunCandidate = (name: string, rec: TuneRecorder) => void;

const MAX_REPEATS = 4;
const CLOSE = 1.5;

class Recorder implements TuneRecorder {
  pass: GPUComputePassEncoder | null = null;
  private buffers = new Map<number, GPUBuffer>();
  private transient: GPUBuffer[] = [];

  constructor(private device: GPUDevice) {}

  scratch(slot: number, bytes: number): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const have = this.buffers.get(slot);
    if (have && have.size >= size) return have;
    have?.destroy();
    const b = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    this.buffers.set(slot, b);
    return b;
  }

  dispatch(k: TimedKernel, params: ParamValues, buffers: GPUBuffer[], workgroups: [number, number, number]): void {
    if (!this.pass) throw new Error(`tuning ${k.key}: dispatch outside a timed run`);
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }));
    if (k.iface.uniformSize > 0) {
      const size = Math.ceil(k.iface.uniformSize / 16) * 16;
      const image = new ArrayBuffer(size);
      packParams(k.iface, params, new DataView(image), 0, `tuning ${k.key}`);
      const u = this.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      this.device.queue.writeBuffer(u, 0, image);
      this.transient.push(u);
      entries.push({ binding: 0, resource: { buffer: u, size } });
    }
    this.pass.setPipeline(k.pipeline);
    this.pass.setBindGroup(
      0,
      this.device.createBindGroup({ layout: k.layout, entries }),
      k.iface.uniformSize > 0 ? [0] : [],
    );
    this.pass.dispatchWorkgroups(...workgroups);
  }

  release(): void {
    for (const b of [...this.buffers.values(), ...this.transient]) b.destroy();
    this.buffers.clear();
    this.transient = [];
  }
}

/** Milliseconds of GPU time per candidate (its fastest run); `budgetMs` bounds round 2. */
export async function timeCandidates(
  device: GPUDevice,
  names: string[],
  run: RunCandidate,
  budgetMs: number,
): Promise<Record<string, number>> {
  const rec = new Recorder(device);
  const timer = device.features.has('timestamp-query')
    ? new QueryTimer(device, 2 * (1 + MAX_REPEATS) * names.length)
    : null;
  try {
    const best: Record<string, number> = {};
    const round = async (list: string[], repeats: number, warmup: boolean): Promise<void> => {
      const runs = list.flatMap((n) => Array<string>(repeats).fill(n));
      const times = timer ? await timer.time(rec, runs, run, warmup) : await wallTimes(device, rec, runs, run, warmup);
      runs.forEach((n, i) => (best[n] = Math.min(best[n] ?? Infinity, times[i])));
    };
    await round(names, 1, true);
    const fastest = Math.min(...names.map((n) => best[n]));
    const close = names.filter((n) => best[n] <= CLOSE * fastest);
    const perRound = close.reduce((s, n) => s + best[n], 0);
    const repeats = Math.min(MAX_REPEATS, Math.floor(budgetMs / Math.max(perRound, 1e-3)));
    if (close.length > 1 && repeats > 0) await round(close, repeats, false);
    return best;
  } finally {
    timer?.destroy();
    rec.release();
  }
}

/** Records each run in a pass of its own (after one untimed warm-up run per name when asked). */
function encodeRuns(
  device: GPUDevice,
  rec: Recorder,
  runs: string[],
  run: RunCandidate,
  warmup: boolean,
  stamps?: (i: number) => GPUComputePassTimestampWrites,
): GPUCommandEncoder {
  const encoder = device.createCommandEncoder({ label: 'tuning' });
  const once = (name: string, ts?: GPUComputePassTimestampWrites): void => {
    rec.pass = encoder.beginComputePass(ts ? { timestampWrites: ts } : {});
    run(name, rec);
    rec.pass.end();
    rec.pass = null;
  };
  if (warmup) for (const n of new Set(runs)) once(n);
  runs.forEach((n, i) => once(n, stamps?.(i)));
  return encoder;
}

class QueryTimer {
  private set: GPUQuerySet;
  private resolve: GPUBuffer;
  private readback: GPUBuffer;

  constructor(
    private device: GPUDevice,
    private capacity: number,
  ) {
    this.set = device.createQuerySet({ type: 'timestamp', count: capacity });
    this.resolve = device.createBuffer({
      size: 8 * capacity,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.readback = device.createBuffer({
      size: 8 * capacity,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  async time(rec: Recorder, runs: string[], run: RunCandidate, warmup: boolean): Promise<number[]> {
    const n = 2 * runs.length;
    if (n > this.capacity)
      throw new Error(`tuning: ${runs.length} runs exceed the ${this.capacity / 2} timestamp pairs`);
    const encoder = encodeRuns(this.device, rec, runs, run, warmup, (i) => ({
      querySet: this.set,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    }));
    encoder.resolveQuerySet(this.set, 0, n, this.resolve, 0);
    encoder.copyBufferToBuffer(this.resolve, 0, this.readback, 0, 8 * n);
    this.device.queue.submit([encoder.finish()]);
    await this.readback.mapAsync(GPUMapMode.READ, 0, 8 * n);
    const t = new BigUint64Array(this.readback.getMappedRange(0, 8 * n).slice(0));
    this.readback.unmap();
    return runs.map((_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  }

  destroy(): void {
    this.set.destroy();
    this.resolve.destroy();
    this.readback.destroy();
  }
}

async function wallTimes(
  device: GPUDevice,
  rec: Recorder,
  runs: string[],
  run: RunCandidate,
  warmup: boolean,
): Promise<number[]> {
  if (warmup) {
    device.queue.submit([encodeRuns(device, rec, [...new Set(runs)], run, false).finish()]);
    await device.queue.onSubmittedWorkDone();
  }
  const out: number[] = [];
  for (const n of runs) {
    const cb = encodeRuns(device, rec, [n], run, false).finish();
    const t0 = performance.now();
    device.queue.submit([cb]);
    await device.queue.onSubmittedWorkDone();
    out.push(performance.now() - t0);
  }
  return out;
}
