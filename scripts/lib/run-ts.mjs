// Bundles one TypeScript script of scripts/ with esbuild (as scripts/build.mjs does) into .build/
// and runs it with this process's arguments, exiting with its status.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `name`: the script's base name (scripts/<name>.ts). */
export async function runTypeScript(name) {
  const outfile = `${root}.build/${name}.mjs`;
  await build({
    entryPoints: [`${root}scripts/${name}.ts`],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    loader: { '.wgsl': 'text' },
    mainFields: ['module', 'main'],
    external: ['webgpu', 'sharp'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  const r = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
