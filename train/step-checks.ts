// The checks a training step's settings must pass before a model is built, in one place: the
// Trainer names the settings as its options (batchSize), `densecl pretrain` and `densecl
// profile` as their flags (--batch-size), through `name`.
import { PRECISIONS, type Precision } from '../engine/autocast.js';
import { outputStride } from '../models/resnet.js';

const METHODS = ['densecl', 'mocov2'];
const ARCHS = ['resnet18', 'resnet34', 'resnet50'];

/** The settings checked here, as TrainerOptions (and pretrain's options) name them. */
interface StepSettings {
  method: string;
  arch: string;
  batchSize: number;
  bnGroups: number;
  queueSize: number;
  imgSize: number;
  smallStem: boolean;
  precision?: string;
}

/**
 * Throws on the first setting that cannot train: an unknown method or arch, a batch that the BN
 * groups, the queue or the job's `processes` do not divide, an image smaller than the network's
 * stride. `prefix` starts the message ('Trainer: ' for API users).
 */
export function checkStepSettings(
  o: StepSettings,
  processes: number,
  name: (key: string) => string,
  prefix = '',
): void {
  const fail = (m: string): never => {
    throw new Error(prefix + m);
  };
  if (!METHODS.includes(o.method)) fail(`${name('method')} must be ${METHODS.join(' or ')}, got '${o.method}'`);
  if (!ARCHS.includes(o.arch))
    fail(`${name('arch')} must be ${ARCHS.slice(0, -1).join(', ')} or ${ARCHS[ARCHS.length - 1]}, got '${o.arch}'`);
  if (o.precision !== undefined && !PRECISIONS.includes(o.precision as Precision))
    fail(`${name('precision')} must be ${PRECISIONS.join(' or ')}, got '${o.precision}'`);
  const [batch, groups] = [name('batchSize'), name('bnGroups')];
  if (!Number.isInteger(o.batchSize) || o.batchSize < 2)
    fail(`${batch} ${o.batchSize} must be an integer of at least 2 (contrastive losses need a batch)`);
  if (o.batchSize % o.bnGroups !== 0)
    fail(
      `${batch} ${o.batchSize} is not divisible by ${groups} ${o.bnGroups} (shuffle-BN groups); choose a batch that is a multiple of it`,
    );
  if (o.queueSize % o.batchSize !== 0)
    fail(
      `${name('queueSize')} ${o.queueSize} is not divisible by ${batch} ${o.batchSize}; the queue is filled a whole batch at a time`,
    );
  if (o.batchSize % processes !== 0 || o.bnGroups % processes !== 0) {
    fail(
      `${batch} ${o.batchSize} and ${groups} ${o.bnGroups} must both be divisible by the ${processes} processes of the job: they are the whole job's, and each process takes an equal share of both`,
    );
  }
  const stride = outputStride(o.smallStem);
  if (!Number.isInteger(o.imgSize) || o.imgSize < stride) {
    fail(
      `${name('imgSize')} ${o.imgSize} is smaller than the network's stride ${stride}; use at least ${stride}${o.smallStem ? '' : ` or ${name('smallStem')}`}`,
    );
  }
}
