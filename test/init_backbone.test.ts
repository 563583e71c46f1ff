// `pretrain --init-backbone`: a run's torchvision export starts a new run's query and key
// backbones exactly (heads as a fresh run's), and every unfit file is refused, naming the
// tensors, before the run folder exists.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu, rejects, tinyPretrain } from './helpers.js';
import { runtime } from '../engine/index.js';
import { pretrain, resumeOptions, type PretrainOptions } from '../cli/pretrain.js';
import { loadSafetensors, saveSafetensors } from '../train/io.js';
import { safeTensor, type SafeTensor } from '../engine/safetensors.js';
import { exportRun } from '../cli/export-run.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import { readInitBackbone, applyInitBackbone } from '../train/init-backbone.js';

const t = suite('init backbone');
const root = mkdtempSync(join(tmpdir(), 'densecl-init-'));

const tiny = (out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions =>
  tinyPretrain(out, { epochs: 1, ...extra });

let exported = '';

t.before(async () => {
  await gpu();
  await pretrain(tiny(join(root, 'source')), runtime());
  exported = exportRun(join(root, 'source'), 'torchvision');
});

t("an exported backbone starts both encoders exactly; heads are a fresh run's", async () => {
  const o = tiny(join(root, 'unused'), { seed: 5 });
  const file = loadSafetensors(exported);
  const init = readInitBackbone(exported, o);
  assert.ok(init.ignored.includes('bn1.num_batches_tracked'), 'num_batches_tracked ignored');
  const trainer = new Trainer(runtime(), o as unknown as TrainerOptions);
  const fresh = new Trainer(runtime(), o as unknown as TrainerOptions);
  applyInitBackbone(init, [trainer.model.query, trainer.model.key]);
  for (const enc of ['query', 'key'] as const) {
    for (const kind of ['params', 'buffers'] as const) {
      const got = await trainer.model[enc][kind].readAll();
      const base = await fresh.model[enc][kind].readAll();
      for (const [name, v] of got) {
        if (name.startsWith('_')) continue;
        const want = name.startsWith('backbone.')
          ? (file.tensors.get(name.slice(9))!.data as Float32Array)
          : base.get(name)!;
        assert.equal(Array.from(v), Array.from(want), `${enc} ${name}`);
      }
    }
  }
  trainer.destroy();
  fresh.destroy();
  // A run started from it records where it started.
  const out = join(root, 'started');
  await pretrain(tiny(out, { initBackbone: exported }), runtime());
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(config.initBackbone, exported);
  assert.match(String(config.initBackboneSha256), /^[0-9a-f]{64}$/);
  const counters = JSON.parse(loadSafetensors(join(out, 'checkpoint.safetensors')).metadata.counters!) as {
    config: Record<string, unknown>;
  };
  assert.equal(
    [counters.config.initBackbone, counters.config.initBackboneSha256, counters.config.initBackboneBytes],
    [exported, config.initBackboneSha256, readFileSync(exported).length],
  );
  await rejects(
    () => pretrain({ ...resumeOptions(out, { epochs: 2 }), initBackbone: join(root, 'other.safetensors') }, runtime()),
    /--init-backbone .* with --resume .*: the checkpoint already holds/,
  );
  // Resumed, the run keeps where it started.
  await pretrain(resumeOptions(out, { epochs: 2 }), runtime());
  const resumed = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal([resumed.initBackbone, resumed.initBackboneSha256], [exported, config.initBackboneSha256]);
  assert.throws(
    () => resumeOptions(out, { initBackbone: exported }),
    /--init-backbone .* with --resume .*: the checkpoint already holds the run's weights/,
  );
});

t('an unfit file is refused, naming the tensors, before the run folder exists', async () => {
  const good = loadSafetensors(exported).tensors;
  const variant = (name: string, change: (m: Map<string, SafeTensor>) => void): string => {
    const m = new Map(good);
    change(m);
    const path = join(root, `${name}.safetensors`);
    saveSafetensors(path, m, {});
    return path;
  };
  const cases: [string, Partial<PretrainOptions>, RegExp][] = [
    [
      variant('missing', (m) => m.delete('layer1.0.conv1.weight')),
      {},
      /missing tensor\(s\) 'layer1\.0\.conv1\.weight'/,
    ],
    [
      variant('extra', (m) => m.set('neck.weight', safeTensor(new Float32Array(2), [2]))),
      {},
      /unexpected tensor\(s\) 'neck\.weight'/,
    ],
    [
      variant('shape', (m) => m.set('conv1.weight', safeTensor(new Float32Array(2), [2]))),
      {},
      /wrong shape or dtype: 'conv1\.weight: F32\[2\], needs F32\[/,
    ],
    [
      variant('nan', (m) => {
        const v = (m.get('bn1.weight')!.data as Float32Array).slice();
        v[0] = NaN;
        m.set('bn1.weight', safeTensor(v, [v.length]));
      }),
      {},
      /NaN or infinite values in 'bn1\.weight'/,
    ],
    [
      variant('dtype', (m) => m.set('bn1.running_mean', safeTensor(new BigInt64Array(4), [4]))),
      {},
      /wrong shape or dtype: 'bn1\.running_mean: I64\[4\], needs F32\[4\]'/,
    ],
    [join(root, 'absent.safetensors'), {}, /--init-backbone .*absent\.safetensors: no such file/],
    [
      exported,
      { arch: 'resnet34' },
      /does not fit the resnet34 .*missing tensor\(s\) 'layer1\.2\.conv1\.weight'.*\(\d+ in all\)/,
    ],
    [
      variant('fc', (m) => m.set('fc.weight', safeTensor(new Float32Array(2), [2]))),
      { width: 1 / 8 },
      /wrong shape or dtype/,
    ],
  ];
  for (const [i, [file, extra, pattern]] of cases.entries()) {
    const out = join(root, `bad-${i}`);
    await rejects(() => pretrain(tiny(out, { initBackbone: file, ...extra }), runtime()), pattern);
    assert.ok(!existsSync(out), `${out} not created`);
  }
  // fc.* alone is ignored.
  assert.equal(
    readInitBackbone(
      variant('fc-only', (m) => m.set('fc.bias', safeTensor(new Float32Array(3), [3]))),
      tiny('x'),
    ).ignored.filter((n) => n.startsWith('fc')),
    ['fc.bias'],
  );
});

t.run();
