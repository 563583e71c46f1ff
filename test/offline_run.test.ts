// The offline bundle's run script (scripts/offline-run.sh): where it looks for NVIDIA's Vulkan
// driver manifest, when it sets VK_DRIVER_FILES, and what it says when there is none. The script
// is sourced in bash with its folder lists pointed at temporary folders, so the test does not
// depend on the drivers installed here. (Building and running the whole bundle takes minutes:
// README.md, "On a GPU host (offline)", says how it was checked.)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/offline-run.sh', import.meta.url));
const t = suite('offline bundle run script');

interface Run {
  out: string;
  err: string;
}

/** Sources the run script in a bash with only `env`, runs `body`, returns stdout and stderr. */
function bash(body: string, env: Record<string, string> = {}): Run {
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail; source "$SCRIPT"; ${body}`], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SCRIPT: script, ...env },
    encoding: 'utf8',
  });
  assert.is(r.status, 0, `bash failed: ${r.stderr}`);
  return { out: r.stdout.trim(), err: r.stderr.trim() };
}

/** A folder of driver manifests: file name -> library_path. */
function icdDir(parent: string, name: string, manifests: Record<string, string>): string {
  const dir = join(parent, name, 'vulkan/icd.d');
  mkdirSync(dir, { recursive: true });
  for (const [file, lib] of Object.entries(manifests)) {
    writeFileSync(
      join(dir, file),
      JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: lib, api_version: '1.3.0' } }),
    );
  }
  return dir;
}

/** Runs pick_vulkan_driver with the loader's folders `defaults` and the extra places `known`. */
function pick(defaults: string[], known: string[], env: Record<string, string> = {}): Run {
  return bash(
    `loader_icd_dirs() { printf '%s\\n' ${defaults.map((d) => `'${d}'`).join(' ')}; }
     NVIDIA_ICD_DIRS=(${known.map((d) => `'${d}'`).join(' ')})
     pick_vulkan_driver densecl mlp-demo
     echo "VK_DRIVER_FILES=\${VK_DRIVER_FILES:-}"`,
    env,
  );
}

t("the loader's search folders follow the XDG variables, with its fallbacks", () => {
  const lines = (env: Record<string, string>) => bash('loader_icd_dirs', env).out.split('\n');
  assert.equal(lines({ HOME: '/h' }), [
    '/h/.config/vulkan/icd.d',
    '/etc/xdg/vulkan/icd.d',
    '/etc/vulkan/icd.d',
    '/h/.local/share/vulkan/icd.d',
    '/usr/local/share/vulkan/icd.d',
    '/usr/share/vulkan/icd.d',
  ]);
  assert.equal(
    lines({
      HOME: '/h',
      XDG_CONFIG_HOME: '/c',
      XDG_CONFIG_DIRS: '/x:/y/',
      XDG_DATA_HOME: '/d',
      XDG_DATA_DIRS: '/opt/share',
    }),
    [
      '/c/vulkan/icd.d',
      '/x/vulkan/icd.d',
      '/y/vulkan/icd.d',
      '/etc/vulkan/icd.d',
      '/d/vulkan/icd.d',
      '/opt/share/vulkan/icd.d',
    ],
  );
  // Without HOME the per-user folders are left out (and `set -u` does not trip).
  assert.equal(lines({}), [
    '/etc/xdg/vulkan/icd.d',
    '/etc/vulkan/icd.d',
    '/usr/local/share/vulkan/icd.d',
    '/usr/share/vulkan/icd.d',
  ]);
});

t('an NVIDIA manifest in a default folder: the loader finds it, nothing is set or said', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'offline-run-'));
  try {
    const def = icdDir(tmp, 'default', {
      'nvidia_icd.json': 'libGLX_nvidia.so.0',
      'lvp_icd.x86_64.json': '/usr/lib/libvulkan_lvp.so',
    });
    const known = icdDir(tmp, 'usr-local-nvidia', { 'nvidia_icd.json': 'libGLX_nvidia.so.0' });
    const r = pick([def], [known]);
    assert.is(r.out, 'VK_DRIVER_FILES=');
    assert.is(r.err, '');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

t('an NVIDIA manifest only in a known folder outside the defaults: VK_DRIVER_FILES points at it', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'offline-run-'));
  try {
    const def = icdDir(tmp, 'default', { 'lvp_icd.x86_64.json': '/usr/lib/libvulkan_lvp.so' });
    const empty = join(tmp, 'missing/vulkan/icd.d');
    const known = icdDir(tmp, 'usr-local-nvidia', { 'nvidia_icd.json': 'libGLX_nvidia.so.0' });
    const r = pick([def], [empty, known]);
    assert.is(r.out, `VK_DRIVER_FILES=${known}/nvidia_icd.json`);
    assert.match(r.err, `using VK_DRIVER_FILES=${known}/nvidia_icd.json`);
    // Found by the library it names when the file has another name.
    const renamed = icdDir(tmp, 'renamed', { '10_driver.json': 'libGLX_nvidia.so.0' });
    assert.is(pick([def], [renamed]).out, `VK_DRIVER_FILES=${renamed}/10_driver.json`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

t('no NVIDIA manifest anywhere: it says to set VK_DRIVER_FILES and leaves the loader to its defaults', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'offline-run-'));
  try {
    const def = icdDir(tmp, 'default', { 'lvp_icd.x86_64.json': '/usr/lib/libvulkan_lvp.so' });
    const r = pick([def], [join(tmp, 'nowhere')]);
    assert.is(r.out, 'VK_DRIVER_FILES=');
    assert.match(r.err, 'no NVIDIA Vulkan driver manifest (nvidia_icd.json)');
    assert.match(r.err, 'VK_DRIVER_FILES=/path/to/nvidia_icd.json');
    assert.match(r.err, 'densecl mlp-demo');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

t("the user's own driver choice is kept and nothing is said", () => {
  for (const name of ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES', 'VK_ADD_DRIVER_FILES']) {
    const r = pick(['/nonexistent'], ['/nonexistent'], { [name]: '/my/icd.json' });
    assert.is(r.err, '', name);
    assert.is(r.out, `VK_DRIVER_FILES=${name === 'VK_DRIVER_FILES' ? '/my/icd.json' : ''}`, name);
  }
});

t("the unpacked loader and libglvnd come first on LD_LIBRARY_PATH, the user's path after", () => {
  const r = bash('NVIDIA_LIB_DIRS=(/nonexistent); library_path', { LD_LIBRARY_PATH: '/user/lib' });
  const dir = script.slice(0, script.lastIndexOf('/'));
  assert.is(r.out, `${dir}/.runtime/debs/usr/lib/x86_64-linux-gnu:/user/lib`);
});

t('measure: every stage runs under its own limit, a failing or overrunning one does not stop the rest', () => {
  const out = mkdtempSync(join(tmpdir(), 'densecl-measure-'));
  // A stand-in for the bench (a program: timeout runs it): "slow" sleeps past its limit, "bad" fails, others write a report.
  const fake = join(out, 'fake.sh');
  writeFileSync(
    fake,
    'case "$1" in slow) sleep 5 ;; bad) echo broken >&2; exit 3 ;; *) echo "$1 $DENSECL_TUNE $DENSECL_UNSAFE_APIS" > "$BENCH_RESULTS_DIR/$1.md" ;; esac\n',
  );
  const r = bash(`run_stages '${out}' bash '${fake}'`, { MEASURE_STAGES: 'ok:5 slow:1 bad:5 last@unsafe:5 last:5' });
  const lines = r.out.split('\n');
  assert.equal(
    lines.map((l) => l.split(' ').slice(0, 2).join(' ')),
    ['ok rc=0', 'slow rc=124', 'bad rc=3', 'last@unsafe rc=0', 'last rc=0'],
  );
  assert.ok(
    Number(lines[1].split(' ')[2].replace('s', '')) < 4,
    `the slow stage was stopped at its limit: ${lines[1]}`,
  );
  assert.is(spawnSync('cat', [join(out, 'bench/last.md')], { encoding: 'utf8' }).stdout.trim(), 'last on');
  // SUITE@unsafe: the same suite with Dawn's unsafe APIs, its reports apart.
  const unsafe = spawnSync('cat', [join(out, 'bench-last@unsafe/last.md')], { encoding: 'utf8' }).stdout.trim();
  assert.is(unsafe, 'last on 1');
  assert.match(spawnSync('cat', [join(out, 'bad.log')], { encoding: 'utf8' }).stdout, /broken/);
  rmSync(out, { recursive: true, force: true });
});

t.run();
