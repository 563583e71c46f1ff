// The re-laid conv weights of one parameter store, kept beside it and refreshed by ONE dispatch
// when the store was written since (an optimiser step, an EMA update, a load), instead of one
// re-layout per convolution call: a ResNet-50 training step re-laid 164 weights one by one.
//
// A layout (weight, direction, padding) seen for the first time is only registered: that call
// re-lays its weight itself, and the next refresh rebuilds the pack with every registered
// layout. So a model's first step registers them all and from its second step on each store
// costs one dispatch per step (or none while the store does not change). A rebuild replaces the
// pack's buffers, which captured programs may bind: it retires the old ones (rt.retire), and
// the programs that bind them are captured again. Inside a capture the pack is always
// refreshed before its first use, so a replay never reads a pack made from older weights.
// Mixed precision (engine/autocast.ts) keeps a second pack of the same store with f16 elements,
// under its own derived key, so f32 and f16 layouts never share a pack.
import packSrc from '../../../shaders/conv2d/relayout_pack.wgsl';
import type { Runtime } from '../../runtime.js';
import type { Defines } from '../../kernel.js';
import { Storage, Tensor, storageBytes } from '../../tensor.js';
import { bindingAlignment, bindingElements, type FlatStore } from '../../flat.js';
import type { ConvGeometry } from './geometry.js';

/** Words per entry of the pack's table (relayout_pack.wgsl reads the same layout). */
const ENTRY_WORDS = 8;
const TAP_MAJOR_BIT = 1 << 30;
const TRANS_BIT = 2 ** 31;

/** Element types of re-laid weights: f32, or f16 for the mixed-precision tiled kernels. */
export type RelaidDType = 'f32' | 'f16';

/** The re-layout shaders' defines for `dtype` (none for f32, whose kernel keys stay as they were). */
export const halfDefines = (dtype: RelaidDType): Defines => (dtype === 'f16' ? { AT: 'f16' } : {});

export interface LayoutKey {
  g: ConvGeometry;
  trans: boolean;
  /** m padded to this. */
  mp: number;
  /** Tap-major with cin padded to this; 0: [cin, kh, kw, mp]. */
  cinp: number;
}

interface Entry {
  /** The weight's first element in the store. */
  src: number;
  layout: LayoutKey;
  size: number;
  /** First element in its group's pack; -1 until a rebuild places it. */
  at: number;
  group: Group | null;
}

/** Entries packed together: one buffer no larger than a storage binding may be, and one dispatch. */
interface Group {
  entries: Entry[];
  pack: GPUBuffer;
  table: GPUBuffer;
  total: number;
}

export class WeightPack {
  private entries = new Map<string, Entry>();
  private groups: Group[] = [];
  private waiting = 0;
  /** The store's write version when the pack was last refreshed (-1: never). */
  private version = -1;
  /** The capture during which it was last refreshed. */
  private captureId: number | null = null;

  /** Elements per group: what one storage binding may hold (smaller in tests). */
  private readonly cap: number;
  /** Bytes per element. */
  private readonly width: number;

  /** `cap`: 4-byte words per group. */
  constructor(
    private readonly rt: Runtime,
    private readonly store: FlatStore,
    cap = bindingElements(rt),
    private readonly dtype: RelaidDType = 'f32',
  ) {
    this.width = dtype === 'f16' ? 2 : 4;
    this.cap = Math.floor((cap * 4) / this.width);
  }

  /**
   * The weight at element `src` of the store re-laid as `layout`, current with the store's
   * values; null when this layout is new (registered now, packed from the next refresh on).
   */
  get(src: number, layout: LayoutKey, op: string): Tensor | null {
    const { g, trans, mp, cinp } = layout;
    const key = `${src}:${g.O}x${g.C}x${g.KH}x${g.KW}:${trans}:${mp}:${cinp}`;
    let e = this.entries.get(key);
    const known = e !== undefined;
    if (!e) {
      const size = (cinp || (trans ? g.O : g.C)) * g.KH * g.KW * mp;
      this.entries.set(key, (e = { src, layout, size, at: -1, group: null }));
      this.waiting++;
    }
    // A waiting layout asked for again means the calls that registered it are being repeated
    // (the next step, the next batch): the pack takes in every layout registered meanwhile.
    if (this.stale() || (known && e.at < 0)) this.refresh(op);
    if (!e.group) return null;
    const bytes = storageBytes(e.size, this.dtype);
    return new Tensor(new Storage(this.rt, e.group.pack, bytes, e.at * this.width, false), [e.size], this.dtype);
  }

  destroy(): void {
    for (const g of this.groups) {
      g.pack.destroy();
      g.table.destroy();
    }
    this.groups = [];
  }

  private stale(): boolean {
    const capture = this.rt.captureId;
    return this.version !== this.rt.writeVersion(this.store.buffer) || (capture !== null && capture !== this.captureId);
  }

  private refresh(op: string): void {
    if (this.waiting > 0) this.rebuild();
    const rt = this.rt;
    for (const g of this.groups)
      rt.dispatch(rt.kernel('conv2d_relayout_pack', packSrc, halfDefines(this.dtype)), {
        params: { total: g.total, entries: g.entries.length },
        buffers: [this.store.buffer, g.table, g.pack],
        workgroups: rt.grid1d(g.total / 2, 256),
        op,
        bytes: (4 + this.width) * g.total,
        shapes: `${g.entries.length} weights of ${this.store.label}`,
      });
    this.version = rt.writeVersion(this.store.buffer);
    this.captureId = rt.captureId;
  }

  /** New packs with every registered layout (the old ones are destroyed once nothing pending uses them). */
  private rebuild(): void {
    const rt = this.rt;
    for (const g of this.groups) {
      rt.retire(g.pack);
      rt.retire(g.table);
    }
    // Element offsets that bind: the alignment in words, in elements (always even, as the pack
    // shader's pairs need).
    const align = (bindingAlignment(rt) * 4) / this.width;
    const cap = this.cap;
    const placed: Entry[][] = [];
    let total = cap;
    for (const e of this.entries.values()) {
      e.at = -1;
      e.group = null;
      // A weight whose layout alone exceeds a binding is left to the per-call path (which cannot bind it either).
      if (e.size > cap) continue;
      if (total + e.size > cap) {
        placed.push([]);
        total = 0;
      }
      e.at = total;
      total = Math.ceil((total + e.size) / align) * align;
      placed[placed.length - 1].push(e);
    }
    this.groups = placed.map((entries) => this.makeGroup(entries));
    this.waiting = 0;
  }

  private makeGroup(entries: Entry[]): Group {
    const words = new Uint32Array(entries.length * ENTRY_WORDS);
    entries.forEach((e, i) => {
      const { g, trans, mp, cinp } = e.layout;
      const flags = cinp + (cinp > 0 ? TAP_MAJOR_BIT : 0) + (trans ? TRANS_BIT : 0);
      words.set([e.at, e.size, e.src, g.O, g.C, g.KH * g.KW, mp, flags], i * ENTRY_WORDS);
    });
    const last = entries[entries.length - 1];
    const total = last.at + last.size;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const label = `${this.store.label}.conv-layouts`;
    const group: Group = {
      entries,
      total,
      pack: this.rt.device.createBuffer({ label, size: storageBytes(total, this.dtype), usage }),
      table: this.rt.device.createBuffer({ label: `${label}.table`, size: words.byteLength, usage }),
    };
    this.rt.writeBuffer(group.table, words);
    for (const e of entries) e.group = group;
    return group;
  }
}

/** The key of a store's (f32) weight pack among the things derived from it. */
export const WEIGHT_PACK = 'conv2d.weight-pack';
/** The key of its f16 weight pack. */
export const WEIGHT_PACK_F16 = 'conv2d.weight-pack.f16';

/** The store's weight pack of `dtype` (made on first use, destroyed with the store). */
export const weightPackOf = (rt: Runtime, store: FlatStore, dtype: RelaidDType = 'f32'): WeightPack =>
  store.derived(dtype === 'f16' ? WEIGHT_PACK_F16 : WEIGHT_PACK, () => new WeightPack(rt, store, undefined, dtype));
