// Shader-level profiling. With the adapter's 'timestamp-query' feature every dispatch runs in a
// compute pass of its own that writes a begin and an end timestamp into a query set; the query
// set is resolved once per submission and read back once, never per kernel. Without the feature
// the fallback submits and waits for each kernel alone: coarser figures, and it says so.
import type { DispatchInfo, DispatchObserver, Runtime } from './runtime.js';

export interface KernelRecord extends DispatchInfo {
  /** GPU start and end in ms, relative to the first profiled kernel. */
  startMs: number;
  endMs: number;
  gpuMs: number;
  /** When the dispatch was recorded on the CPU, ms since profiling began. */
  cpuMs: number;
}

export interface ProfileResult {
  records: KernelRecord[];
  /** 'timestamp-query' or the coarse fallback. */
  method: 'timestamps' | 'coarse';
  /** Wall-clock ms of the profiled work on the CPU side. */
  wallMs: number;
}

const QUERIES_PER_SET = 4096;

type QueryResources = Omit<Pending, 'infos'>;
/** Query sets and their buffers, kept per device between profiled steps (creating them costs CPU time). */
const spare = new WeakMap<GPUDevice, QueryResources[]>();

interface Pending {
  infos: { info: DispatchInfo; cpuMs: number }[];
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  readback: GPUBuffer;
}

export class Profiler implements DispatchObserver {
  private current: Pending | null = null;
  private submitted: { pending: Pending; done: Promise<bigint[]> }[] = [];
  private readonly t0 = performance.now();
  private overflow = 0;

  constructor(private readonly rt: Runtime) {
    if (!rt.hasTimestamps) throw new Error('Profiler needs the timestamp-query feature; use profile(), which falls back to coarse timing');
  }

  timestampWrites(info: DispatchInfo): GPUComputePassTimestampWrites | undefined {
    const p = (this.current ??= this.newPending());
    if (p.infos.length * 2 + 2 > QUERIES_PER_SET) {
      this.overflow++;
      return undefined;
    }
    const i = p.infos.length;
    p.infos.push({ info, cpuMs: performance.now() - this.t0 });
    return { querySet: p.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  beforeSubmit(encoder: GPUCommandEncoder): void {
    const p = this.current;
    if (!p || p.infos.length === 0) return;
    const n = p.infos.length * 2;
    encoder.resolveQuerySet(p.querySet, 0, n, p.resolve, 0);
    encoder.copyBufferToBuffer(p.resolve, 0, p.readback, 0, n * 8);
  }

  afterSubmit(): void {
    const p = this.current;
    if (!p || p.infos.length === 0) return;
    this.current = null;
    const n = p.infos.length * 2;
    const done = p.readback.mapAsync(GPUMapMode.READ).then(() => {
      const v = Array.from(new BigUint64Array(p.readback.getMappedRange().slice(0, n * 8)));
      p.readback.unmap();
      return v;
    });
    this.submitted.push({ pending: p, done });
  }

  /** Waits for every submitted query set and turns them into records. */
  async collect(): Promise<KernelRecord[]> {
    this.rt.flush();
    const raw: { info: DispatchInfo; cpuMs: number; begin: bigint; end: bigint }[] = [];
    for (const { pending, done } of this.submitted) {
      const stamps = await done;
      pending.infos.forEach((x, i) => raw.push({ ...x, begin: stamps[2 * i], end: stamps[2 * i + 1] }));
      const pool = spare.get(this.rt.device) ?? [];
      pool.push({ querySet: pending.querySet, resolve: pending.resolve, readback: pending.readback });
      spare.set(this.rt.device, pool);
    }
    this.submitted = [];
    if (this.overflow) console.warn(`[profiler] ${this.overflow} dispatches exceeded the query set of one submission and were not timed`);
    const origin = raw.reduce((m, r) => (r.begin < m ? r.begin : m), raw[0]?.begin ?? 0n);
    return raw.map(({ info, cpuMs, begin, end }) => ({
      ...info,
      cpuMs,
      startMs: Number(begin - origin) / 1e6,
      endMs: Number(end - origin) / 1e6,
      gpuMs: Math.max(0, Number(end - begin) / 1e6),
    }));
  }

  private newPending(): Pending {
    const d = this.rt.device;
    const reused = spare.get(d)?.pop();
    if (reused) return { infos: [], ...reused };
    return {
      infos: [],
      querySet: d.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }),
      resolve: d.createBuffer({ size: QUERIES_PER_SET * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      readback: d.createBuffer({ size: QUERIES_PER_SET * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };
  }
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
        this.records.push({ ...x.info, cpuMs: x.cpuMs, startMs: start, endMs: end, gpuMs: end - start });
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
export async function profile(rt: Runtime, fn: () => unknown | Promise<unknown>): Promise<ProfileResult> {
  if (rt.observer) throw new Error('profile: a profiler is already attached to this runtime');
  rt.flush();
  const timestamps = rt.hasTimestamps;
  const p = timestamps ? new Profiler(rt) : new CoarseProfiler(rt);
  if (!timestamps) console.warn('[profiler] the adapter lacks timestamp-query: kernels are timed one submission each, figures are coarser');
  rt.observer = p;
  const t = performance.now();
  try {
    await fn();
    rt.flush();
  } finally {
    rt.observer = null;
  }
  const records = await p.collect();
  return { records, method: timestamps ? 'timestamps' : 'coarse', wallMs: performance.now() - t };
}
