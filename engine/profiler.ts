// Shader-level profiling with timestamp queries. Timestamps form a chain: one at the start of a
// submission's work and one at the end of each timed interval, so an interval is the difference
// of two neighbours (n + 1 queries for n intervals, not 2n; a buffer copy recorded between two
// dispatches counts in the next interval). The query set is resolved once per submission and
// read back once, never per kernel.
//
// Why intervals may hold several dispatches: on a CPU Vulkan driver (lavapipe) a timestamp
// between two kernels costs 20-45 us of the device's own time (its worker threads are woken to
// write it; resolving is cheap, ~20-60 us for up to 1024 queries), which for a step of ~560
// short kernels added 3-12% to the step.
// So a dispatch whose kernel, shapes and workgroups were already timed alone on this device at
// under `groupMs` is timed together with its small neighbours, and the group's measured time is
// split in proportion to their latest exact times; such records say `estimated`. By default
// groupMs is the device's measured cost of one timestamp divided by AUTO_OVERHEAD, so a timed
// interval costs at most ~2% of the work in it: ~1.5-2 ms on lavapipe, far less on a real GPU.
// Dispatches not seen before are timed alone, so the first profiled step is exact throughout.
// `groupMs: 0` times every dispatch alone. Without the feature the fallback submits and waits
// for each kernel alone: coarser figures, and it says so.
import copySrc from './peak/copy.wgsl';
import type { DispatchInfo, DispatchObserver, Runtime } from './runtime.js';

export interface KernelRecord extends DispatchInfo {
  /** GPU start and end in ms, relative to the first profiled kernel. */
  startMs: number;
  endMs: number;
  gpuMs: number;
  /** When the dispatch was recorded on the CPU, ms since profiling began. */
  cpuMs: number;
  /** True when the dispatch shared its timed interval with others and holds a share of it. */
  estimated: boolean;
  /** Index of the timed interval its time comes from, counted over the whole profile. */
  interval: number;
}

export interface ProfileResult {
  records: KernelRecord[];
  /** 'timestamp-query' or the coarse fallback. */
  method: 'timestamps' | 'coarse';
  /** Wall-clock ms of the profiled work on the CPU side. */
  wallMs: number;
  /** The grouping threshold used (ms; 0: every dispatch timed alone). */
  groupMs: number;
}

export interface ProfileOptions {
  /**
   * Dispatches known (from an earlier exact timing on this device) to take under this many ms are
   * timed in groups of about this length and their times estimated; 0 times every dispatch alone.
   * 'auto' (the default): the device's timestamp cost / AUTO_OVERHEAD.
   */
  groupMs?: number | 'auto';
}

/** The share of a timed interval that its two timestamps may cost, under groupMs 'auto'. */
export const AUTO_OVERHEAD = 0.02;
const QUERIES_PER_SET = 4096;
const COST_SAMPLES = 32;
const COST_WG = 64;

type QueryResources = Pick<Pending, 'querySet' | 'resolve' | 'readback'>;
/** Query sets and their buffers, kept per device between profiled steps (creating them costs CPU time). */
const spare = new WeakMap<GPUDevice, QueryResources[]>();
/** Exact times of dispatches timed alone, per device, by kernel, shapes and workgroups. */
const learned = new WeakMap<GPUDevice, Map<string, number>>();

const keyOf = (i: DispatchInfo) => `${i.kernel}|${i.shapes}|${i.workgroups.join('x')}`;

interface Member {
  info: DispatchInfo;
  cpuMs: number;
  /** Its latest exact time, the weight of its share of a group. */
  knownMs: number;
}

interface Pending {
  /** Groups in GPU order; group g lies between stamps g and g + 1. */
  groups: Member[][];
  open: Member[];
  openMs: number;
  stamps: number;
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  readback: GPUBuffer;
}

export class Profiler implements DispatchObserver {
  private current: Pending | null = null;
  private submitted: { pending: Pending; done: Promise<bigint[]> }[] = [];
  private readonly t0 = performance.now();
  private readonly known: Map<string, number>;

  constructor(
    private readonly rt: Runtime,
    private readonly groupMs = 0,
  ) {
    if (!rt.hasTimestamps)
      throw new Error('Profiler needs the timestamp-query feature; use profile(), which falls back to coarse timing');
    let m = learned.get(rt.device);
    if (!m) learned.set(rt.device, (m = new Map()));
    this.known = m;
  }

  timestampWrites(info: DispatchInfo): GPUComputePassTimestampWrites | undefined {
    // Room for a closing stamp before this dispatch, one after it, and one at submission end.
    if (this.current && this.current.stamps + 3 > QUERIES_PER_SET) this.rt.flush();
    const p = (this.current ??= this.newPending());
    const knownMs = this.known.get(keyOf(info));
    const small = this.groupMs > 0 && knownMs !== undefined && knownMs < this.groupMs;
    const writes: GPUComputePassTimestampWrites = { querySet: p.querySet };
    // The chain's first stamp, or the end of the small dispatches before a dispatch timed alone.
    if (p.stamps === 0 || (!small && p.open.length)) {
      writes.beginningOfPassWriteIndex = p.stamps++;
      this.close(p);
    }
    p.open.push({ info, cpuMs: performance.now() - this.t0, knownMs: knownMs ?? 0 });
    p.openMs += knownMs ?? 0;
    if (!small || p.openMs >= this.groupMs) {
      writes.endOfPassWriteIndex = p.stamps++;
      this.close(p);
    }
    return writes.beginningOfPassWriteIndex === undefined && writes.endOfPassWriteIndex === undefined
      ? undefined
      : writes;
  }

  beforeSubmit(encoder: GPUCommandEncoder): void {
    const p = this.current;
    if (!p || p.stamps === 0) return;
    if (p.open.length) {
      encoder.beginComputePass({ timestampWrites: { querySet: p.querySet, endOfPassWriteIndex: p.stamps++ } }).end();
      this.close(p);
    }
    encoder.resolveQuerySet(p.querySet, 0, p.stamps, p.resolve, 0);
    encoder.copyBufferToBuffer(p.resolve, 0, p.readback, 0, p.stamps * 8);
  }

  afterSubmit(): void {
    const p = this.current;
    if (!p || p.stamps === 0) return;
    this.current = null;
    const n = p.stamps;
    const done = this.rt
      .untilDone(() => p.readback.mapAsync(GPUMapMode.READ))
      .then(() => {
        const v = Array.from(new BigUint64Array(p.readback.getMappedRange().slice(0, n * 8)));
        p.readback.unmap();
        return v;
      });
    this.submitted.push({ pending: p, done });
  }

  /** Waits for every submitted query set and turns them into records. */
  async collect(): Promise<KernelRecord[]> {
    this.rt.flush();
    const out: KernelRecord[] = [];
    let origin: bigint | null = null;
    let intervals = 0;
    for (const { pending, done } of this.submitted) {
      const stamps = await done;
      origin ??= stamps[0];
      pending.groups.forEach((members, g) => {
        const interval = intervals++;
        let t = Number(stamps[g] - origin!) / 1e6;
        const ms = Math.max(0, Number(stamps[g + 1] - stamps[g]) / 1e6);
        const weight = members.reduce((s, m) => s + m.knownMs, 0);
        for (const m of members) {
          const share = members.length === 1 ? ms : weight > 0 ? (ms * m.knownMs) / weight : ms / members.length;
          out.push({
            ...m.info,
            cpuMs: m.cpuMs,
            startMs: t,
            endMs: t + share,
            gpuMs: share,
            estimated: members.length > 1,
            interval,
          });
          t += share;
        }
        if (members.length === 1) this.known.set(keyOf(members[0].info), ms);
      });
      const pool = spare.get(this.rt.device) ?? [];
      pool.push({ querySet: pending.querySet, resolve: pending.resolve, readback: pending.readback });
      spare.set(this.rt.device, pool);
    }
    this.submitted = [];
    return out;
  }

  private close(p: Pending): void {
    if (p.open.length) p.groups.push(p.open);
    p.open = [];
    p.openMs = 0;
  }

  private newPending(): Pending {
    const d = this.rt.device;
    const reused = spare.get(d)?.pop();
    const base = { groups: [], open: [], openMs: 0, stamps: 0 };
    if (reused) return { ...base, ...reused };
    return {
      ...base,
      querySet: d.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }),
      resolve: d.createBuffer({
        size: QUERIES_PER_SET * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
      readback: d.createBuffer({ size: QUERIES_PER_SET * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };
  }
}

const stampCosts = new WeakMap<GPUDevice, Promise<number>>();

/**
 * Device time one more timed interval costs, measured once per device: the exact interval of a
 * one-workgroup dispatch less that dispatch's time when 32 of them share one interval (medians).
 * Between empty passes the stamps would cost less than between kernels, so kernels it is.
 */
export function timestampCostMs(rt: Runtime): Promise<number> {
  let p = stampCosts.get(rt.device);
  if (!p) {
    p = measureStampCost(rt);
    stampCosts.set(rt.device, p);
  }
  return p;
}

async function measureStampCost(rt: Runtime): Promise<number> {
  const k = rt.kernel('peak_copy', copySrc, { WG: COST_WG });
  const [src, dst] = [0, 1].map(() => rt.device.createBuffer({ size: COST_WG * 16, usage: GPUBufferUsage.STORAGE }));
  const tiny = () => {
    for (let i = 0; i < COST_SAMPLES; i++)
      rt.dispatch(k, { params: { n: COST_WG }, buffers: [src, dst], workgroups: [1, 1, 1], op: 'profiler.calibrate' });
  };
  const alone: number[] = [];
  const shared: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      alone.push(...(await profile(rt, tiny, { groupMs: 0 })).records.map((r) => r.gpuMs));
      const one = await profile(rt, tiny, { groupMs: Infinity });
      shared.push(one.records.reduce((s, r) => s + r.gpuMs, 0) / COST_SAMPLES);
    }
  } finally {
    await rt.sync();
    src.destroy();
    dst.destroy();
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  return Math.max(0, median(alone) - median(shared));
}

/** Coarse fallback: each dispatch is submitted and waited for alone (distorts overlap; says so). */
class CoarseProfiler implements DispatchObserver {
  readonly records: KernelRecord[] = [];
  private last: { info: DispatchInfo; cpuMs: number } | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly t0 = performance.now();

  constructor(private readonly rt: Runtime) {}

  timestampWrites(info: DispatchInfo): undefined {
    this.rt.flush();
    this.last = { info, cpuMs: performance.now() - this.t0 };
    return undefined;
  }
  beforeSubmit(): void {}
  afterSubmit(): void {
    const x = this.last;
    if (!x) return;
    this.last = null;
    const start = performance.now() - this.t0;
    this.chain = this.chain.then(() =>
      this.rt.device.queue.onSubmittedWorkDone().then(() => {
        const end = performance.now() - this.t0;
        this.records.push({
          ...x.info,
          cpuMs: x.cpuMs,
          startMs: start,
          endMs: end,
          gpuMs: end - start,
          estimated: false,
          interval: this.records.length,
        });
      }),
    );
  }
  async collect(): Promise<KernelRecord[]> {
    this.rt.flush();
    await this.chain;
    return this.records;
  }
}

/**
 * Runs `fn` with every dispatch timed and returns one record per kernel launch. The work `fn`
 * records is submitted by the time this resolves.
 */
export async function profile(
  rt: Runtime,
  fn: () => unknown | Promise<unknown>,
  options: ProfileOptions = {},
): Promise<ProfileResult> {
  if (rt.observer) throw new Error('profile: a profiler is already attached to this runtime');
  const asked = options.groupMs ?? 'auto';
  if (asked !== 'auto' && !(asked >= 0))
    throw new Error(`profile: groupMs ${asked} must be 'auto' or a number >= 0 (0 times every dispatch alone)`);
  rt.flush();
  const timestamps = rt.hasTimestamps;
  const groupMs = !timestamps ? 0 : asked === 'auto' ? (await timestampCostMs(rt)) / AUTO_OVERHEAD : asked;
  const p = timestamps ? new Profiler(rt, groupMs) : new CoarseProfiler(rt);
  if (!timestamps)
    console.warn(
      '[profiler] the adapter lacks timestamp-query: kernels are timed one submission each, figures are coarser',
    );
  rt.observer = p;
  const t = performance.now();
  try {
    await fn();
    rt.flush();
  } finally {
    rt.observer = null;
  }
  const records = await p.collect();
  return { records, method: timestamps ? 'timestamps' : 'coarse', wallMs: performance.now() - t, groupMs };
}
