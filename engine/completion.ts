// Predicts when submitted GPU work will be done, so a wait can sleep first and poll only at the
// end. Why: Dawn's Node binding resolves mapAsync / onSubmittedWorkDone by ticking the device
// from setImmediate until the work is done, a busy loop on the main thread. On a CPU adapter
// (Mesa's lavapipe) that loop takes a core from the driver's own worker threads: sleeping
// through most of the wait made a 3x3 convolution ~1.4x faster on 2 cores.
//
// The model is one learnt rate (milliseconds per unit of work) over a cost counted from the ops'
// own FLOP and byte counts plus a fixed cost per dispatch. A wait's duration over-estimates the
// GPU's work when the GPU sat idle in it (work waited for elsewhere, a CPU gap between
// submissions), so the rate is the lowest of the recent samples, and a sleep never exceeds the
// longest recent wait: an estimate that is too high could otherwise grow without bound. The
// sleep covers only SAFETY of the predicted remainder, so a misprediction costs polling time.

/** Cost units of one dispatch beyond its FLOPs and bytes (launch, barriers). */
const DISPATCH_COST = 2e5;
/** Cost units per byte moved, relative to one FLOP. */
const BYTE_COST = 8;
/** Share of the predicted remaining time that is slept before polling. */
const SAFETY = 0.8;
/** Waits predicted shorter than this are polled at once (a timer's own granularity). */
const MIN_SLEEP_MS = 2;
/** Only waits at least this long teach the rate (short ones are dominated by latency). */
const MIN_LEARN_MS = 5;
/** Samples kept: the rate is their minimum, the sleep's cap their longest wait. */
const WINDOW = 8;

interface Submission {
  seq: number;
  /** Cumulative cost of everything submitted up to and including this submission. */
  cumulative: number;
  at: number;
  /** Runs a pipeline for the first time: CPU drivers compile shaders then (seconds each). */
  cold: boolean;
}

export class CompletionPredictor {
  private recording = 0;
  private recordingCold = false;
  private submitted = 0;
  private seq = 0;
  private queue: Submission[] = [];
  private doneCost = 0;
  private doneAt = 0;
  /** Recent long waits: milliseconds per cost unit, and the wait's length. */
  private samples: { rate: number; busy: number }[] = [];

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Counts a recorded dispatch; `firstUse` when its pipeline has never run before. */
  noteDispatch(flops: number, bytes: number, firstUse = false): void {
    this.recording += DISPATCH_COST + flops + BYTE_COST * bytes;
    this.recordingCold ||= firstUse;
  }

  /** Marks everything recorded since the last call as submitted; returns the submission's number. */
  noteSubmit(): number {
    this.submitted += this.recording;
    this.recording = 0;
    this.queue.push({ seq: ++this.seq, cumulative: this.submitted, at: this.now(), cold: this.recordingCold });
    this.recordingCold = false;
    return this.seq;
  }

  /** The latest submission's number (waits issued without a submit of their own use it). */
  get latest(): number {
    return this.seq;
  }

  /** Milliseconds to sleep before polling for submission `seq`; 0 when unknown or short. */
  sleepBefore(seq: number): number {
    const target = this.queue.find((s) => s.seq === seq);
    if (!target || this.samples.length === 0) return 0;
    const rate = Math.min(...this.samples.map((x) => x.rate));
    const longest = Math.max(...this.samples.map((x) => x.busy));
    const remaining = rate * (target.cumulative - this.doneCost) - (this.now() - this.workStart());
    const sleep = Math.min(SAFETY * remaining, longest);
    return sleep >= MIN_SLEEP_MS ? sleep : 0;
  }

  /** Records that submission `seq` (and all before it) is complete now, and learns the rate. */
  noteDone(seq: number): void {
    const idx = this.queue.findIndex((s) => s.seq === seq);
    if (idx < 0) return;
    const target = this.queue[idx];
    const t = this.now();
    const busy = t - this.workStart();
    const cost = target.cumulative - this.doneCost;
    // A wait over a pipeline's first run mostly timed its compilation (llvmpipe compiles lazily).
    const cold = this.queue.slice(0, idx + 1).some((s) => s.cold);
    if (busy >= MIN_LEARN_MS && cost > 0 && !cold) {
      this.samples.push({ rate: busy / cost, busy });
      if (this.samples.length > WINDOW) this.samples.shift();
    }
    this.queue.splice(0, idx + 1);
    this.doneCost = target.cumulative;
    this.doneAt = t;
  }

  /** When the GPU started on the oldest unfinished submission (it was busy until the last completion). */
  private workStart(): number {
    return Math.max(this.queue[0].at, this.doneAt);
  }
}

/** Resolves after `ms` milliseconds (at once for 0). */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
