// What the adapter offers, for the kernel work of issue 14: identity, features, the limits the
// engine asks for, subgroup sizes, and whether Dawn exposes subgroup matrices (cooperative
// matrices: tensor cores on NVIDIA) when asked with its unsafe-API toggle. Writes adapter.json
// and adapter.md beside the other reports; runs only when named (`run.sh measure` runs it first).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../train/io.js';
import type { BenchContext } from './lib/context.js';
import { resultsDir } from './lib/report.js';

const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

interface Probe {
  flags: string[];
  adapter: string | null;
  features: string[];
  info: Record<string, unknown>;
  /** requestDevice with the subgroup-matrix feature: 'ok', the error, or why not tried. */
  subgroupMatrixDevice: string;
}

async function probe(flags: string[]): Promise<Probe> {
  const dawnModule = 'webgpu';
  const dawn = (await import(/* @vite-ignore */ dawnModule)) as { create(flags: string[]): GPU };
  const adapter = await dawn.create(flags).requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return { flags, adapter: null, features: [], info: {}, subgroupMatrixDevice: 'no adapter' };
  const info: Record<string, unknown> = {};
  // Every readable field of GPUAdapterInfo, Dawn's extras (subgroupMatrixConfigs) included.
  for (let o: object | null = adapter.info; o && o !== Object.prototype; o = Object.getPrototypeOf(o))
    for (const key of Object.getOwnPropertyNames(o))
      if (key !== 'constructor' && !(key in info))
        info[key] = (adapter.info as unknown as Record<string, unknown>)[key];
  const features = [...adapter.features].map(String).sort();
  let subgroupMatrixDevice = `not tried: the adapter lacks ${SUBGROUP_MATRIX}`;
  if (adapter.features.has(SUBGROUP_MATRIX as GPUFeatureName)) {
    try {
      const device = await adapter.requestDevice({ requiredFeatures: [SUBGROUP_MATRIX as GPUFeatureName] });
      device.destroy();
      subgroupMatrixDevice = 'ok';
    } catch (e) {
      subgroupMatrixDevice = String((e as Error)?.message ?? e);
    }
  }
  return { flags, adapter: adapter.info.description || adapter.info.device, features, info, subgroupMatrixDevice };
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const probes = [await probe([]), await probe(['enable-dawn-features=allow_unsafe_apis'])];
  const report = {
    adapter: ctx.adapter,
    profile: { adapter: rt.profile.adapter, limits: rt.profile.limits, kernels: rt.profile.kernels },
    deviceLimits: Object.fromEntries(
      Object.keys(Object.getPrototypeOf(rt.limits))
        .filter((k) => typeof (rt.limits as unknown as Record<string, unknown>)[k] === 'number')
        .map((k) => [k, (rt.limits as unknown as Record<string, number>)[k]]),
    ),
    probes,
  };
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const text = new TextEncoder();
  writeFileAtomic(join(dir, 'adapter.json'), text.encode(`${JSON.stringify(report, null, 2)}\n`));
  const lines = [
    '# Adapter',
    '',
    `Adapter: ${ctx.adapter}`,
    '',
    ...probes.flatMap((p) => [
      `## Dawn flags: ${p.flags.join(' ') || '(none)'}`,
      '',
      `- features: ${p.features.join(', ') || '-'}`,
      `- subgroupMatrixConfigs: ${JSON.stringify(p.info.subgroupMatrixConfigs ?? 'not reported')}`,
      `- subgroup sizes: ${p.info.subgroupMinSize ?? '?'}..${p.info.subgroupMaxSize ?? '?'}`,
      `- a device with ${SUBGROUP_MATRIX}: ${p.subgroupMatrixDevice}`,
      '',
    ]),
    "The engine's device profile and limits: adapter.json.",
  ];
  writeFileAtomic(join(dir, 'adapter.md'), text.encode(`${lines.join('\n')}\n`));
  for (const p of probes)
    console.log(
      `  flags [${p.flags.join(' ')}]: ${p.features.length} features, subgroupMatrixConfigs ${JSON.stringify(p.info.subgroupMatrixConfigs ?? 'not reported')}, device with ${SUBGROUP_MATRIX}: ${p.subgroupMatrixDevice}`,
    );
}
