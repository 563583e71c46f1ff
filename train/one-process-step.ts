// The step strategy of one process: the training step recorded straight through, shuffle-BN
// emulated on the GPU by the plan's permutation, captured per step signature and replayed
// (StepPrograms), or recorded eagerly every step when replay is off.
import { scope, type Runtime, type Tensor } from '../engine/index.js';
import type { StepTensors } from '../engine/replay.js';
import { inputOn } from '../engine/ops/create.js';
import { pixelsOn, pixelWords } from '../engine/ops/pixels.js';
import type { Sgd } from '../engine/ops/sgd.js';
import { runThrough, type DenseCL } from '../models/densecl.js';
import type { ViewBatch } from './data/loader.js';
import { StepPrograms } from './step-programs.js';
import { trainingStep, type StepRequest, type StepStats, type StepStrategy } from './step-strategy.js';

export class OneProcessStep implements StepStrategy {
  readonly programs: StepPrograms<StepTensors> | null;

  constructor(
    private readonly rt: Runtime,
    private readonly model: DenseCL,
    private readonly sgd: Sgd,
    /** Images per step and side of the square views. */
    private readonly batch: number,
    private readonly imgSize: number,
    replay: boolean,
  ) {
    this.programs = replay ? new StepPrograms(rt) : null;
  }

  run({ q, k, step, lr, rng, opts, norm }: StepRequest): Promise<StepStats> {
    const { rt, model, batch: B, imgSize: S } = this;
    const plan = model.planStep(step, B, opts.keyPermutation ?? rng);
    const upload = (name: string, x: ViewBatch) =>
      x instanceof Uint8Array ? pixelsOn(rt, name, x, [B, 3, S, S], norm) : inputOn(rt, name, x, [B, 3, S, S]);
    const asValue = (x: ViewBatch) => (x instanceof Uint8Array ? pixelWords(x) : x);
    const values = { query: asValue(q), key: asValue(k), lr, ...model.stepValues(plan) };
    const record = (): StepTensors =>
      scope(() => {
        const views = { query: () => upload('query', q), key: () => upload('key', k) };
        const out = runThrough(trainingStep(model, this.sgd, views, plan, lr));
        return {
          loss: out.loss,
          lossGlobal: out.lossGlobal,
          lossDense: out.lossDense,
          correspondence: opts.correspondence ? out.correspondence : null,
        };
      });
    let outs: StepTensors;
    if (this.programs) {
      // Everything that shapes the recorded commands; what changes within it comes in `values`.
      const pixels = q instanceof Uint8Array ? `bytes ${JSON.stringify(norm)}` : 'floats';
      const signature = `${B}x${S} ${pixels} lambda=${plan.lambda} correspondence=${!!opts.correspondence}`;
      outs = this.programs.run(signature, values, record);
    } else {
      outs = record();
      rt.flush();
    }
    model.finishStep(plan);
    const { loss, lossGlobal, lossDense, correspondence: corr } = outs;
    const read = (t: Tensor | null) => (t ? t.data().finally(() => t.dispose()) : Promise.resolve(null));
    return Promise.all([read(loss), read(lossGlobal), read(lossDense), read(corr)]).then(([l, g, d, c]) => ({
      step,
      lr,
      loss: l![0],
      lossGlobal: g![0],
      lossDense: d ? d[0] : null,
      ...(c ? { correspondence: c as Int32Array } : {}),
    }));
  }

  /** Nothing in flight needs waiting for: a saved state reads the stores after the recorded steps. */
  settle(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): void {
    this.programs?.destroy();
  }
}
