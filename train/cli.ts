// The `densecl` command-line program.
import { parseArgs, resolveOptions } from './args.js';
import { mlpDemo } from './commands/mlp-demo.js';

const USAGE = `usage: densecl <command> [options]

commands:
  mlp-demo      train a tiny MLP on a toy regression (engine smoke test)
  help          this text
`;

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const command = positional[0] ?? 'help';
  switch (command) {
    case 'mlp-demo': {
      const o = resolveOptions({ steps: 300, hidden: 64, batch: 256, lr: 0.05, seed: 0 }, flags, command);
      const r = await mlpDemo(o);
      return r.last < r.first ? 0 : 1;
    }
    case 'help':
    case '--help':
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
    console.error(`densecl: ${e.message}`);
    process.exit(1);
  },
);
