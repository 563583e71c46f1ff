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

  constructor(private device: GPUDevice) {}

  acquire(bytes: number, forUpload: boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const buf = this.take(this.clean, size) ?? (forUpload ? undefined : this.take(this.dirty, size));
    this.bytesLive += size;
    this.peak = Math.max(this.peak, this.bytesLive);
    if (buf) {
      this.bytesPooled -= size;
      return buf;
    }
    this.created++;
    return this.device.createBuffer({ size, usage: this.usage });
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.bytesLive -= size;
    this.bytesPooled += size;
    let list = this.dirty.get(size);
    if (!list) this.dirty.set(size, (list = []));
    list.push(buf);
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
    return { bytesLive: this.bytesLive, bytesPooled: this.bytesPooled, peakBytesLive: this.peak, buffersCreated: this.created };
  }

  resetPeak(): void {
    this.peak = this.bytesLive;
  }

  private take(from: Map<number, GPUBuffer[]>, size: number): GPUBuffer | undefined {
    const list = from.get(size);
    return list && list.length ? list.pop() : undefined;
  }
}
