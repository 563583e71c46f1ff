// Kernel autotuning: for a shape class not yet decided on this device, time the candidate
// kernels on the real shapes and keep the fastest. Any op can use it:
//
//   const { name, tuned } = rt.tuner.choose({
//     key: 'conv2d|fwd|...',          // the shape class: op, direction, rounded dims, dtype
//     candidates: ['a', 'b'],          // the names that fit this device and shape
//     fallback: 'a',                   // the profile's default
//     run: (name, rec) => { ... },     // records one run of `name` on scratch buffers (measure.ts)
//   });
//
// Modes (init({ tune }) or DENSECL_TUNE in Node): 'off' (the default) always answers the
// fallback; 'cached' answers decisions from the cache and the fallback otherwise, never timing;
// 'on' also tunes missing classes. When does the timing run? At the first use of a class,
// choose() answers the fallback at once (so the op records as usual, inside whatever step is
// being recorded) and starts timing in the background on command buffers of its own; the
// runtime's recorded work is never flushed or reordered. Later uses get the winner. Await
// `settled()` to wait for the timing (benchmarks; a test before destroying the runtime).
// A tuned choice may sum in another order than the fallback, so results can change in the last
// bits between the first use of a class and later ones.
//
// Decisions live in memory (exportable and importable as JSON: a browser can keep them in
// localStorage) and, in Node, in a file (disk.ts) keyed by the adapter and KERNEL_VERSION.
import { timeCandidates, type RunCandidate } from './measure.js';

/** Bump when a tunable kernel or a candidate list changes: cached decisions then go stale. */
export const KERNEL_VERSION = 'gemm-conv-tiled-3-f16';

export type TuneMode = 'off' | 'cached' | 'on';

export interface Decision {
  name: string;
  /** Fastest run of each candidate timed, ms. */
  ms: Record<string, number>;
}

export interface TuneRequest {
  key: string;
  candidates: string[];
  fallback: string;
  run: RunCandidate;
}

/** Where decisions persist (disk.ts in Node). */
export interface TuneStore {
  load(adapterKey: string): Record<string, Decision>;
  save(adapterKey: string, key: string, decision: Decision): void;
}

/** Decisions as JSON, for tuner.import() in another session. */
export interface TuneExport {
  kernelVersion: string;
  adapter: string;
  decisions: Record<string, Decision>;
}

export interface TuneOptions {
  mode?: TuneMode;
  store?: TuneStore;
  /** GPU milliseconds the repeated runs of one class may take (default 50). */
  budgetMs?: number;
}

export function parseTuneMode(s: string | undefined, where: string): TuneMode {
  if (s === undefined || s === '') return 'off';
  if (s === 'off' || s === 'cached' || s === 'on') return s;
  throw new Error(`${where} is '${s}'; use off, cached or on`);
}

export class Tuner {
  mode: TuneMode = 'off';
  budgetMs = 50;
  /** Classes timed, and the wall-clock milliseconds from the start to the end of their timing. */
  readonly stats = { classesTuned: 0, tuningMs: 0 };
  private decisions: Record<string, Decision> = {};
  /** Changes whenever the decisions do: a captured step recorded before a change may use other kernels. */
  generation = 0;
  private pending = new Map<string, Promise<void>>();
  private store: TuneStore | null = null;

  constructor(
    private device: GPUDevice,
    readonly adapterKey: string,
  ) {}

  configure(o: TuneOptions): void {
    if (o.mode) this.mode = o.mode;
    if (o.budgetMs !== undefined) this.budgetMs = o.budgetMs;
    if (o.store) {
      this.store = o.store;
      Object.assign(this.decisions, o.store.load(this.adapterKey));
      this.generation++;
    }
  }

  /** The candidate to run for this class now, and whether it comes from a timing. */
  choose(req: TuneRequest): { name: string; tuned: boolean } {
    if (this.mode === 'off' || req.candidates.length < 2) return { name: req.fallback, tuned: false };
    const d = this.decisions[req.key];
    if (d && req.candidates.includes(d.name)) return { name: d.name, tuned: true };
    if (this.mode === 'on' && !this.pending.has(req.key)) this.pending.set(req.key, this.tune(req));
    return { name: req.fallback, tuned: false };
  }

  /** Whether timings are running (their decisions will change what choose() answers). */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** Resolves when every timing started so far has ended. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all(this.pending.values());
  }

  export(): TuneExport {
    return { kernelVersion: KERNEL_VERSION, adapter: this.adapterKey, decisions: { ...this.decisions } };
  }

  /** Takes decisions exported on the same adapter by the same kernel version; refuses others. */
  import(data: TuneExport): void {
    if (data?.kernelVersion !== KERNEL_VERSION)
      throw new Error(
        `tuning decisions from kernel version ${data?.kernelVersion} do not apply to ${KERNEL_VERSION}; tune again`,
      );
    if (data.adapter !== this.adapterKey)
      throw new Error(`tuning decisions were made on '${data.adapter}', this adapter is '${this.adapterKey}'`);
    Object.assign(this.decisions, data.decisions);
    this.generation++;
  }

  private async tune(req: TuneRequest): Promise<void> {
    const t0 = performance.now();
    try {
      const ms = await timeCandidates(this.device, req.candidates, req.run, this.budgetMs);
      const name = req.candidates.reduce((a, b) => (ms[b] < ms[a] ? b : a));
      const d: Decision = { name, ms };
      this.decisions[req.key] = d;
      this.generation++;
      this.store?.save(this.adapterKey, req.key, d);
      this.stats.classesTuned++;
    } catch (e) {
      console.warn(`[tune] timing ${req.key} failed (${(e as Error).message}); using ${req.fallback}`);
      this.decisions[req.key] = { name: req.fallback, ms: {} }; // not timed again this session
    } finally {
      this.stats.tuningMs += performance.now() - t0;
      this.pending.delete(req.key);
    }
  }
}
