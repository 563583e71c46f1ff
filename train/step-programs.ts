// The trainer's captured steps, one per step signature (batch shape, code path). A signature's
// first step runs eagerly (it compiles pipelines and may start kernel tuning), its second is
// captured, later ones replay. A step may be captured in parts (a data-parallel step: the host
// exchanges values between them); all parts of one step replay, or all run eagerly. A few
// programs are kept, least recently used evicted, since each owns every intermediate buffer of
// its step. The runtime's kernel choices (device profile, tuning decisions) are part of every
// program: when they change, all programs are dropped, and while tuning is still timing kernels,
// steps run eagerly (a capture would freeze the fallbacks).
import { captureStep, replayStep, type CapturedStep, type StepTensors } from '../engine/replay.js';
import type { StepValues } from '../engine/capture.js';
import type { Runtime } from '../engine/index.js';

/** Programs kept at once: one steady-state shape plus a warm-up path and an odd last batch. */
export const MAX_PROGRAMS = 3;

export interface ProgramStats {
  eager: number;
  captured: number;
  replayed: number;
  evicted: number;
}

export class StepPrograms<T extends StepTensors> {
  /** Each signature's program: its captured parts in order. */
  private programs = new Map<string, CapturedStep<T>[]>();
  /** The parts of a capture not yet complete (freed if its step never finishes). */
  private pending: CapturedStep<T>[] = [];
  /** Signatures whose first (eager) step has run. */
  private seen = new Set<string>();
  /** The runtime's kernel choices the programs were captured under. */
  private choices = '';
  readonly stats: ProgramStats = { eager: 0, captured: 0, replayed: 0, evicted: 0 };

  constructor(
    private readonly rt: Runtime,
    private readonly limit = MAX_PROGRAMS,
  ) {}

  /**
   * Runs the step of this signature: replays its program with `values`, or runs `record`
   * eagerly (capturing it the second time the signature is seen). `record` must take every
   * per-step value from `values` (as named inputs and live uniform values).
   */
  run(signature: string, values: StepValues, record: () => T): T {
    return this.begin(signature, 1).part(values, record);
  }

  /**
   * Starts a step of `parts` parts, run in order by the returned run's part(): each replays its
   * captured part, or runs its `record` eagerly (captured on the signature's second step). The
   * host may read the GPU between parts, never inside one.
   */
  begin(signature: string, parts: number): StepRun<T> {
    this.dropPending();
    const choices = `${JSON.stringify(this.rt.profile.kernels)} tuned=${this.rt.tuner.generation}`;
    if (choices !== this.choices) {
      this.destroy();
      this.seen.clear();
      this.choices = choices;
    }
    // A program that binds a buffer replaced since (re-laid weights that grew) is recaptured.
    for (const [sig, captured] of this.programs)
      if (captured.some((c) => !this.rt.canReplay(c.program))) {
        for (const c of captured) c.program.destroy();
        this.programs.delete(sig);
      }
    const hit = this.programs.get(signature);
    if (hit) {
      if (hit.length !== parts)
        throw new Error(`step programs: '${signature}' was captured in ${hit.length} parts, not ${parts} (engine bug)`);
      this.programs.delete(signature); // re-inserted last: the map's order is the recency order
      this.programs.set(signature, hit);
      this.stats.replayed++;
      let at = 0;
      return { replaying: true, part: (values) => replayStep(this.rt, hit[at++], values) };
    }
    const first = !this.seen.has(signature);
    this.seen.add(signature);
    if (first || this.rt.tuner.busy) {
      this.stats.eager++;
      return eagerRun(this.rt);
    }
    const captured: CapturedStep<T>[] = (this.pending = []);
    return {
      replaying: false,
      part: (values, record) => {
        const { captured: part, result } = captureStep(this.rt, record);
        captured.push(part);
        // A name the recorded code did not use is a caller's bug: found now, not at replay.
        part.program.check(values);
        if (captured.length === parts) this.keep(signature, captured);
        return result;
      },
    };
  }

  /** Stores a complete capture, evicting the least recently used programs over the limit. */
  private keep(signature: string, captured: CapturedStep<T>[]): void {
    this.pending = [];
    this.programs.set(signature, captured);
    this.stats.captured++;
    // The program owns the step's buffers now; what the eager steps left pooled would only
    // double the step's memory, so it goes (the next eager work allocates anew).
    this.rt.pool.trim();
    while (this.programs.size > this.limit) {
      const [oldest, program] = this.programs.entries().next().value!;
      this.programs.delete(oldest);
      for (const c of program) c.program.destroy();
      this.stats.evicted++;
    }
  }

  /** Frees the parts of a capture whose step stopped before its last part (an error between parts). */
  private dropPending(): void {
    for (const c of this.pending) c.program.destroy();
    this.pending = [];
  }

  /** Programs held now, with their dispatch counts and owned bytes. */
  list(): { signature: string; dispatches: number; bytes: number }[] {
    return [...this.programs].map(([signature, parts]) => ({
      signature,
      dispatches: parts.reduce((a, c) => a + c.program.dispatches, 0),
      bytes: parts.reduce((a, c) => a + c.program.bytes, 0),
    }));
  }

  destroy(): void {
    this.dropPending();
    for (const parts of this.programs.values()) for (const c of parts) c.program.destroy();
    this.programs.clear();
  }
}

/** One step's parts as StepPrograms.begin hands them out. */
export interface StepRun<T extends StepTensors> {
  /** The parts replay a program (their `record` is not called). */
  readonly replaying: boolean;
  /** Runs the step's next part: replayed with `values`, or `record` run (and captured or eager). */
  part(values: StepValues, record: () => T): T;
}

/** Parts recorded eagerly, each submitted when it ends: a step that is not captured. */
export function eagerRun<T extends StepTensors>(rt: Runtime): StepRun<T> {
  return {
    replaying: false,
    part: (_values, record) => {
      const out = record();
      rt.flush();
      return out;
    },
  };
}
