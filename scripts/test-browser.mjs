// The browser test: headless Chromium (Debian's /usr/bin/chromium; its SwiftShader provides
// WebGPU without a GPU) loads the demo page and
//   1. parity: runs two training steps with a given seed and configuration, on a device the page
//      passes to init({ device }) without timestamp queries (the second step profiled with the
//      coarse fallback); Node (Dawn) runs the same two steps with the package's Node build; the
//      losses must agree within float noise;
//   2. training: runs ten steps; the loss must be finite and fall once the queue is full,
//      the profiler's table and the correspondences must be there, the first step must show
//      that shaders are compiling, a software adapter must be named as such, and no request may
//      fail (a favicon 404 included); saves a screenshot.
// Run with `npm run test:browser` (builds first). CHROMIUM=/path overrides the browser.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './serve.mjs';

const root = new URL('..', import.meta.url).pathname;
const outDir = join(root, '.build/browser-test');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
// Small enough for SwiftShader; the same options go to the page and to Node.
const PARITY = { seed: 7, batchSize: 8, imgSize: 32, bnGroups: 2, queueSize: 16, dim: 16, width: 0.125, lr: 0.5 };
const TRAIN = { seed: 1, batchSize: 8, imgSize: 32, bnGroups: 2, queueSize: 16, lr: 1 };
const TRAIN_STEPS = 10;
const LOSS_RTOL = 1e-4;

const t0 = performance.now();
const log = (m) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}`);
const fail = (m) => {
  console.error(`browser test FAILED: ${m}`);
  process.exitCode = 1;
};

function query(o) {
  return new URLSearchParams(Object.entries(o).map(([k, v]) => [k, String(v)])).toString();
}

async function nodeLosses(opts, steps) {
  const { init } = await import('../dist/node/index.js');
  const { Trainer, SceneDataset, BatchLoader } = await import('../dist/node/train.js');
  const rt = await init({ quiet: true });
  try {
    const trainer = new Trainer(rt, opts);
    const loader = await BatchLoader.create(new SceneDataset({ seed: opts.seed, size: 64, length: 512 }), {
      batchSize: opts.batchSize,
      size: opts.imgSize,
      seed: opts.seed,
      workers: 0,
    });
    const losses = [];
    let inputSum = 0;
    for (let i = 0; i < steps; i++) {
      const b = loader.nextSync();
      if (i === 0) for (const v of [b.q, b.k]) for (let j = 0; j < v.length; j++) inputSum += v[j];
      const s = await trainer.trainStep(b.q, b.k);
      losses.push([s.loss, s.lossGlobal, s.lossDense]);
    }
    trainer.destroy();
    return { losses, inputSum, adapter: rt.adapterDescription };
  } finally {
    rt.destroy();
  }
}

/** Loads the page and waits until window.demo says done (or error). */
async function runPage(context, url, timeoutMs) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(url);
  // The first step compiles the shaders for seconds: the page must say so while it does.
  await page
    .waitForFunction(
      () => {
        const d = globalThis.demo;
        return d && (d.phase === 'compiling shaders' || d.status === 'done' || d.status === 'error');
      },
      null,
      { timeout: timeoutMs, polling: 50 },
    )
    .catch(() => {});
  const compilingNote = await page.evaluate(() =>
    globalThis.demo?.phase === 'compiling shaders' ? document.getElementById('status').textContent : null,
  );
  try {
    await page.waitForFunction(
      () => {
        const d = globalThis.demo;
        return d && (d.status === 'done' || d.status === 'error');
      },
      null,
      { timeout: timeoutMs, polling: 250 },
    );
  } catch {
    const partial = await page.evaluate(() => globalThis.demo ?? null);
    throw new Error(
      `${url} did not finish within ${timeoutMs / 1000}s (status ${partial?.status}, ${partial?.steps?.length ?? 0} steps)${errors.length ? `; page errors: ${errors.join(' | ')}` : ''}`,
    );
  }
  const demo = await page.evaluate(() => globalThis.demo);
  if (demo.status === 'error') throw new Error(`the page stopped with an error: ${demo.error}`);
  return { page, demo, errors, compilingNote };
}

async function main() {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium is not installed at ${chromiumPath}. Install it with \`apt-get install -y chromium\` (as root), or set CHROMIUM=/path/to/chrome.`,
    );
  }
  if (!existsSync(join(root, 'dist/web/app.js')) || !existsSync(join(root, 'dist/node/train.js'))) {
    throw new Error(
      'the package and the page are not built: run `node scripts/build-lib.mjs --web` (npm run test:browser does)',
    );
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    throw new Error('playwright-core is missing: run `npm ci`');
  }
  mkdirSync(outDir, { recursive: true });

  log("Node: two parity steps with the package's Node build…");
  const node = await nodeLosses({ ...PARITY }, 2);
  log(`Node (${node.adapter}): losses ${node.losses.map((l) => l[0].toFixed(7)).join(', ')}`);

  const { server, port } = await startServer({ port: 0 });
  const profileDir = mkdtempSync(join(tmpdir(), 'densecl-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: FLAGS,
      viewport: { width: 1000, height: 1400 },
    });
    const base = `http://127.0.0.1:${port}/`;
    const probe = await context.newPage();
    await probe.goto(base + 'web/style.css');
    const adapter = await probe.evaluate(async () => {
      if (!navigator.gpu)
        return { error: 'navigator.gpu is missing (WebGPU disabled in this Chromium build or flags)' };
      const a = await navigator.gpu.requestAdapter();
      return a
        ? { name: `${a.info.vendor} / ${a.info.architecture}`, timestamps: a.features.has('timestamp-query') }
        : { error: 'requestAdapter() returned null (no WebGPU adapter: SwiftShader missing?)' };
    });
    await probe.close();
    if (adapter.error) throw new Error(`Chromium has no usable WebGPU: ${adapter.error}. Flags: ${FLAGS.join(' ')}`);
    log(
      `Chromium WebGPU adapter: ${adapter.name}${adapter.timestamps ? ' (timestamp-query)' : ' (no timestamp-query: coarse profile)'}`,
    );

    // 1. Parity.
    const parity = await runPage(
      context,
      `${base}?${query({ ...PARITY, check: 2, timestamps: 0, profileAt: 1 })}`,
      180_000,
    );
    const note = await parity.page.textContent('#profile-note');
    await parity.page.close();
    const browser = parity.demo.parity;
    if (
      parity.demo.profile?.method !== 'coarse' ||
      !/coarse timing: this adapter lacks timestamp-query/.test(note ?? '')
    ) {
      fail(
        `without timestamp queries the page should show a coarse profile and say so; it shows method ${parity.demo.profile?.method}, note "${note}"`,
      );
    } else {
      log(`coarse profile without timestamp-query: ${parity.demo.profile.dispatches} dispatches, and the page says so`);
    }
    log(`browser: losses ${browser.losses.map((l) => l[0].toFixed(7)).join(', ')}`);
    if (Math.abs(browser.inputSum - node.inputSum) > 1e-6 * Math.max(1, Math.abs(node.inputSum))) {
      fail(
        `the two sides trained on different inputs (sum ${browser.inputSum} in the browser, ${node.inputSum} in Node): the data pipeline differs`,
      );
    }
    let worst = 0;
    node.losses.forEach((n, i) =>
      n.forEach((v, j) => {
        if (v === null) return;
        const rel = Math.abs(browser.losses[i][j] - v) / Math.abs(v);
        worst = Math.max(worst, rel);
      }),
    );
    log(
      `parity: largest relative difference of the losses over 2 steps ${worst.toExponential(2)} (tolerance ${LOSS_RTOL})`,
    );
    if (!(worst <= LOSS_RTOL))
      fail(
        `Node and browser losses differ by ${worst.toExponential(2)} relative (node ${JSON.stringify(node.losses)}, browser ${JSON.stringify(browser.losses)})`,
      );

    // 2. Training.
    const run = await runPage(context, `${base}?${query({ ...TRAIN, steps: TRAIN_STEPS, profileAt: 4 })}`, 240_000);
    const d = run.demo;
    const losses = d.steps.map((s) => s.loss);
    log(
      `browser training: ${losses.length} steps, losses ${losses.map((l) => l.toFixed(3)).join(' ')}; ${d.imagesPerSec.toFixed(1)} images/s`,
    );
    if (losses.length !== TRAIN_STEPS) fail(`expected ${TRAIN_STEPS} steps, got ${losses.length}`);
    if (!losses.every(Number.isFinite)) fail(`a loss is not finite: ${losses.join(', ')}`);
    // The queue holds random keys at first; the loss rises until it is full of real ones (queueSize / batchSize steps), then falls.
    const full = TRAIN.queueSize / TRAIN.batchSize;
    const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
    const early = mean(losses.slice(full, full + 3));
    const late = mean(losses.slice(-3));
    log(
      `loss after the queue filled (steps ${full + 1}-${full + 3}) ${early.toFixed(3)}, last 3 steps ${late.toFixed(3)}`,
    );
    if (!(late < early - 0.05)) fail(`the loss did not fall: ${early.toFixed(3)} -> ${late.toFixed(3)}`);
    if (!d.profile || d.profile.rows.length < 5) fail('the page shows no per-kernel profile');
    else
      log(
        `profile of step ${d.profile.step + 1}: ${d.profile.dispatches} dispatches, ${d.profile.gpuMs.toFixed(1)} ms of kernels (${d.profile.method}); top kernel ${d.profile.rows[0].name}`,
      );
    if (d.matchAccuracy.length !== TRAIN_STEPS)
      fail(`correspondences were drawn for ${d.matchAccuracy.length} of ${TRAIN_STEPS} steps`);
    if (run.errors.length) fail(`the page logged errors: ${run.errors.join(' | ')}`);
    if (!/compiling shaders/.test(run.compilingNote ?? ''))
      fail(`the first step did not say that shaders are compiling (status: ${run.compilingNote})`);
    else log(`first step: "${run.compilingNote}"`);
    const adapterNote = await run.page.textContent('#adapter');
    if (/swiftshader/i.test(adapter.name) && !/software adapter/.test(adapterNote ?? ''))
      fail(`the page does not say that it runs a smaller job on a software adapter: "${adapterNote}"`);
    else log(`adapter line: "${adapterNote}"`);
    const shot = join(outDir, 'demo.png');
    await run.page.screenshot({ path: shot, fullPage: true });
    writeFileSync(
      join(outDir, 'result.json'),
      JSON.stringify(
        {
          adapter,
          node,
          browser,
          parityWorstRel: worst,
          training: {
            losses,
            imagesPerSec: d.imagesPerSec,
            matchAccuracy: d.matchAccuracy,
            profile: { ...d.profile, rows: d.profile?.rows.slice(0, 10) },
          },
        },
        null,
        2,
      ),
    );
    log(`screenshot: ${shot}`);
  } finally {
    await context?.close();
    server.close();
    rmSync(profileDir, { recursive: true, force: true });
  }
}

main().then(
  () => {
    if (!process.exitCode) log('browser test passed');
  },
  (e) => fail(e.message),
);
