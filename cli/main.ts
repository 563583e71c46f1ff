// The `densecl` command-line program.
import { parseArgs, refuseStrayArguments, resolveOptions, type Flags } from '../train/args.js';
import { mlpDemo } from './mlp-demo.js';
import { openJob, pretrainInJob } from './pretrain.js';
import { resumeOptions } from '../train/resume.js';
import { pretrainOptions, givenPretrainOptions, presetHelp, pretrainUsage } from '../train/presets.js';
import { exportRun } from './export-run.js';
import { profileModel, profileOptions } from './profile-run.js';
import { features, FEATURES_DEFAULTS } from './features.js';
import type { ExportFormat } from '../train/export.js';
import { evalLinear, evalSeg, EVAL_LINEAR_DEFAULTS, EVAL_SEG_DEFAULTS } from './eval.js';
import { replicate, replicateOptions, REPLICATE_DEFAULTS } from './replicate.js';

const USAGE = `usage: densecl <command> [options]

commands:
  pretrain      DenseCL / MoCo-v2 pre-training
                  Flags win over the config file, which wins over the preset; --arch alone gives that arch's
                  standard width 1 and 7x7 stem. The first progress line names the preset and what differs.
${presetHelp('                    ')}
${pretrainUsage('                  ')}
                  --config FILE.json  settings as a JSON object of the same (camelCase) keys; flags win over it
                  --world-size N  require a data-parallel job of N processes (mpirun -np N node dist/cli.mjs pretrain ...);
                                  the batch and --bn-groups are the whole job's; see the README (MPI)
  profile       profile training steps of the Trainer on synthetic data
                  --preset (default profile: ResNet-18, 224 px, batch 8, queue 4096; the rest as paper) and pretrain's
                  flags for the step (--method --arch --width --small-stem --batch-size --img-size --queue-size --dim
                  --lr --momentum --weight-decay --tau --lambda --ema-momentum --start-iters --bn-groups --seed)
                  --steps N (timed steps, default 2) --out DIR (default runs/profile)
  export RUNDIR --format torchvision|detectron2
                write the pre-trained backbone for PyTorch users (safetensors)
  features      last-stage features of a backbone file on an input (for checking exports)
                  --backbone FILE --arch A --width W --small-stem --input X.safetensors --out Y.safetensors
  eval linear   linear evaluation of a frozen backbone file: top-1 accuracy on held-out images
                  --backbone FILE --arch A --width W --small-stem --data builtin|fashion-mnist|DIR (a subfolder per class)
                  --img-size S --train-images N --val-images N --epochs --lr --batch-size --fashion-mnist-dir DIR --out DIR
  eval seg      segmentation evaluation: frozen backbone + 1x1 conv + bilinear upsampling; IoU per class, mIoU,
                and segmentation.png (images, true and predicted maps)
                  --backbone FILE --arch --width --small-stem --data builtin|DIR (PASCAL VOC layout) --num-classes K
                  --img-size S --train-images N --val-images N --epochs --lr --batch-size --picture-images N --out DIR
  replicate     random init vs MoCo-v2 vs DenseCL pre-trained with the same budget on the built-in scenes,
                both evaluations, several seeds; results.md (table), losses.png (npm run replicate)
                  --preset cpu|gpu (gpu: a longer setting) --seeds N --width --img-size --epochs --batch-size
                  --queue-size --builtin-images --lr --eval-train-images --eval-val-images --out DIR
  mlp-demo      train a tiny MLP on a toy regression (engine smoke test)
  help          this text
`;

async function runPretrain(allFlags: Flags): Promise<number> {
  // The job's size is a property of the launch, not of the run: kept out of config.json, so a
  // run may resume with another number of processes.
  const { worldSize, ...flags } = allFlags;
  const comm = await openJob(worldSize);
  const r = await pretrainInJob(comm, () => {
    // A resumed run keeps the settings saved in its checkpoint; flags may only extend or adjust it.
    return typeof flags.resume === 'string'
      ? resumeOptions(flags.resume, givenPretrainOptions(flags))
      : pretrainOptions(flags);
  });
  if (comm.rank !== 0) return 0;
  const o = r.options;
  // The loss first rises while the queue fills with real keys; compare from the step it is full.
  const full = Math.min(r.losses.length - 1, Math.max(0, o.queueSize / o.batchSize - 1));
  const at = (i: number) => r.losses[i]?.toFixed(4) ?? '-';
  console.log(
    `\ndone: ${r.steps} steps; loss once the queue was full (step ${full + 1}) ${at(full)} -> last step ${at(r.losses.length - 1)}`,
  );
  console.log(`checkpoint: ${r.checkpoint}`);
  console.log(`backbone (torchvision names): ${r.backbone}`);
  console.log(`log: ${r.runDir}/log.jsonl`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const command = positional[0] ?? 'help';
  refuseStrayArguments(command, positional.slice(1), command === 'export' || command === 'eval' ? 1 : 0);
  switch (command) {
    case 'pretrain':
      return runPretrain(flags);
    case 'export': {
      const runDir = positional[1];
      if (!runDir)
        throw new Error('export: give the run folder, e.g. densecl export runs/densecl --format torchvision');
      const o = resolveOptions({ format: 'torchvision' }, flags, 'export');
      console.log(`wrote ${exportRun(runDir, o.format as ExportFormat)}`);
      return 0;
    }
    case 'profile':
      console.log(await profileModel(profileOptions(flags)));
      return 0;
    case 'features':
      console.log(`wrote ${await features(resolveOptions(FEATURES_DEFAULTS, flags, 'features'))}`);
      return 0;
    case 'eval': {
      const which = positional[1];
      if (which === 'linear') {
        const r = await evalLinear(resolveOptions(EVAL_LINEAR_DEFAULTS, flags, 'eval linear'));
        console.log(
          `top-1 accuracy (held out): ${(100 * r.top1).toFixed(2)}% (train ${(100 * r.trainTop1).toFixed(2)}%)\nresults: ${r.out}/results.md`,
        );
        return 0;
      }
      if (which === 'seg') {
        const r = await evalSeg(resolveOptions(EVAL_SEG_DEFAULTS, flags, 'eval seg'));
        const perClass = r.classNames
          .map((c, k) => `  ${c}: ${r.iou[k] === null ? '-' : (100 * r.iou[k]!).toFixed(2)}`)
          .join('\n');
        console.log(
          `IoU per class (%):\n${perClass}\nmIoU (validation): ${(100 * r.mIoU).toFixed(2)}%, pixel accuracy ${(100 * r.pixelAccuracy).toFixed(2)}%\npicture: ${r.picture}\nresults: ${r.out}/results.md`,
        );
        return 0;
      }
      throw new Error(
        `eval: say which evaluation, 'densecl eval linear ...' or 'densecl eval seg ...' (got '${which ?? ''}')`,
      );
    }
    case 'replicate': {
      const o = replicateOptions(resolveOptions(REPLICATE_DEFAULTS, flags, 'replicate'), new Set(Object.keys(flags)));
      const r = await replicate(o);
      console.log(`${r.table}\n\nresults: ${r.out}/results.md, loss curves: ${r.out}/losses.png`);
      return 0;
    }
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
