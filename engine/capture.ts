// Step capture and replay. A training step at one shape issues the same dispatches every time;
// only its inputs (images, a permutation) and a few scalars (learning rate, queue position)
// change. Capturing records one eager run of the step as a program of commands with everything
// resolved: pipelines, bind groups, packed uniform bytes, workgroup counts, and the pooled
// buffers it used, which the program then owns. Replay re-encodes those commands with the new
// inputs and scalars: no autograd tape, tensor objects, pool lookups or bind-group creation.
// WebGPU command buffers are single-use, so a replay still encodes each dispatch (three calls).
import type { Kernel, DispatchInfo } from './kernel.js';
import type { LivePatch } from './uniforms.js';

/** The values a replay feeds in: named uploads (typed arrays) and live uniform scalars (numbers). */
export type StepValues = Record<string, number | ArrayBufferView>;

export interface DispatchCommand {
  kind: 'dispatch';
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  /** The packed Params image (empty when the kernel has no uniform). */
  uniform: Uint8Array;
  patches: LivePatch[];
  workgroups: [number, number, number];
  info: DispatchInfo;
  /** The buffers the shader writes (their write versions move on replay too). */
  writes: GPUBuffer[];
}

export type Command =
  | DispatchCommand
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  /** An upload: a named input takes the replay's value, any other upload its captured bytes again. */
  | { kind: 'write'; buffer: GPUBuffer; input: string | null; data: Uint8Array }
  | { kind: 'flush' };

/** What the runtime does for a replay: the same low-level steps as its eager path. */
export interface ReplayTarget {
  replayDispatch(cmd: DispatchCommand, values: StepValues): void;
  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void;
  writeBuffer(buffer: GPUBuffer, data: ArrayBufferView): void;
  flush(): void;
}

/** Collects the commands of one eager run while the runtime records it. */
export class Recorder {
  readonly commands: Command[] = [];
  /** Pooled buffers taken during the capture: the program owns them afterwards. */
  readonly acquired = new Set<GPUBuffer>();
  /** Every buffer a command touches. */
  readonly touched = new Set<GPUBuffer>();
  readonly inputs = new Map<string, number>();
  readonly live = new Set<string>();

  dispatch(cmd: Omit<DispatchCommand, 'kind'>, buffers: GPUBuffer[]): void {
    this.commands.push({ kind: 'dispatch', ...cmd });
    for (const b of buffers) this.touched.add(b);
    for (const p of cmd.patches) this.live.add(p.name);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.commands.push({ kind: 'copy', src, srcOffset, dst, dstOffset, bytes });
    this.touched.add(src).add(dst);
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, input: string | null): void {
    if (input !== null) {
      if (this.inputs.has(input))
        throw new Error(
          `step capture: the input '${input}' was uploaded twice in one step; give each upload its own name`,
        );
      this.inputs.set(input, data.byteLength);
    }
    const bytes = new Uint8Array(data.byteLength);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.commands.push({ kind: 'write', buffer, input, data: bytes });
    this.touched.add(buffer);
  }

  /** The runtime records a flush only when commands were encoded since the last one. */
  flush(): void {
    this.commands.push({ kind: 'flush' });
  }
}

/** A captured step: its commands and the buffers it owns. Replay it with `rt.replay(program, values)`. */
export class StepProgram {
  readonly commands: readonly Command[];
  /** Names of the uploads a replay must be given, with their sizes in bytes. */
  readonly inputs: ReadonlyMap<string, number>;
  /** Names of the live uniform values a replay must be given. */
  readonly live: ReadonlySet<string>;
  readonly dispatches: number;
  /** Every buffer its commands bind or write (Runtime.isStale checks them against replaced ones). */
  readonly binds: ReadonlySet<GPUBuffer>;
  private destroyed = false;

  constructor(
    rec: Recorder,
    /** The pooled buffers the program owns (freed by destroy). */
    readonly buffers: readonly GPUBuffer[],
    private readonly release: (buffers: readonly GPUBuffer[]) => void,
  ) {
    this.commands = rec.commands;
    this.binds = rec.touched;
    this.inputs = rec.inputs;
    this.live = rec.live;
    this.dispatches = rec.commands.filter((c) => c.kind === 'dispatch').length;
  }

  /** Bytes of the buffers the program owns. */
  get bytes(): number {
    return this.buffers.reduce((a, b) => a + b.size, 0);
  }

  /** Checks `values` against what the capture saw: every name given, sizes equal, nothing extra. */
  check(values: StepValues): void {
    if (this.destroyed) throw new Error('step replay: the program was destroyed; capture the step again');
    for (const [name, bytes] of this.inputs) {
      const v = values[name];
      if (v === undefined || typeof v === 'number')
        throw new Error(`step replay: the input '${name}' (${bytes} bytes) was not given as a typed array`);
      if (v.byteLength !== bytes)
        throw new Error(
          `step replay: the input '${name}' has ${v.byteLength} bytes, the captured step took ${bytes}; a batch of another shape needs a new capture`,
        );
    }
    for (const name of this.live) {
      if (typeof values[name] !== 'number')
        throw new Error(`step replay: the live value '${name}' was not given as a number`);
    }
    for (const name of Object.keys(values)) {
      if (!this.inputs.has(name) && !this.live.has(name))
        throw new Error(
          `step replay: '${name}' is neither an input nor a live value of the captured step (it has ${[...this.inputs.keys(), ...this.live].join(', ') || 'none'})`,
        );
    }
  }

  /** Re-issues the commands through `target` (the runtime). */
  run(target: ReplayTarget, values: StepValues): void {
    this.check(values);
    for (const c of this.commands) {
      if (c.kind === 'dispatch') target.replayDispatch(c, values);
      else if (c.kind === 'copy') target.copyBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
      else if (c.kind === 'write')
        target.writeBuffer(c.buffer, c.input === null ? c.data : (values[c.input] as ArrayBufferView));
      else target.flush();
    }
  }

  /** Frees the buffers the program owns. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.release(this.buffers);
  }
}
