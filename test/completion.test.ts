import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CompletionPredictor } from '../engine/completion.js';
import { gpu } from './helpers.js';
import { randn, matmul } from '../engine/index.js';

const t = suite('completion predictor');

/** A predictor on a clock the test moves by hand. */
function manual(): { p: CompletionPredictor; advance: (ms: number) => void } {
  let now = 1000;
  return { p: new CompletionPredictor(() => now), advance: (ms) => (now += ms) };
}

t('sleeps nothing before it has seen a long wait', () => {
  const { p } = manual();
  p.noteDispatch(1e9, 0);
  assert.is(p.sleepBefore(p.noteSubmit()), 0);
});

t('learns the rate from a long wait and sleeps part of the next similar one', () => {
  const { p, advance } = manual();
  p.noteDispatch(1e9, 0);
  const first = p.noteSubmit();
  advance(100);
  p.noteDone(first);
  p.noteDispatch(1e9, 0);
  const second = p.noteSubmit();
  const sleep = p.sleepBefore(second);
  // The same work took 100 ms: the sleep covers most of it, never all of it.
  assert.ok(sleep > 50 && sleep < 100, `slept ${sleep} ms`);
  // Time already spent since the work started is taken off.
  advance(60);
  const later = p.sleepBefore(second);
  assert.ok(later < sleep - 40, `after 60 ms still ${later} ms`);
});

t('a wait inflated by an idle GPU neither raises the estimate nor makes a sleep longer than recent waits', () => {
  const { p, advance } = manual();
  const step = (ms: number): void => {
    p.noteDispatch(1e9, 0);
    const s = p.noteSubmit();
    advance(ms);
    p.noteDone(s);
  };
  step(100);
  // The same work, but the wait also covered 900 ms in which the GPU had nothing to do.
  step(1000);
  p.noteDispatch(1e9, 0);
  const sleep = p.sleepBefore(p.noteSubmit());
  assert.ok(sleep > 50 && sleep < 100, `slept ${sleep} ms`);
  // Work far larger than anything seen: the sleep is capped by the longest recent wait.
  p.noteDispatch(1e12, 0);
  assert.ok(p.sleepBefore(p.noteSubmit()) <= 1000);
});

t("a wait over a pipeline's first run (shader compilation) does not teach the rate", () => {
  const { p, advance } = manual();
  p.noteDispatch(1e9, 0, true);
  const s = p.noteSubmit();
  advance(60_000);
  p.noteDone(s);
  p.noteDispatch(1e9, 0);
  assert.is(p.sleepBefore(p.noteSubmit()), 0);
});

t('short waits neither teach the rate nor sleep', () => {
  const { p, advance } = manual();
  p.noteDispatch(1e9, 0);
  const s = p.noteSubmit();
  advance(1);
  p.noteDone(s);
  p.noteDispatch(1e9, 0);
  assert.is(p.sleepBefore(p.noteSubmit()), 0);
});

t('work already waited for is not predicted again', () => {
  const { p, advance } = manual();
  p.noteDispatch(1e9, 0);
  const a = p.noteSubmit();
  advance(100);
  p.noteDone(a);
  // A tiny read after a completed step: its wait covers only the tiny work.
  p.noteDispatch(10, 40);
  assert.is(p.sleepBefore(p.noteSubmit()), 0);
});

t('a runtime that sleeps while waiting returns the same results', async () => {
  const rt = await gpu();
  const before = rt.sleepWhileWaiting;
  try {
    const a = randn([256, 256], 1);
    const b = randn([256, 256], 2);
    const product = async (): Promise<Float32Array> => {
      const c = matmul(a, b);
      const v = (await c.data()) as Float32Array;
      c.dispose();
      return v;
    };
    rt.sleepWhileWaiting = false;
    const busy = await product();
    rt.sleepWhileWaiting = true;
    for (let i = 0; i < 3; i++)
      assert.equal(Array.from((await product()).subarray(0, 64)), Array.from(busy.subarray(0, 64)));
    a.dispose();
    b.dispose();
  } finally {
    rt.sleepWhileWaiting = before;
  }
});

t.run();
