// Kernel names in profile tables: shortened to the defines that tell a shader's variants apart,
// never to the same text for two kernels; the trace keeps the full names.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { shortKernelNames, formatTable, chromeTrace, type AggregateRow, type KernelRecord } from '../engine/index.js';
import { Rng } from '../engine/random.js';

const t = suite('kernel names');

// Names as an H200 profile shows them (/work/shared/gpu-measurements), where 60-character cuts read alike.
const CONV = [
  'conv2d_gemm[CHECK=true,NTC=3,PAD=true,SCS=1,TC_WIN=0, 1, 2,TILE=64]',
  'conv2d_gemm[CHECK=false,NTC=3,PAD=true,SCS=1,TC_WIN=0, 1, 2,TILE=64]',
  'conv2d_gemm[CHECK=false,NTC=3,PAD=true,SCS=2,TC_WIN=0, 1, 2,TILE=64]',
  'conv2d_gemm[CHECK=true,NTC=2,PAD=true,SCS=1,TC_WIN=0, 1, 2,TILE=64]',
];

t('variants of a shader keep only the defines they differ in', () => {
  const short = shortKernelNames([
    ...CONV,
    'matmul_vec4[CHECKED=true,TRANS_A=false]',
    'matmul_vec4[CHECKED=true,TRANS_A=true]',
    'reduce_sum',
    'sgd[N=4]',
  ]);
  assert.equal(
    [...short.values()],
    [
      'conv2d_gemm[CHECK=true,NTC=3,SCS=1]',
      'conv2d_gemm[CHECK=false,NTC=3,SCS=1]',
      'conv2d_gemm[CHECK=false,NTC=3,SCS=2]',
      'conv2d_gemm[CHECK=true,NTC=2,SCS=1]',
      'matmul_vec4[TRANS_A=false]',
      'matmul_vec4[TRANS_A=true]',
      'reduce_sum',
      'sgd',
    ],
  );
});

t('a plain name and a variant of the same shader stay apart; values with commas are one define', () => {
  const short = shortKernelNames(['fill', 'fill[V=1, 2]', 'odd[name]']);
  assert.equal([...short.values()], ['fill', 'fill[V=1, 2]', 'odd[name]']);
});

t('random sets of distinct names never shorten to the same text', () => {
  const rng = new Rng(5);
  const pick = (n: number) => Math.floor(rng.uniform(0, n));
  for (let trial = 0; trial < 300; trial++) {
    const names = new Set<string>();
    for (let i = 0; i < 1 + pick(8); i++) {
      const keys = ['A', 'B', 'C', 'D'].filter(() => pick(3) > 0);
      const defines = keys.map((k) => `${k}=${pick(2) ? pick(3) : `${pick(2)}, ${pick(2)}`}`);
      const base = ['k', 'k2'][pick(2)];
      names.add(defines.length ? `${base}[${defines.join(',')}]` : base);
    }
    const short = [...shortKernelNames([...names]).values()];
    assert.is(new Set(short).size, names.size, `${[...names].join(' | ')} -> ${short.join(' | ')}`);
  }
});

const row = (name: string): AggregateRow => ({
  name,
  calls: 1,
  totalMs: 1,
  meanMs: 1,
  share: 0.25,
  gflops: 1,
  gbps: 1,
  peakFlops: null,
  peakBandwidth: null,
  estimated: 0,
});

t('formatTable shows the short names, whole; the trace keeps the full ones', () => {
  const table = formatTable(CONV.map(row), 'per kernel');
  assert.ok(table.includes('conv2d_gemm[CHECK=false,NTC=3,SCS=2] '), table);
  assert.not.ok(table.includes('...'), table);
  const record = {
    kernel: CONV[0],
    op: 'conv2d',
    shapes: [],
    workgroups: [1, 1, 1],
    flops: 0,
    bytes: 0,
    startMs: 0,
    endMs: 1,
    gpuMs: 1,
    cpuMs: 0,
    estimated: false,
    interval: 0,
  } as unknown as KernelRecord;
  const trace = chromeTrace({ records: [record], method: 'timestamps' });
  assert.ok(trace.traceEvents.some((e) => (e as { name: string }).name === CONV[0]));
});

t.run();
