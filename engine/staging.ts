// Host <-> GPU transfers of buffers that are not one tensor's, through the Runtime: copies are
// recorded on its encoder, maps are awaited through its completion tracking (rt.untilDone), and
// writes go through rt.writeBuffer (which counts them as writes of the buffer). The
// data-parallel step moves gradient buckets and key outputs between GPUs with these.
import type { Runtime } from './runtime.js';
import type { Tensor } from './tensor.js';

/**
 * A host-readable buffer that GPU buffers are copied into. Record copies (copyIn), submit them
 * (rt.flush), ask for the map as soon as they are submitted (requestMap) and take the values
 * when they are needed (take): several readbacks then overlap each other and the GPU's work.
 * Reusable: take() unmaps it for the next round.
 */
export class Readback {
  readonly buffer: GPUBuffer;
  private mapped: Promise<void> | null = null;

  constructor(
    private readonly rt: Runtime,
    bytes: number,
    label: string,
  ) {
    this.buffer = rt.device.createBuffer({
      label,
      size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Records a copy of `bytes` from `src` (at `srcOffset`) to byte `at` of this buffer; it runs with the runtime's next flush. */
  copyIn(src: GPUBuffer, srcOffset: number, at: number, bytes: number): void {
    this.rt.copyBuffer(src, srcOffset, this.buffer, at, bytes);
  }

  /** Records a copy of a tensor's values to byte `at` of this buffer. */
  copyTensor(t: Tensor, at: number): void {
    const src = t.buffer('Readback.copyTensor');
    this.copyIn(src.buffer, src.offset, at, t.size * 4);
  }

  /** Asks for the values of the submitted copies (once per round); resolves when take() can read them without waiting. */
  requestMap(): Promise<void> {
    return (this.mapped ??= this.rt.untilDone(() => this.buffer.mapAsync(GPUMapMode.READ)));
  }

  /** The first `count` floats, written into `into` at `at` (a new array when none is given); unmaps for the next round. */
  async take(count: number, into: Float32Array = new Float32Array(count), at = 0): Promise<Float32Array> {
    await this.requestMap();
    into.set(new Float32Array(this.buffer.getMappedRange(), 0, count), at);
    this.buffer.unmap();
    this.mapped = null;
    return into;
  }

  destroy(): void {
    this.buffer.destroy();
  }
}

/**
 * Writes host values into a GPU buffer at byte `dstOffset`. The queue runs the write before any
 * command submitted after it and after those submitted before: call rt.flush() first when the
 * write must follow commands that are only recorded.
 */
export function writeBufferFrom(rt: Runtime, dst: GPUBuffer, dstOffset: number, values: Float32Array): void {
  rt.writeBuffer(dst, values, dstOffset);
}
