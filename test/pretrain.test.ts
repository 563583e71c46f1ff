// The pre-training program end to end on a tiny configuration: an interrupted and resumed run
// gives the same losses as an uninterrupted one, the export has torchvision's keys, and bad
// input fails with clear messages without touching what was saved.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu, rejects, tinyPretrain } from './helpers.js';
import { runtime } from '../engine/index.js';
import { pretrain, resumeOptions } from '../cli/pretrain.js';
import { PRETRAIN_PRESETS } from '../train/presets.js';
import { loadSafetensors, saveSafetensors } from '../train/io.js';
import { decodeSafetensors, encodeSafetensors, safeTensor, type SafeTensor } from '../engine/safetensors.js';
import { features, FEATURES_DEFAULTS } from '../cli/features.js';
import { exportRun } from '../cli/export-run.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';

const t = suite('pretrain program');
const root = mkdtempSync(join(tmpdir(), 'densecl-test-'));

const tiny = tinyPretrain;

function logLosses(runDir: string): Map<number, number> {
  const lines = readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n');
  return new Map(lines.map((l) => JSON.parse(l) as { step: number; loss: number }).map((r) => [r.step, r.loss]));
}

t.before(async () => {
  await gpu();
});

t('a resumed run continues exactly where the interrupted one stopped', async () => {
  const said: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
  let whole: Awaited<ReturnType<typeof pretrain>>;
  try {
    whole = await pretrain(tiny(join(root, 'whole')), runtime());
  } finally {
    process.stderr.write = write;
  }
  assert.is(whole.steps, 4);
  assert.match(
    said.join('').split('\n')[0],
    /^preset tiny; differs: width=0\.0625, batch-size=8 \(lr scaled to 0\.009375\), img-size=16, queue-size=16, dim=16, bn-groups=2, builtin-images=16, workers=0, checkpoint-every=2$/,
  );
  // config.json holds every setting (resume needs nothing else), and the preset it came from.
  const config = JSON.parse(readFileSync(join(whole.runDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(Object.keys(config).sort(), Object.keys(PRETRAIN_PRESETS.tiny.options).sort());
  assert.is(config.preset, 'tiny');
  const cut = join(root, 'cut');
  const first = await pretrain(tiny(cut, { stopAfter: 2 }), runtime());
  assert.is(first.steps, 2);
  await pretrain(resumeOptions(cut, {}), runtime());
  const a = logLosses(whole.runDir);
  const b = logLosses(cut);
  assert.equal([...b.keys()], [1, 2, 3, 4]);
  for (const [step, loss] of a)
    assert.ok(Math.abs(loss - b.get(step)!) <= 1e-5 * Math.abs(loss), `step ${step}: ${loss} vs ${b.get(step)}`);
  // Each logged step says how long it waited for its batch and how long issuing it took.
  for (const line of readFileSync(join(whole.runDir, 'log.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as { dataWaitMs: number; issueMs: number };
    assert.ok(r.dataWaitMs >= 0 && r.issueMs > 0, `data wait ${r.dataWaitMs} ms, issue ${r.issueMs} ms`);
  }
  assert.match(said.join(''), /\| data wait \d+ ms, issue \d+ ms/);
});

t('the exported backbone has torchvision keys, BN statistics and no heads', () => {
  const exported = loadSafetensors(join(root, 'whole', 'backbone_torchvision.safetensors'));
  const keys = [...exported.tensors.keys()];
  for (const k of [
    'conv1.weight',
    'bn1.running_var',
    'layer1.0.conv1.weight',
    'layer2.0.downsample.0.weight',
    'layer4.1.bn2.num_batches_tracked',
  ]) {
    assert.ok(keys.includes(k), `${k} exported`);
  }
  assert.ok(
    !keys.some((k) => k.startsWith('neck') || k.startsWith('fc') || k.startsWith('backbone')),
    'only backbone keys, unprefixed',
  );
  const nbt = exported.tensors.get('bn1.num_batches_tracked')!;
  assert.is(nbt.dtype, 'I64');
  assert.is(Number((nbt.data as BigInt64Array)[0]), 4);
  const d2 = loadSafetensors(exportRun(join(root, 'whole'), 'detectron2'));
  assert.ok(d2.tensors.has('stem.conv1.weight') && d2.tensors.has('res5.1.conv2.norm.running_mean'));
});

t('bad input fails clearly', async () => {
  const rt = runtime();
  await rejects(
    () => pretrain(tiny(join(root, 'q'), { queueSize: 12 }), rt),
    /--queue-size 12 is not divisible by --batch-size 8/,
  );
  await rejects(
    () => pretrain(tiny(join(root, 'b'), { batchSize: 32, queueSize: 32, builtinImages: 16 }), rt),
    /16 images, fewer than --batch-size 32/,
  );
  await rejects(() => pretrain(tiny(join(root, 'm'), { data: join(root, 'no-such-folder') }), rt), /no-such-folder/);
  const empty = join(root, 'empty');
  mkdirSync(empty);
  await rejects(() => pretrain(tiny(join(root, 'e'), { data: empty }), rt), /empty/);
});

t('a corrupt or mismatched checkpoint is refused and left as it was', async () => {
  const rt = runtime();
  const dir = join(root, 'whole');
  const path = join(dir, 'checkpoint.safetensors');
  const good = readFileSync(path);
  writeFileSync(path, good.subarray(0, good.length - 100));
  await rejects(() => pretrain(resumeOptions(dir, { epochs: 3 }), rt), /checkpoint\.safetensors/);
  writeFileSync(path, good);
  const wider = { ...resumeOptions(dir, { epochs: 3 }), width: 1 / 8 };
  await rejects(
    () => pretrain(wider, rt),
    /does not match this run: it was saved with --width 0\.0625; this run has --width 0\.125/,
  );
  assert.ok(Buffer.compare(readFileSync(path), good) === 0, 'checkpoint untouched');
});

const files = (dir: string) =>
  ['config.json', 'log.jsonl', 'checkpoint.safetensors'].map((f) => readFileSync(join(dir, f)));
const sameFiles = (a: Buffer[], b: Buffer[]) => a.every((x, i) => Buffer.compare(x, b[i]) === 0);

t("a new run never replaces another run's files before its own first checkpoint", async () => {
  const dir = join(root, 'whole');
  const before = files(dir);
  await rejects(
    () => pretrain(tiny(dir), runtime()),
    /--out .*whole holds another run \(checkpoint\.safetensors\); continue it with --resume .*, choose another --out, or replace it with --overwrite/,
  );
  // --overwrite, then a divergence before the first checkpoint: the old run is untouched.
  await rejects(
    () => pretrain(tiny(dir, { overwrite: true, lr: 1e30, checkpointEvery: 100 }), runtime()),
    /(loss became NaN|diverged).*; training stopped\. No checkpoint of this run was written yet \(the run that was in .*whole is untouched\)/,
  );
  assert.ok(sameFiles(files(dir), before), 'config.json, log.jsonl and the checkpoint are as they were');
  // A successful --overwrite replaces all three with its first checkpoint.
  const copy = join(root, 'overwritten');
  for (const [i, f] of ['config.json', 'log.jsonl', 'checkpoint.safetensors'].entries()) {
    mkdirSync(copy, { recursive: true });
    writeFileSync(join(copy, f), before[i]);
  }
  await pretrain(tiny(copy, { overwrite: true, seed: 5, epochs: 1 }), runtime());
  const after = files(copy);
  assert.ok(
    after.every((x, i) => Buffer.compare(x, before[i]) !== 0),
    'all three replaced',
  );
  assert.is(JSON.parse(after[0].toString()).seed, 5);
  assert.equal([...logLosses(copy).keys()], [1, 2]);
});

t("resume takes the checkpoint's own settings and refuses flags that contradict them", async () => {
  const dir = join(root, 'whole');
  const config = join(dir, 'config.json');
  const saved = readFileSync(config, 'utf8');
  try {
    // config.json is a copy for people: a broken one does not change the run.
    writeFileSync(config, JSON.stringify({ ...JSON.parse(saved), lr: null, method: 'mocov2' }));
    const o = resumeOptions(dir, { epochs: 3, workers: 1 });
    assert.equal([o.method, o.lr, o.epochs, o.workers, o.width], ['densecl', 0.3, 3, 1, 1 / 16]);
  } finally {
    writeFileSync(config, saved);
  }
  assert.throws(
    () => resumeOptions(dir, { method: 'mocov2', arch: 'resnet18', queueSize: 64 }),
    /--resume .*whole: --method mocov2 \(the run has densecl\), --queue-size 64 \(the run has 16\)\. A resumed run keeps the settings saved in its checkpoint; only --epochs, --data/,
  );
  assert.throws(() => resumeOptions(dir, { overwrite: true }), /give one of them/);
  // Given to pretrain() directly (the API), the checkpoint's settings are checked too...
  await rejects(
    () => pretrain({ ...resumeOptions(dir), method: 'mocov2' }, runtime()),
    /does not match this run: it was saved with --method densecl; this run has --method mocov2/,
  );
  // ...and a DenseCL state restored into a MoCo-v2 model names what it would drop.
  const trainer = new Trainer(runtime(), { ...(resumeOptions(dir) as unknown as TrainerOptions), method: 'mocov2' });
  try {
    assert.throws(
      () => trainer.loadState(readFileSync(join(dir, 'checkpoint.safetensors')), 'ckpt'),
      /ckpt does not match this model: it holds \d+ tensor\(s\) this model does not have \(.*(neck\.mlp2|queue2)/,
    );
  } finally {
    trainer.destroy();
  }
});

/** The checkpoint's bytes with its counters, metadata or one tensor changed. */
function altered(
  bytes: Uint8Array,
  change: {
    counters?: (c: Record<string, unknown>) => unknown;
    meta?: Record<string, string>;
    tensor?: string;
    to?: (t: SafeTensor) => SafeTensor | null;
  },
): Uint8Array {
  const file = decodeSafetensors(bytes);
  const meta = { ...file.metadata, ...change.meta };
  if (change.counters)
    meta.counters = JSON.stringify(change.counters(JSON.parse(meta.counters) as Record<string, unknown>));
  if (change.tensor) {
    const t = (change.to ?? withNaN)(file.tensors.get(change.tensor)!);
    if (t) file.tensors.set(change.tensor, t);
    else file.tensors.delete(change.tensor);
  }
  return encodeSafetensors(file.tensors, meta);
}

function withNaN(t: SafeTensor): SafeTensor {
  const data = Float32Array.from(t.data as Float32Array);
  data[3] = Number.NaN;
  return { ...t, data };
}

t('export and features refuse what does not match, and write nothing', async () => {
  const good = readFileSync(join(root, 'whole', 'checkpoint.safetensors'));
  const dir = join(root, 'export-checks');
  mkdirSync(dir, { recursive: true });
  const conv1 = 'encoder_q.backbone.conv1.weight';
  const cases: [Parameters<typeof altered>[1], RegExp][] = [
    // The same bytes read as integers: the size alone would pass.
    [
      {
        tensor: conv1,
        to: (t) => ({ ...t, dtype: 'I32', data: new Int32Array(Float32Array.from(t.data as Float32Array).buffer) }),
      },
      /'encoder_q\.backbone\.conv1\.weight' is I32\[4, 3, 3, 3\], the model needs F32\[4, 3, 3, 3\]/,
    ],
    [
      { tensor: conv1, to: (t) => ({ ...t, shape: [...t.shape].reverse() }) },
      /'encoder_q\.backbone\.conv1\.weight' is F32\[3, 3, 3, 4\], the model needs F32\[4, 3, 3, 3\]/,
    ],
    [
      { tensor: 'encoder_q.backbone.layer1.0.conv1.weight', to: () => null },
      /tensor 'encoder_q\.backbone\.layer1\.0\.conv1\.weight' is missing/,
    ],
    [
      { tensor: 'encoder_q.backbone.bn1.running_var' },
      /'encoder_q\.backbone\.bn1\.running_var' holds NaN or infinite values/,
    ],
  ];
  for (const [change, pattern] of cases) {
    writeFileSync(join(dir, 'checkpoint.safetensors'), altered(good, change));
    assert.throws(
      () => exportRun(dir, 'torchvision'),
      (e: Error) => pattern.test(e.message) && e.message.includes(join(dir, 'checkpoint.safetensors')),
      pattern.source,
    );
    assert.not.ok(existsSync(join(dir, 'backbone_torchvision.safetensors')), 'nothing written');
  }
  const backbone = join(root, 'whole', 'backbone_torchvision.safetensors');
  const saved = readFileSync(backbone);
  const o = { ...FEATURES_DEFAULTS, backbone, width: 1 / 16, smallStem: true };
  const input = join(dir, 'input.safetensors');
  saveSafetensors(input, { input: safeTensor(new Int32Array(2 * 3 * 16 * 16), [2, 3, 16, 16]) });
  await rejects(
    () => features({ ...o, input, out: join(dir, 'y.safetensors') }),
    /'input' is I32\[2, 3, 16, 16\], expected F32 images \[N, 3, H, W\]/,
  );
  saveSafetensors(input, { input: safeTensor(new Float32Array(2 * 3 * 16 * 16), [2, 3, 16, 16]) });
  await rejects(
    () => features({ ...o, input, out: backbone }),
    /--out .* is the --backbone file; choose another --out/,
  );
  await rejects(
    () => features({ ...o, input, out: join(root, 'whole', '.', 'backbone_torchvision.safetensors') }),
    /is the --backbone file/,
  );
  await rejects(() => features({ ...o, input, out: input }), /is the --input file/);
  assert.ok(Buffer.compare(readFileSync(backbone), saved) === 0, 'the backbone is untouched');
});

t('resume refuses bad metadata and non-finite weights with messages naming the field and the file', async () => {
  const dir = join(root, 'whole');
  const path = join(dir, 'checkpoint.safetensors');
  const good = readFileSync(path);
  const o = resumeOptions(dir);
  const trainer = new Trainer(runtime(), { ...(o as unknown as TrainerOptions), totalSteps: 4 });
  const refused = (bytes: Uint8Array, pattern: RegExp) =>
    assert.throws(
      () => trainer.loadState(bytes, path),
      (e: Error) => pattern.test(e.message) && e.message.includes(path),
      pattern.source,
    );
  try {
    const pointer =
      /metadata "queue_ptr" is .*, expected a whole number below the queue size 16 and a multiple of the batch 8/;
    for (const bad of ['abc', '99999', '-1', '3.5', '4', '16', ''])
      refused(altered(good, { meta: { queue_ptr: bad } }), pointer);
    refused(altered(good, { meta: { queue2_ptr: 'NaN' } }), /"queue2_ptr" is "NaN"/);
    refused(
      altered(good, { counters: (c) => ({ ...c, step: 1e9 }) }),
      /saved at step 1000000000, beyond this run's 4 steps; resume with more --epochs/,
    );
    refused(altered(good, { counters: (c) => ({ ...c, step: -2 }) }), /"step" -2, expected a whole number >= 0/);
    refused(
      altered(good, { counters: (c) => ({ ...c, rngState: [] }) }),
      /"rngState" \[\], expected 4 unsigned 32-bit words, not all zero/,
    );
    refused(altered(good, { counters: (c) => ({ ...c, rngState: [0, 0, 0, 0] }) }), /"rngState" \[0,0,0,0\]/);
    refused(
      altered(good, { counters: (c) => ({ ...c, sampler: { seed: 0, epoch: -3, position: 0 } }) }),
      /"sampler" .*, expected null or \{seed, epoch, position\}/,
    );
    refused(altered(good, { counters: () => null }), /run counters \(metadata "counters"\) are not a JSON object/);
    refused(
      altered(good, { tensor: 'encoder_q.backbone.conv1.weight' }),
      /'encoder_q\.backbone\.conv1\.weight' holds NaN or infinite values/,
    );
    assert.is(trainer.loadState(good, path).step, 4, 'the good checkpoint still loads');
  } finally {
    trainer.destroy();
  }
  // Through the program: a bad saved setting is named, the checkpoint untouched.
  try {
    writeFileSync(path, altered(good, { counters: (c) => ({ ...c, config: { ...(c.config as object), lr: null } }) }));
    assert.throws(
      () => resumeOptions(dir),
      /checkpoint\.safetensors: its saved setting "lr" is null, expected a number/,
    );
    writeFileSync(
      path,
      altered(good, { counters: (c) => ({ ...c, config: { ...(c.config as object), emaMomentum: 2 } }) }),
    );
    await rejects(() => pretrain(resumeOptions(dir), runtime()), /--ema-momentum must be in \[0, 1\), got 2/);
    writeFileSync(path, altered(good, { counters: (c) => ({ ...c, sampler: null, rngState: 'x' }) }));
    await rejects(
      () => pretrain(resumeOptions(dir), runtime()),
      /checkpoint\.safetensors: its run counters .* "rngState" "x"/,
    );
  } finally {
    writeFileSync(path, good);
  }
});

t('a loss that becomes NaN stops the run and keeps the last good checkpoint', async () => {
  const dir = join(root, 'nan');
  await pretrain(tiny(dir, { epochs: 1, checkpointEvery: 1, stopAfter: 1 }), runtime());
  const saved = readFileSync(join(dir, 'checkpoint.safetensors'));
  // The divergence is forced with a huge learning rate. The loss may stay finite (ReLU squashes
  // NaN activations), so the weights themselves are checked.
  await rejects(
    () => pretrain({ ...resumeOptions(dir, { epochs: 8, checkpointEvery: 100 }), lr: 1e30 }, runtime()),
    /(the loss became NaN at step \d+|the model diverged by step \d+ \(.*NaN.*\)); training stopped\. The last good checkpoint \(step 1\) is intact/,
  );
  assert.ok(
    Buffer.compare(readFileSync(join(dir, 'checkpoint.safetensors')), saved) === 0,
    'the step-1 checkpoint is untouched',
  );
});

t('a NaN in a queue makes the contrastive loss NaN, which the run stops on', async () => {
  // A checkpoint holding NaN is refused at load, so the NaN is written into the live queue.
  const o = tiny(join(root, 'nan-queue'));
  const trainer = new Trainer(runtime(), o as unknown as TrainerOptions);
  try {
    const queue = new Float32Array(o.queueSize * o.dim).fill(1 / Math.sqrt(o.dim));
    queue[5] = Number.NaN;
    trainer.model.queues.write('queue2', queue);
    const views = () => Float32Array.from({ length: o.batchSize * 3 * o.imgSize * o.imgSize }, (_, i) => Math.sin(i));
    const stats = await trainer.trainStep(views(), views());
    assert.ok(
      Number.isNaN(stats.lossDense) && Number.isNaN(stats.loss),
      `dense loss ${stats.lossDense}, loss ${stats.loss}`,
    );
  } finally {
    trainer.destroy();
  }
  // pretrain() stops on a non-finite loss: see 'a loss that becomes NaN stops the run' above.
});

t.run();
