// scripts/import-cycles.mjs: a circle of imports, type-only ones included, fails the check with
// the circle named; this repository has none.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/import-cycles.mjs', import.meta.url));
const t = suite('import cycles');

const check = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });

t('a type-only import that closes a circle fails, naming the circle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cycles-'));
  try {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'a.ts'), "import { b } from './sub/b.js';\nexport const a = () => b;\n");
    writeFileSync(join(dir, 'sub', 'b.ts'), "import type { C } from '../c.js';\nexport const b = 1 as unknown as C;\n");
    writeFileSync(join(dir, 'c.ts'), "import {\n  a,\n} from './a.js';\nexport type C = typeof a;\n");
    writeFileSync(join(dir, 'd.ts'), "import { a } from './a.js';\nexport const d = a;\n");
    const r = check(`--root=${dir}`);
    assert.is(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /import circle: a\.ts -> sub\/b\.ts -> c\.ts -> a\.ts/);
    assert.not.match(r.stdout, /d\.ts/);
    writeFileSync(join(dir, 'c.ts'), 'export type C = number;\n');
    const fixed = check(`--root=${dir}`);
    assert.is(fixed.status, 0, fixed.stdout + fixed.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t('this repository has no import circles', () => {
  const r = check();
  assert.is(r.status, 0, r.stdout + r.stderr);
});

t.run();
