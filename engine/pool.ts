// Buffer pool with size classes. A released buffer is reused at once for kernel outputs (the
// GPU runs commands in order), but an upload with queue.writeBuffer only takes a buffer that no
// command of the still-unsubmitted encoder touches: writeBuffer runs before those commands.

function storageUsage(): number {
  // GPUBufferUsage is a global only once Dawn (or a browser) has installed it.
  const u = (globalThis as { GPUBufferUsage?: { STORAGE: number; COPY_SRC: number; COPY_DST: number } }).GPUBufferUsage;
  return u ? u.STORAGE | u.COPY_SRC | u.COPY_DST : 0x80 | 0x04 | 0x08;
}

/** Rounds a byte size up to its class: powers of two up to 1 MiB, then steps of 1/8 of a power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 16) * 16);
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** Math.floor(Math.log2(b)) / 8;
  return Math.ceil(b / step) * step;
}

export interface MemoryReport {
  bytesLive: number;
  bytesPooled: number;
  /** Held by captured step programs (engine/capture.ts). */
  bytesCaptured: number;
  peakBytesLive: number;
  buffersCreated: number;
}

export class BufferPool {
  private clean = new Map<number, GPUBuffer[]>();
  private dirty = new Map<number, GPUBuffer[]>();
  private bytesLive = 0;
  private bytesPooled = 0;
  private peak = 0;
  private created = 0;

  private usage = storageUsage();
  /** Every buffer this pool created (a captured step may only own those). */
  private mine = new WeakSet<GPUBuffer>();
  /** Buffers owned by captured step programs: never handed out, and a release is ignored. */
  private claimed = new WeakSet<GPUBuffer>();
  private bytesClaimed = 0;
  private watcher: Set<GPUBuffer> | null = null;

  constructor(private device: GPUDevice) {}

  acquire(bytes: number, forUpload: boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const buf = this.take(this.clean, size) ?? (forUpload ? undefined : this.take(this.dirty, size));
    this.bytesLive += size;
    this.peak = Math.max(this.peak, this.bytesLive);
    if (buf) {
      this.bytesPooled -= size;
      this.watcher?.add(buf);
      return buf;
    }
    this.created++;
    const created = this.device.createBuffer({ size, usage: this.usage });
    this.mine.add(created);
    this.watcher?.add(created);
    return created;
  }

  release(buf: GPUBuffer): void {
    if (this.claimed.has(buf)) return;
    const size = buf.size;
    this.bytesLive -= size;
    this.bytesPooled += size;
    let list = this.dirty.get(size);
    if (!list) this.dirty.set(size, (list = []));
    list.push(buf);
  }

  /** While a step is captured, every acquired buffer is added to `into` (null stops watching). */
  watch(into: Set<GPUBuffer> | null): void {
    this.watcher = into;
  }

  /**
   * Hands buffers to a captured step program: those acquired during the capture, and any other
   * pooled buffer its commands touched that is free now (released during the capture). A pooled
   * buffer that is still held outside the capture cannot be owned: the step read a tensor made
   * before it, which a replay would find changed or freed.
   */
  claim(acquired: ReadonlySet<GPUBuffer>, touched: ReadonlySet<GPUBuffer>): GPUBuffer[] {
    const owned: GPUBuffer[] = [];
    const own = (buf: GPUBuffer): void => {
      this.claimed.add(buf);
      this.bytesClaimed += buf.size;
      owned.push(buf);
    };
    for (const buf of touched) {
      if (!this.mine.has(buf) || this.claimed.has(buf) || acquired.has(buf)) continue;
      if (!this.removeFree(buf)) {
        throw new Error(
          'step capture: the step used a tensor created before the capture (a pooled buffer it does not own); create every tensor the step reads inside it (named uploads: inputOn), or keep persistent state in a FlatStore',
        );
      }
      this.bytesPooled -= buf.size;
      own(buf);
    }
    for (const buf of acquired) {
      // Free now (released inside the capture) or still held by a returned tensor.
      if (this.removeFree(buf)) this.bytesPooled -= buf.size;
      else this.bytesLive -= buf.size;
      own(buf);
    }
    return owned;
  }

  /** A destroyed program's buffers are freed (they are never returned to the pool). */
  unclaim(buffers: readonly GPUBuffer[]): void {
    for (const buf of buffers) {
      if (!this.claimed.delete(buf)) continue;
      this.bytesClaimed -= buf.size;
      buf.destroy();
    }
  }

  /** Called after each submit: nothing pending touches the released buffers any more. */
  markSubmitted(): void {
    for (const [size, list] of this.dirty) {
      let c = this.clean.get(size);
      if (!c) this.clean.set(size, (c = []));
      c.push(...list);
    }
    this.dirty.clear();
  }

  /** Destroys every pooled buffer (live ones stay). */
  trim(): void {
    this.markSubmitted();
    for (const list of this.clean.values()) for (const b of list) b.destroy();
    this.clean.clear();
    this.bytesPooled = 0;
  }

  report(): MemoryReport {
    return {
      bytesLive: this.bytesLive,
      bytesPooled: this.bytesPooled,
      bytesCaptured: this.bytesClaimed,
      peakBytesLive: this.peak,
      buffersCreated: this.created,
    };
  }

  resetPeak(): void {
    this.peak = this.bytesLive;
  }

  private removeFree(buf: GPUBuffer): boolean {
    for (const lists of [this.clean, this.dirty]) {
      const list = lists.get(buf.size);
      const at = list ? list.indexOf(buf) : -1;
      if (at >= 0) {
        list!.splice(at, 1);
        return true;
      }
    }
    return false;
  }

  private take(from: Map<number, GPUBuffer[]>, size: number): GPUBuffer | undefined {
    return from.get(size)?.pop();
  }
}
