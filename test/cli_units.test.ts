// CPU-side pieces of the program: flag parsing, the detectron2 renaming, progress formatting.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { flagName, parseArgs, refuseStrayArguments, resolveOptions } from '../train/args.js';
import { detectron2Name } from '../train/export.js';
import { formatDuration, formatFigures } from '../train/progress.js';
import { cosineLr, scaledLr } from '../train/optim/schedule.js';
import {
  checkOptionRanges,
  describeOptions,
  presetHelp,
  presetOptions,
  pretrainOptions,
  pretrainUsage,
  trainerOptions,
  PRETRAIN_PRESETS,
} from '../train/presets.js';
import { TRAINER_DEFAULTS } from '../train/trainer.js';
import { profileOptions } from '../cli/profile-run.js';
import { mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { truncateLog } from '../train/run-folder.js';
import { makeFolder, removeStaleTemporaries } from '../train/io.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const t = suite('cli units');

t('flags: kebab-case, =, bare booleans, typed by the defaults', () => {
  const { positional, flags } = parseArgs(['pretrain', '--batch-size', '16', '--small-stem', '--method=mocov2']);
  assert.equal(positional, ['pretrain']);
  const o = resolveOptions({ batchSize: 32, smallStem: false, method: 'densecl' }, flags, 'pretrain');
  assert.equal(o, { batchSize: 16, smallStem: true, method: 'mocov2' });
});

t('flags: unknown keys and non-numbers are clear errors', () => {
  assert.throws(
    () => resolveOptions({ batchSize: 32 }, parseArgs(['--batch-sise', '3']).flags, 'pretrain'),
    /unknown option --batch-sise; known: --batch-size/,
  );
  const opts = { batchSize: 32, smallStem: false, out: 'runs' };
  const refused = (argv: string[], pattern: RegExp) =>
    assert.throws(() => resolveOptions(opts, parseArgs(argv).flags, 'pretrain'), pattern, argv.join(' '));
  // Errors name the flag as it is typed.
  refused(['--batch-size', 'big'], /^pretrain: --batch-size needs a number, got 'big'$/);
  refused(['--batch-size', '0x8'], /--batch-size needs a number, got '0x8'/);
  refused(['--batch-size', 'Infinity'], /--batch-size needs a number/);
  refused(['--batch-size='], /^pretrain: --batch-size was given an empty value$/);
  refused(['--out='], /--out was given an empty value/);
  refused(['--out'], /--out needs a value/);
  refused(['--small-stem=maybe'], /--small-stem is true or false/);
  const { positional } = parseArgs(['pretrain', 'batch-size', '64', '--epochs', '3']);
  assert.throws(
    () => refuseStrayArguments('pretrain', positional.slice(1), 0),
    /^pretrain: unexpected arguments 'batch-size' '64'; options are given as --name value/,
  );
  refuseStrayArguments('export', ['runs/x'], 1);
  assert.throws(() => refuseStrayArguments('export', ['runs/x', 'y'], 1), /export: unexpected argument 'y'/);
  assert.equal(resolveOptions(opts, parseArgs(['--batch-size', '1e2', '--small-stem', 'false']).flags, 'x'), {
    batchSize: 100,
    smallStem: false,
    out: 'runs',
  });
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
  const line = formatFigures({
    step: 5,
    totalSteps: 10,
    epoch: 0,
    epochs: 2,
    imagesPerSec: 12.5,
    loss: 8.1,
    lossGlobal: 8,
    lossDense: 8.2,
    lr: 0.001,
    etaSec: 75,
  });
  for (const part of [
    'step 5/10',
    'ep 1/2',
    '12.5 img/s',
    'loss 8.1000',
    'global 8.0000',
    'dense 8.2000',
    'lr 1.00e-3',
    'ETA 1:15',
  ]) {
    assert.ok(line.includes(part), `'${part}' missing from: ${line}`);
  }
  assert.is(formatDuration(3725), '1:02:05');
});

const pretrainFlags = (...argv: string[]) => pretrainOptions(parseArgs(argv).flags);

t('presets: no --preset is the paper setting, and --arch alone is that arch as torchvision builds it', () => {
  const o = pretrainFlags('--arch', 'resnet50', '--img-size', '224');
  assert.equal(o, { ...PRETRAIN_PRESETS.paper.options });
  assert.is(o.preset, 'paper');
  for (const arch of ['resnet18', 'resnet34']) {
    const r = pretrainFlags('--arch', arch);
    assert.equal(
      [r.arch, r.width, r.smallStem, r.imgSize, r.batchSize, r.queueSize, r.lr],
      [arch, 1, false, 224, 256, 65536, 0.03],
    );
  }
});

t("presets: --preset tiny is exactly the built-in run's settings", () => {
  // The defaults of `densecl pretrain` before presets existed (npm run train).
  const before = {
    method: 'densecl',
    data: 'builtin',
    arch: 'resnet18',
    width: 0.25,
    smallStem: true,
    epochs: 2,
    batchSize: 32,
    imgSize: 32,
    queueSize: 256,
    dim: 128,
    lr: 0.3,
    momentum: 0.9,
    weightDecay: 1e-4,
    tau: 0.2,
    emaMomentum: 0.999,
    lambda: 0.5,
    startIters: 0,
    bnGroups: 8,
    precision: 'f32',
    seed: 0,
    builtinImages: 2048,
    workers: 2,
    checkpointEvery: 100,
    out: 'runs/densecl',
    resume: '',
    profile: 0,
    stopAfter: 0,
  };
  assert.equal(pretrainFlags('--preset', 'tiny'), { preset: 'tiny', ...before, overwrite: false, initBackbone: '' });
  assert.is(pretrainFlags('--preset', 'tiny', '--init-backbone', 'r18.safetensors').initBackbone, 'r18.safetensors');
  assert.equal(pretrainFlags('--preset=tiny', '--epochs', '1').epochs, 1);
});

t("presets: width and stem follow another arch than the preset's unless given", () => {
  const r50 = pretrainFlags('--preset', 'tiny', '--arch', 'resnet50');
  assert.equal([r50.width, r50.smallStem, r50.imgSize], [1, false, 32]);
  const given = pretrainFlags('--preset', 'tiny', '--arch', 'resnet50', '--width', '0.5', '--small-stem');
  assert.equal([given.width, given.smallStem], [0.5, true]);
  const same = pretrainFlags('--preset', 'tiny', '--arch', 'resnet18');
  assert.equal([same.width, same.smallStem], [0.25, true]);
});

t('presets: an unknown one is a clear error listing them; --preset needs a name', () => {
  assert.throws(
    () => pretrainFlags('--preset', 'imagenet'),
    /unknown preset 'imagenet'; the presets are paper \(.*\), paper-coco \(.*\), tiny \(.*\)/,
  );
  assert.throws(() => pretrainFlags('--preset'), /--preset needs a name: paper, paper-coco, tiny/);
});

t('presets: flags win over the config file, which wins over the preset it may name', () => {
  const config = join(mkdtempSync(join(tmpdir(), 'densecl-presets-')), 'run.json');
  writeFileSync(config, JSON.stringify({ preset: 'tiny', 'batch-size': 64, queueSize: 512 }));
  const o = pretrainFlags('--config', config, '--batch-size', '128');
  assert.equal([o.preset, o.width, o.batchSize, o.queueSize], ['tiny', 0.25, 128, 512]);
  assert.is(pretrainFlags('--config', config, '--preset', 'paper-coco').epochs, 800);
  assert.is(pretrainFlags('--config', config, '--preset', 'paper-coco').queueSize, 512);
});

t('presets: the first progress line names the preset and every setting that differs', () => {
  assert.is(
    describeOptions(pretrainFlags('--arch', 'resnet18', '--batch-size', '64')),
    'preset paper; differs: arch=resnet18, batch-size=64 (lr scaled to 0.0075)',
  );
  assert.is(describeOptions(pretrainFlags('--preset', 'tiny', '--out', 'elsewhere')), 'preset tiny; nothing differs');
  assert.is(
    describeOptions(pretrainFlags('--preset', 'tiny', '--arch', 'resnet50', '--lr', '0.03', '--seed', '3')),
    'preset tiny; differs: arch=resnet50, width=1, small-stem=false, lr=0.03 per 256 images (0.00375 at batch 32), seed=3',
  );
});

t('presets: densecl help says what each sets', () => {
  const help = presetHelp('  ');
  for (const part of [
    'paper: ',
    'paper-coco: ',
    'tiny: ',
    'resnet50 width 1 7x7 stem, 224 px, 200 epochs, batch 256, lr 0.03 per 256 images',
    'lr 0.3 per 256',
    'queue 65536',
    'resnet18 width 0.25 small stem, 32 px',
  ]) {
    assert.ok(help.includes(part), `'${part}' missing from:\n${help}`);
  }
});

t('pretrain: each setting is checked against its range, naming the flag as it is typed', () => {
  const cases: [string[], RegExp][] = [
    [['--epochs', '-1'], /^--epochs must be a whole number >= 1, got -1$/],
    [['--lr', '-1'], /^--lr must be a finite number above 0, got -1$/],
    [['--ema-momentum', '2'], /^--ema-momentum must be in \[0, 1\), got 2$/],
    [['--checkpoint-every', '0'], /^--checkpoint-every must be a whole number >= 1, got 0$/],
    [['--stop-after', '-3'], /^--stop-after must be a whole number >= 0, got -3$/],
    [['--batch-size', '2.5'], /^--batch-size must be a whole number >= 2, got 2.5$/],
    [['--out='], /--out was given an empty value/],
  ];
  for (const [argv, pattern] of cases)
    assert.throws(() => checkOptionRanges(pretrainFlags('--preset', 'tiny', ...argv)), pattern, argv.join(' '));
  checkOptionRanges(pretrainFlags('--preset', 'tiny'));
  checkOptionRanges(pretrainFlags());
});

t('folders and files the program cannot use are clear errors, never a hang', () => {
  // Node's recursive mkdir loops forever on /proc/x; a config read from /dev/zero never ends.
  assert.throws(() => makeFolder('/proc/densecl-x/run'), /^cannot create the folder \/proc\/densecl-x\/run: .*ENOENT/);
  assert.throws(
    () => resolveOptions({ lr: 1 }, { config: '/dev/zero' }, 'pretrain'),
    /^pretrain: cannot read config file \/dev\/zero: not a regular file$/,
  );
  const big = join(mkdtempSync(join(tmpdir(), 'densecl-config-')), 'big.json');
  writeFileSync(big, ' '.repeat((1 << 20) + 1));
  assert.throws(
    () => resolveOptions({ lr: 1 }, { config: big }, 'pretrain'),
    /1048577 bytes, more than a config file's limit of 1048576/,
  );
  const nested = join(mkdtempSync(join(tmpdir(), 'densecl-mkdir-')), 'a', 'b');
  makeFolder(nested);
  makeFolder(nested);
  assert.throws(() => makeFolder(join(big, 'x')), /big\.json is not a folder/);
});

t("stale temporary files: only ours, only a killed writer's, only once old enough", () => {
  const dir = mkdtempSync(join(tmpdir(), 'densecl-tmp-'));
  const dead = 4194303; // above Linux's default pid_max range in containers; checked below
  assert.throws(() => process.kill(dead, 0), 'the test needs a pid that is not running');
  const files = {
    killed: `.checkpoint.safetensors.${dead}.m1abc.tmp`,
    killedFresh: `.log.jsonl.${dead}.m1abd.tmp`,
    running: `.config.json.${process.pid}.m1abe.tmp`,
    runningAncient: `.config.json.${process.pid}.m1abf.tmp`,
    notOurs: `.notes.txt.${dead}.m1abg.tmp`,
    other: 'checkpoint.safetensors',
  };
  for (const f of Object.values(files)) writeFileSync(join(dir, f), 'x');
  const now = Date.now();
  const age = (f: string, sec: number) =>
    utimesSync(join(dir, f), (now - sec * 1000) / 1000, (now - sec * 1000) / 1000);
  for (const f of [files.killed, files.running, files.notOurs, files.other]) age(f, 120);
  age(files.runningAncient, 2 * 86400);
  const removed = removeStaleTemporaries(dir, ['checkpoint.safetensors', 'config.json', 'log.jsonl'], now);
  assert.equal(removed.sort(), [files.killed, files.runningAncient].sort());
  assert.equal(readdirSync(dir).sort(), [files.killedFresh, files.running, files.notOurs, files.other].sort());
});

t(
  'resume: a torn last log line is dropped with a warning naming the file; other bad lines are errors naming it',
  () => {
    const log = join(mkdtempSync(join(tmpdir(), 'densecl-log-')), 'log.jsonl');
    const line = (step: number) => JSON.stringify({ step, loss: 1 }) + '\n';
    writeFileSync(log, line(1) + line(2) + line(3) + '{"step":4,"loss":1.2'); // the disk filled mid-write
    const warnings: string[] = [];
    truncateLog(log, 2, (m) => warnings.push(m));
    assert.is(readFileSync(log, 'utf8'), line(1) + line(2));
    assert.is(warnings.length, 1);
    assert.match(warnings[0], new RegExp(`^${log.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: dropped its torn last line`));
    writeFileSync(log, line(1) + '{"step":2,' + '\n' + line(3));
    assert.throws(
      () => truncateLog(log, 3, () => {}),
      (e: Error) => e.message.startsWith(`${log}: line 2 is not JSON`),
    );
    writeFileSync(log, line(1) + '[1]\n');
    assert.throws(() => truncateLog(log, 3, () => {}), /line 2 has no step number/);
  },
);

t('option schema: densecl help names every pretrain option with its flag', () => {
  const usage = pretrainUsage('  ');
  const missing = Object.keys(PRETRAIN_PRESETS.paper.options)
    .map(flagName)
    .filter((f) => !new RegExp(`${f}(\\s|$)`, 'm').test(usage));
  assert.equal(missing, [], `not in the usage text: ${missing.join(' ')}\n${usage}`);
  assert.ok(usage.includes('--batch-size B') && usage.includes('--small-stem'), usage);
});

t("trainerOptions: a preset's step settings are exactly the Trainer's options", () => {
  const o = trainerOptions(presetOptions('paper'), 500);
  assert.equal(Object.keys(o).sort(), Object.keys(TRAINER_DEFAULTS).sort());
  assert.equal(
    [o.arch, o.batchSize, o.queueSize, o.emaMomentum, o.lr, o.totalSteps],
    ['resnet50', 256, 65536, 0.999, 0.03, 500],
  );
});

t('densecl profile: the profile preset by default, pretrain flags for the step, its own --steps and --out', () => {
  const p = profileOptions(parseArgs([]).flags);
  assert.equal(
    [
      p.preset,
      p.trainer.arch,
      p.trainer.width,
      p.trainer.imgSize,
      p.trainer.batchSize,
      p.trainer.queueSize,
      p.steps,
      p.out,
    ],
    ['profile', 'resnet18', 1, 224, 8, 4096, 2, 'runs/profile'],
  );
  const tiny = profileOptions(parseArgs(['--preset', 'tiny', '--batch-size', '16', '--steps', '3']).flags);
  assert.equal([tiny.trainer.width, tiny.trainer.smallStem, tiny.trainer.batchSize, tiny.steps], [0.25, true, 16, 3]);
  assert.throws(
    () => profileOptions(parseArgs(['--epochs', '3']).flags),
    /^profile: unknown option --epochs; known: --preset .*--steps --out$/,
  );
  assert.throws(
    () => profileOptions(parseArgs(['--steps', '0']).flags),
    /^--steps must be a whole number >= 1, got 0$/,
  );
  assert.throws(
    () => profileOptions(parseArgs(['--batch-size', '12']).flags),
    /^--batch-size 12 is not divisible by --bn-groups 8/,
  );
  assert.throws(
    () => profileOptions(parseArgs(['--img-size', '16']).flags),
    /^--img-size 16 is smaller than the network's stride 32; use at least 32 or --small-stem$/,
  );
});

t.run();
