// The `densecl` command-line program.
import { parseArgs, resolveOptions, type Flags } from './args.js';
import { mlpDemo } from './commands/mlp-demo.js';
import { pretrain, resumeOptions, PRETRAIN_DEFAULTS } from './pretrain.js';
import { exportRun } from './export-run.js';
import { profileModel, PROFILE_DEFAULTS } from './profile-run.js';
import { features, FEATURES_DEFAULTS } from './commands/features.js';
import type { ExportFormat } from './export.js';

const USAGE = `usage: densecl <command> [options]

commands:
  pretrain      DenseCL / MoCo-v2 pre-training
                  --method densecl|mocov2 --data DIR|builtin --arch resnet18|resnet34|resnet50
                  --width W --small-stem --epochs N --batch-size B --img-size S --queue-size K
                  --lr (per 256 images) --bn-groups G --seed N --workers N --checkpoint-every N
                  --out RUNDIR --config FILE.json --resume RUNDIR [--epochs N to extend]
                  --profile N   time N steps per kernel; writes profile.md and trace.json
  profile       profile training steps of a model on synthetic data
                  --method --arch --width --small-stem --batch-size --img-size --queue-size --steps --out
  export RUNDIR --format torchvision|detectron2
                write the pre-trained backbone for PyTorch users (safetensors)
  features      last-stage features of a backbone file on an input (for checking exports)
                  --backbone FILE --arch A --width W --small-stem --input X.safetensors --out Y.safetensors
  mlp-demo      train a tiny MLP on a toy regression (engine smoke test)
  help          this text
`;

async function runPretrain(flags: Flags): Promise<number> {
  let o = resolveOptions(PRETRAIN_DEFAULTS, flags, 'pretrain');
  if (typeof flags.resume === 'string') {
    // A resumed run keeps its saved options; only --epochs may extend it.
    o = resumeOptions(flags.resume, flags.epochs !== undefined ? { epochs: o.epochs } : {});
  }
  const r = await pretrain(o);
  const first = r.losses[0];
  const last = r.losses[r.losses.length - 1];
  console.log(`\ndone: ${r.steps} steps, loss ${first?.toFixed(4) ?? '-'} -> ${last?.toFixed(4) ?? '-'}`);
  console.log(`checkpoint: ${r.checkpoint}`);
  console.log(`backbone (torchvision names): ${r.backbone}`);
  console.log(`log: ${r.runDir}/log.jsonl`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const command = positional[0] ?? 'help';
  switch (command) {
    case 'pretrain':
      return runPretrain(flags);
    case 'export': {
      const runDir = positional[1];
      if (!runDir) throw new Error('export: give the run folder, e.g. densecl export runs/densecl --format torchvision');
      const o = resolveOptions({ format: 'torchvision' }, flags, 'export');
      console.log(`wrote ${exportRun(runDir, o.format as ExportFormat)}`);
      return 0;
    }
    case 'profile':
      console.log(await profileModel(resolveOptions(PROFILE_DEFAULTS, flags, 'profile')));
      return 0;
    case 'features':
      console.log(`wrote ${await features(resolveOptions(FEATURES_DEFAULTS, flags, 'features'))}`);
      return 0;
    case 'mlp-demo': {
      const o = resolveOptions({ steps: 300, hidden: 64, batch: 256, lr: 0.05, seed: 0 }, flags, command);
      const r = await mlpDemo(o);
      return r.last < r.first ? 0 : 1;
    }
    case 'help':
      console.log(USAGE);
      return 0;
    default:
      console.error(`densecl: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`\ndensecl: ${e.message}`);
    process.exit(1);
  },
);
