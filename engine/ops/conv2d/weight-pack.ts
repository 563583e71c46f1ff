// The re-laid conv weights of one parameter store, kept beside it and refreshed by ONE dispatch
// when the store was written since (an optimiser step, an EMA update, a load), instead of one
// re-layout per convolution call: a ResNet-50 training step re-laid 164 weights one by one.
//
// A layout (weight, direction, padding) seen for the first time is only registered: that call
// re-lays its weight itself, and the next refresh rebuilds the pack with every registered
// layout. So a model's first step registers them all and from its second step on each store
// costs one dispatch per step (or none while the store does not change). A rebuild replaces the pack's buffer, which captured programs
// may bind: it tells the runtime (invalidatePrograms), and those programs are captured again.
// Inside a capture the pack is always refreshed before its first use, so a replay never reads
// a pack computed from weights that have changed since.
import packSrc from '../../../shaders/conv2d/relayout_pack.wgsl';
import type { Runtime } from '../../runtime.js';
import { Storage, Tensor } from '../../tensor.js';
import type { FlatStore } from '../../flat.js';
import type { ConvGeometry } from './geometry.js';

/** Words per entry of the pack's table (relayout_pack.wgsl reads the same layout). */
const ENTRY_WORDS = 8;
const TAP_MAJOR_BIT = 1 << 30;
const TRANS_BIT = 2 ** 31;

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
  /** First element in the pack; -1 until a rebuild places it. */
  at: number;
}

export class WeightPack {
  private entries = new Map<string, Entry>();
  private placed: Entry[] = [];
  private waiting = 0;
  private pack: GPUBuffer | null = null;
  private table: GPUBuffer | null = null;
  private total = 0;
  /** The store's write version when the pack was last refreshed (-1: never). */
  private version = -1;
  /** The capture during which it was last refreshed. */
  private captureId: number | null = null;

  constructor(
    private readonly rt: Runtime,
    private readonly store: FlatStore,
  ) {}

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
      this.entries.set(key, (e = { src, layout, size, at: -1 }));
      this.waiting++;
    }
    // A waiting layout asked for again means the calls that registered it are being repeated
    // (the next step, the next batch): the pack takes in every layout registered meanwhile.
    if (this.stale() || (known && e.at < 0)) this.refresh(op);
    if (e.at < 0) return null;
    return new Tensor(new Storage(this.rt, this.pack!, e.size * 4, e.at * 4, false), [e.size]);
  }

  destroy(): void {
    this.pack?.destroy();
    this.table?.destroy();
    this.pack = this.table = null;
  }

  private stale(): boolean {
    const capture = this.rt.captureId;
    return this.version !== this.rt.writeVersion(this.store.buffer) || (capture !== null && capture !== this.captureId);
  }

  private refresh(op: string): void {
    if (this.waiting > 0) this.rebuild();
    const rt = this.rt;
    rt.dispatch(rt.kernel('conv2d_relayout_pack', packSrc), {
      params: { total: this.total, entries: this.placed.length },
      buffers: [this.store.buffer, this.table!, this.pack!],
      workgroups: rt.grid1d(this.total, 256),
      op,
      bytes: 8 * this.total,
      shapes: `${this.placed.length} weights of ${this.store.label}`,
    });
    this.version = rt.writeVersion(this.store.buffer);
    this.captureId = rt.captureId;
  }

  /** A new pack with every registered layout (the old one is destroyed once nothing pending uses it). */
  private rebuild(): void {
    const rt = this.rt;
    const align = Math.max(1, rt.limits.minStorageBufferOffsetAlignment / 4);
    let total = 0;
    this.placed = [...this.entries.values()];
    const words = new Uint32Array(this.placed.length * ENTRY_WORDS);
    this.placed.forEach((e, i) => {
      e.at = total;
      total = Math.ceil((total + e.size) / align) * align;
      const { g, trans, mp, cinp } = e.layout;
      const flags = cinp + (cinp > 0 ? TAP_MAJOR_BIT : 0) + (trans ? TRANS_BIT : 0);
      words.set([e.at, e.size, e.src, g.O, g.C, g.KH * g.KW, mp, flags], i * ENTRY_WORDS);
    });
    if (this.pack) {
      rt.destroyAfterSubmit(this.pack);
      rt.destroyAfterSubmit(this.table!);
      rt.invalidatePrograms();
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    this.pack = rt.device.createBuffer({ label: `${this.store.label}.conv-layouts`, size: total * 4, usage });
    this.table = rt.device.createBuffer({
      label: `${this.store.label}.conv-layout-table`,
      size: words.byteLength,
      usage,
    });
    rt.writeBuffer(this.table, words);
    this.total = total;
    this.waiting = 0;
  }
}

/** The store's weight pack (made on first use, destroyed with the store). */
export const weightPackOf = (rt: Runtime, store: FlatStore): WeightPack =>
  store.derived('conv2d.weight-pack', () => new WeightPack(rt, store));
