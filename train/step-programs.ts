// The trainer's captured steps, one per step signature (batch shape, code path). A signature's
// first step runs eagerly (it compiles pipelines and may start kernel tuning), its second is
// captured, later ones replay. A few programs are kept, least recently used evicted, since each
// owns every intermediate buffer of its step. The runtime's kernel choices (device profile,
// tuning decisions) are part of every program: when they change, all programs are dropped, and
// while tuning is still timing kernels, steps run eagerly (a capture would freeze the fallbacks).
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
  private programs = new Map<string, CapturedStep<T>>();
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
    const choices = `${JSON.stringify(this.rt.profile.kernels)} tuned=${this.rt.tuner.generation}`;
    if (choices !== this.choices) {
      this.destroy();
      this.seen.clear();
      this.choices = choices;
    }
    // A program that binds a buffer replaced since (re-laid weights that grew) is recaptured.
    for (const [sig, c] of this.programs)
      if (!this.rt.canReplay(c.program)) {
        c.program.destroy();
        this.programs.delete(sig);
      }
    const hit = this.programs.get(signature);
    if (hit) {
      this.programs.delete(signature); // re-inserted last: the map's order is the recency order
      this.programs.set(signature, hit);
      this.stats.replayed++;
      return replayStep(this.rt, hit, values);
    }
    const first = !this.seen.has(signature);
    this.seen.add(signature);
    if (first || this.rt.tuner.busy) {
      this.stats.eager++;
      const out = record();
      this.rt.flush();
      return out;
    }
    const { captured, result } = captureStep(this.rt, record);
    try {
      captured.program.check(values); // a name the recorded code did not use is a caller's bug: found now, not at replay
    } catch (e) {
      captured.program.destroy();
      throw e;
    }
    this.programs.set(signature, captured);
    this.stats.captured++;
    // The program owns the step's buffers now; what the eager steps left pooled would only
    // double the step's memory, so it goes (the next eager work allocates anew).
    this.rt.pool.trim();
    while (this.programs.size > this.limit) {
      const [oldest, program] = this.programs.entries().next().value!;
      this.programs.delete(oldest);
      program.program.destroy();
      this.stats.evicted++;
    }
    return result;
  }

  /** Programs held now, with their dispatch counts and owned bytes. */
  list(): { signature: string; dispatches: number; bytes: number }[] {
    return [...this.programs].map(([signature, c]) => ({
      signature,
      dispatches: c.program.dispatches,
      bytes: c.program.bytes,
    }));
  }

  destroy(): void {
    for (const c of this.programs.values()) c.program.destroy();
    this.programs.clear();
  }
}
