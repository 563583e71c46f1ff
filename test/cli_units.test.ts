// CPU-side pieces of the program: flag parsing, the detectron2 renaming, progress formatting.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseArgs, resolveOptions } from '../train/args.js';
import { detectron2Name } from '../train/export.js';
import { formatDuration, formatFigures } from '../train/progress.js';
import { cosineLr, scaledLr } from '../train/optim/schedule.js';

const t = suite('cli units');

t('flags: kebab-case, =, bare booleans, typed by the defaults', () => {
  const { positional, flags } = parseArgs(['pretrain', '--batch-size', '16', '--small-stem', '--method=mocov2']);
  assert.equal(positional, ['pretrain']);
  const o = resolveOptions({ batchSize: 32, smallStem: false, method: 'densecl' }, flags, 'pretrain');
  assert.equal(o, { batchSize: 16, smallStem: true, method: 'mocov2' });
});

t('flags: unknown keys and non-numbers are clear errors', () => {
  assert.throws(() => resolveOptions({ batchSize: 32 }, parseArgs(['--batch-sise', '3']).flags, 'pretrain'), /unknown option --batch-sise; known: --batch-size/);
  assert.throws(() => resolveOptions({ batchSize: 32 }, parseArgs(['--batch-size', 'big']).flags, 'pretrain'), /--batchSize needs a number, got 'big'/);
});

t('detectron2 names follow its converter', () => {
  assert.is(detectron2Name('conv1.weight'), 'stem.conv1.weight');
  assert.is(detectron2Name('bn1.running_mean'), 'stem.conv1.norm.running_mean');
  assert.is(detectron2Name('layer1.0.conv2.weight'), 'res2.0.conv2.weight');
  assert.is(detectron2Name('layer3.1.bn3.bias'), 'res4.1.conv3.norm.bias');
  assert.is(detectron2Name('layer2.0.downsample.0.weight'), 'res3.0.shortcut.weight');
  assert.is(detectron2Name('layer4.0.downsample.1.running_var'), 'res5.0.shortcut.norm.running_var');
  assert.is(detectron2Name('layer4.0.bn1.num_batches_tracked'), null);
});

t('schedule: linear scaling and cosine to zero', () => {
  assert.is(scaledLr(0.03, 256), 0.03);
  assert.is(scaledLr(0.03, 32), 0.00375);
  assert.is(cosineLr(0.1, 0, 100), 0.1);
  assert.ok(Math.abs(cosineLr(0.1, 50, 100) - 0.05) < 1e-12);
  assert.ok(Math.abs(cosineLr(0.1, 100, 100)) < 1e-12);
});

t('progress line shows step, epoch, rate, both losses, lr and ETA', () => {
  const line = formatFigures({ step: 5, totalSteps: 10, epoch: 0, epochs: 2, imagesPerSec: 12.5, loss: 8.1, lossGlobal: 8, lossDense: 8.2, lr: 0.001, etaSec: 75 });
  for (const part of ['step 5/10', 'ep 1/2', '12.5 img/s', 'loss 8.1000', 'global 8.0000', 'dense 8.2000', 'lr 1.00e-3', 'ETA 1:15']) {
    assert.ok(line.includes(part), `'${part}' missing from: ${line}`);
  }
  assert.is(formatDuration(3725), '1:02:05');
});

t.run();
