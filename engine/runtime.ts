// The runtime records every dispatch of a step into one command encoder (one compute pass) and
// submits only when a result is read or a step ends. Pipelines are cached by shader key, bind
// groups reused, and parameters go through one uniform buffer addressed by dynamic offsets.
import { BufferPool, type MemoryReport } from './pool.js';
import { specialize, kernelKey, type Defines, type Kernel, type DispatchInfo } from './kernel.js';
import { Recorder, StepProgram, type DispatchCommand, type StepValues } from './capture.js';
import { reflectShader, packParams, writeScalar, type ParamValues } from './uniforms.js';
import type { BufferRef, GpuHandle } from './gpu.js';
import { CompletionPredictor, sleep } from './completion.js';
import { deviceProfile, type DeviceProfile, type ProfileOverrides } from './device-profile.js';
import { Tuner } from './tune/tuner.js';

export type { Kernel, DispatchInfo } from './kernel.js';

/** A seam for the profiler: it may ask for a pass of its own per dispatch, with timestamps. */
export interface DispatchObserver {
  timestampWrites(info: DispatchInfo): GPUComputePassTimestampWrites | undefined;
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): void;
}

export interface DispatchArgs {
  params?: ParamValues;
  buffers: (BufferRef | GPUBuffer)[];
  workgroups: [number, number, number];
  op: string;
  flops?: number;
  bytes?: number;
  shapes?: string;
  /** The kernel was chosen by autotuning: the profiler's kernel name says "(tuned)". */
  tuned?: boolean;
}

const UNIFORM_SLOT = 256;
const UNIFORM_CAPACITY = 1 << 22;
const MAX_WORKGROUPS = 65535;

/** The arithmetic of conv2d and linear (engine/autocast.ts). */
export type Precision = 'f32' | 'mixed';

export class Runtime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly adapterDescription: string;
  readonly hasTimestamps: boolean;
  readonly limits: GPUSupportedLimits;
  /** What the kernels' plans know of this device and which kernels they use (device-profile.ts). */
  profile: DeviceProfile;
  /** Kernel choices by measurement, per shape class (engine/tune/tuner.ts); off unless configured. */
  readonly tuner: Tuner;
  observer: DispatchObserver | null = null;
  /** 'mixed': conv2d and linear compute on f16 operands (engine/autocast.ts); set with setPrecision. */
  precision: Precision = 'f32';
  /** Sleep through most of a wait's predicted GPU time before polling (on where polling is busy). */
  sleepWhileWaiting: boolean;
  /** Counts for tests and reports. */
  readonly stats = { submits: 0, dispatches: 0, pipelines: 0, bindGroups: 0 };

  private kernels = new Map<string, Kernel>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline set last in the open pass. */
  private passPipeline: GPUComputePipeline | null = null;
  private readonly dynamicOffset = new Uint32Array(1);
  private uniformBuffer: GPUBuffer;
  private uniformImage = new ArrayBuffer(UNIFORM_CAPACITY);
  private uniformView = new DataView(this.uniformImage);
  private uniformUsed = 0;
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private released = false;
  private pendingChecks: Promise<void>[] = [];
  private kernelErrors: string[] = [];
  private completion = new CompletionPredictor();
  /** Set while a step is being captured (capture()). */
  private recorder: Recorder | null = null;
  private captures = 0;
  /** How often each buffer has been written (dispatch bindings the shader writes, copies, uploads, replays). */
  private writeCounts = new WeakMap<GPUBuffer, number>();
  /** Buffers to destroy once the commands recorded so far are submitted (they may still use them). */
  private retiring: GPUBuffer[] = [];
  /** Buffers replaced by something else (retire()): a program that binds one cannot replay. */
  private retired = new WeakSet<GPUBuffer>();

  constructor(
    private handle: GpuHandle,
    profile: ProfileOverrides = {},
  ) {
    this.device = handle.device;
    this.adapterDescription = handle.adapterDescription;
    this.hasTimestamps = handle.hasTimestamps;
    this.sleepWhileWaiting = handle.pollsWhileWaiting ?? false;
    this.limits = handle.device.limits;
    this.profile = deviceProfile(handle.device, handle.adapterInfo, profile);
    this.tuner = new Tuner(handle.device, this.profile.adapter.key);
    this.pool = new BufferPool(this.device);
    this.uniformBuffer = this.device.createBuffer({
      size: UNIFORM_CAPACITY,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** Returns the compiled pipeline for a shader specialisation, building it once. */
  kernel(label: string, source: string, defines: Defines = {}): Kernel {
    const key = kernelKey(label, defines);
    const hit = this.kernels.get(key);
    if (hit) return hit;
    const code = specialize(source, label, defines);
    const iface = reflectShader(code, key);
    const entries: GPUBindGroupLayoutEntry[] = [];
    if (iface.uniformSize > 0) {
      entries.push({
        binding: 0,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: 'uniform', hasDynamicOffset: true },
      });
    }
    iface.storageWritable.forEach((w, i) =>
      entries.push({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: w ? 'storage' : 'read-only-storage' },
      }),
    );
    // WGSL errors surface asynchronously in WebGPU; collect them and throw at the next read.
    this.device.pushErrorScope('validation');
    const layout = this.device.createBindGroupLayout({ label: key, entries });
    const module = this.device.createShaderModule({ label: key, code });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.pendingChecks.push(
      this.device.popErrorScope().then((err) => {
        if (err) this.kernelErrors.push(`kernel ${key} failed to build: ${err.message}`);
      }),
    );
    const k: Kernel = { key, label, iface, pipeline, layout, used: false };
    this.kernels.set(key, k);
    this.stats.pipelines++;
    return k;
  }

  /** Records one dispatch into the open compute pass. */
  dispatch(k: Kernel, args: DispatchArgs): void {
    this.assertAlive();
    const expected = k.iface.storageWritable.length;
    if (args.buffers.length !== expected) {
      throw new Error(`${args.op}: kernel ${k.key} binds ${expected} storage buffers, got ${args.buffers.length}`);
    }
    if (args.workgroups.some((w) => w === 0)) return;
    if (args.workgroups.some((w) => w > MAX_WORKGROUPS)) {
      throw new Error(
        `${args.op}: kernel ${k.key} dispatch ${args.workgroups.join('x')} exceeds ${MAX_WORKGROUPS} workgroups per dimension`,
      );
    }
    const info: DispatchInfo = {
      kernel: args.tuned ? `${k.key} (tuned)` : k.key,
      op: args.op,
      workgroups: args.workgroups,
      flops: args.flops ?? 0,
      bytes: args.bytes ?? 0,
      shapes: args.shapes ?? '',
    };
    // Asked before the parameters are packed: an observer may submit what was recorded so far
    // (the coarse profiler does), which uploads and then reuses the uniform image.
    const stamps = this.observer?.timestampWrites(info);
    const offset = this.reserveUniform(k);
    const patches =
      k.iface.uniformSize > 0
        ? packParams(k.iface, args.params ?? {}, this.uniformView, offset, `${args.op} (${k.key})`)
        : [];
    const bindGroup = this.bindGroup(k, args.buffers);
    const buffers = args.buffers.map((b) => ('buffer' in b ? b.buffer : b));
    const writes = buffers.filter((_, i) => k.iface.storageWritable[i]);
    for (const b of writes) this.noteWrite(b);
    if (this.recorder) {
      const uniform = new Uint8Array(this.uniformImage, offset, k.iface.uniformSize).slice();
      this.recorder.dispatch(
        { kernel: k, bindGroup, uniform, patches, workgroups: args.workgroups, info, writes },
        buffers,
      );
    }
    this.encodeDispatch(k, bindGroup, offset, args.workgroups, stamps, info);
  }

  /**
   * Records `fn` (one training step, say) into a step program while running it as usual. Every
   * upload inside must be a named input (inputOn) or a constant, every changing uniform scalar a
   * live value, and nothing may be read back inside. The pooled buffers the step used belong to
   * the program afterwards, so replays find them as the capture left them.
   */
  capture<T>(fn: () => T): { program: StepProgram; result: T } {
    this.assertAlive();
    if (this.recorder) throw new Error('step capture: a capture is already running; captures do not nest');
    this.flush(); // commands recorded before belong to no program
    const rec = (this.recorder = new Recorder());
    this.captures++;
    this.pool.watch(rec.acquired);
    let result: T;
    try {
      result = fn();
      this.flush();
    } finally {
      this.recorder = null;
      this.pool.watch(null);
    }
    const buffers = this.pool.claim(rec.acquired, rec.touched);
    return { program: new StepProgram(rec, buffers, (owned) => this.pool.unclaim(owned)), result };
  }

  /** Whether a step is being captured now (uploads and reads are restricted then). */
  get capturing(): boolean {
    return this.recorder !== null;
  }

  /** The running capture's number (distinct per capture), or null outside captures. */
  get captureId(): number | null {
    return this.recorder ? this.captures : null;
  }

  /** Whether a program binds only live buffers (none retired since its capture); StepPrograms recaptures otherwise. */
  canReplay(program: StepProgram): boolean {
    for (const b of program.bound) if (this.retired.has(b)) return false;
    return true;
  }

  /** How many times `buffer` has been written so far: a cache of something computed from it is stale when this moved. */
  writeVersion(buffer: GPUBuffer): number {
    return this.writeCounts.get(buffer) ?? 0;
  }

  private noteWrite(buffer: GPUBuffer): void {
    this.writeCounts.set(buffer, (this.writeCounts.get(buffer) ?? 0) + 1);
  }

  /**
   * Gives up a buffer that something new replaces (a weight pack that grew): destroyed once the
   * commands recorded so far are submitted, and captured programs that bind it refuse to replay.
   */
  retire(buffer: GPUBuffer): void {
    this.retired.add(buffer);
    if (this.encoder) this.retiring.push(buffer);
    else buffer.destroy();
  }

  /** Runs a captured step again with new inputs and live values (capture() says what it needs). */
  replay(program: StepProgram, values: StepValues): void {
    this.assertAlive();
    if (this.recorder) throw new Error('step replay: not allowed inside a capture');
    if (!this.canReplay(program))
      throw new Error(
        'step replay: a buffer the program binds was replaced after the capture (e.g. re-laid weights grew); capture the step again',
      );
    this.flush(); // anything recorded before runs first, as it would eagerly
    program.run(this, values);
  }

  /** One dispatch of a captured program: its uniform bytes with the live values patched in. */
  replayDispatch(cmd: DispatchCommand, values: StepValues): void {
    const k = cmd.kernel;
    const stamps = this.observer?.timestampWrites(cmd.info);
    const offset = this.reserveUniform(k);
    if (k.iface.uniformSize > 0) {
      new Uint8Array(this.uniformImage, offset, cmd.uniform.length).set(cmd.uniform);
      for (const p of cmd.patches) writeScalar(this.uniformView, offset + p.offset, p.scalar, values[p.name] as number);
    }
    for (const b of cmd.writes) this.noteWrite(b);
    this.encodeDispatch(k, cmd.bindGroup, offset, cmd.workgroups, stamps, cmd.info);
  }

  /** queue.writeBuffer at this point of the command stream (before the still-open encoder's commands run). */
  writeBuffer(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.noteWrite(buffer);
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Reserves (and zeroes) this dispatch's slot in the uniform image; flushes when it is full. */
  private reserveUniform(k: Kernel): number {
    if (k.iface.uniformSize === 0) return 0;
    const slot = Math.ceil(k.iface.uniformSize / UNIFORM_SLOT) * UNIFORM_SLOT;
    if (this.uniformUsed + slot > UNIFORM_CAPACITY) this.flush();
    const offset = this.uniformUsed;
    new Uint8Array(this.uniformImage, offset, slot).fill(0);
    this.uniformUsed += slot;
    return offset;
  }

  private encodeDispatch(
    k: Kernel,
    bindGroup: GPUBindGroup,
    uniformOffset: number,
    workgroups: [number, number, number],
    stamps: GPUComputePassTimestampWrites | undefined,
    info: DispatchInfo,
  ): void {
    const pass = this.openPass(stamps);
    // Each call crosses into the native WebGPU implementation, the cost of a replayed dispatch.
    if (this.passPipeline !== k.pipeline) pass.setPipeline((this.passPipeline = k.pipeline));
    if (k.iface.uniformSize > 0) {
      this.dynamicOffset[0] = uniformOffset;
      pass.setBindGroup(0, bindGroup, this.dynamicOffset, 0, 1);
    } else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    if (stamps) this.closePass();
    this.stats.dispatches++;
    this.completion.noteDispatch(info.flops, info.bytes, !k.used);
    k.used = true;
  }

  /** Workgroup counts for n invocations of a 1-D kernel, folded into y beyond 65535 groups. */
  grid1d(n: number, workgroupSize: number): [number, number, number] {
    const groups = Math.ceil(n / workgroupSize);
    if (groups <= MAX_WORKGROUPS) return [groups, 1, 1];
    const y = Math.ceil(groups / MAX_WORKGROUPS);
    return [Math.ceil(groups / y), y, 1];
  }

  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.assertAlive();
    this.closePass();
    this.recorder?.copy(src, srcOffset, dst, dstOffset, bytes);
    this.noteWrite(dst);
    this.ensureEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * A pooled buffer holding `data`, written before the pending commands run. In a captured step,
   * `input` names an upload that changes from step to step (a replay is given its new value);
   * unnamed uploads are constants, written again as captured.
   */
  upload(data: ArrayBufferView, bytes = data.byteLength, input: string | null = null): GPUBuffer {
    this.assertAlive();
    const buf = this.pool.acquire(Math.max(bytes, 4), true);
    if (data.byteLength) this.writeBuffer(buf, data);
    this.recorder?.write(buf, data, input);
    return buf;
  }

  /** Submits everything recorded so far as one command buffer. */
  flush(): void {
    this.assertAlive();
    if (!this.encoder) return;
    this.recorder?.flush();
    this.closePass();
    if (this.uniformUsed > 0)
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformImage, 0, this.uniformUsed);
    this.observer?.beforeSubmit(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    for (const b of this.retiring.splice(0)) b.destroy();
    this.uniformUsed = 0;
    this.stats.submits++;
    this.completion.noteSubmit();
    this.pool.markSubmitted();
    this.observer?.afterSubmit();
  }

  /** Reads `bytes` from a buffer; submits pending work first. */
  async read(src: GPUBuffer, bytes: number, srcOffset = 0): Promise<ArrayBuffer> {
    if (this.recorder)
      throw new Error(
        'step capture: a captured step cannot read values back mid-step; return the tensor from the step and read it after',
      );
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copyBuffer(src, srcOffset, staging, 0, size);
    this.flush();
    await this.untilDone(() => staging.mapAsync(GPUMapMode.READ));
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    await this.checkKernels();
    return out;
  }

  /** Waits until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    this.flush();
    await this.untilDone(() => this.device.queue.onSubmittedWorkDone());
    await this.checkKernels();
  }

  /**
   * Awaits `poll`, a wait on everything submitted so far (a mapAsync of a buffer the last
   * submission wrote); where waiting busy-polls this thread, sleeps through most of the
   * predicted GPU time first (engine/completion.ts says why). Code that maps its own buffers
   * should wait through here, so the prediction sees every completion.
   */
  async untilDone<T>(poll: () => Promise<T>): Promise<T> {
    const seq = this.completion.latest;
    if (this.sleepWhileWaiting) await sleep(this.completion.sleepBefore(seq));
    const out = await poll();
    this.completion.noteDone(seq);
    return out;
  }

  /** Throws if a kernel built so far had a WGSL or pipeline error (results would be garbage). */
  async checkKernels(): Promise<void> {
    const checks = this.pendingChecks;
    this.pendingChecks = [];
    await Promise.all(checks);
    if (this.kernelErrors.length) {
      const message = this.kernelErrors.join('\n');
      this.kernelErrors = [];
      throw new Error(message);
    }
  }

  memory(): MemoryReport {
    return this.pool.report();
  }

  /** Frees pooled buffers and releases the device, so a Node process may exit. */
  destroy(): void {
    if (this.released) return;
    this.flush();
    this.pool.trim();
    this.bindGroups.clear();
    this.uniformBuffer.destroy();
    this.released = true;
    this.handle.release();
  }

  private bindGroup(k: Kernel, buffers: (BufferRef | GPUBuffer)[]): GPUBindGroup {
    const refs = buffers.map((b) => ('buffer' in b ? b : { buffer: b, offset: 0, size: b.size }));
    let key = k.key;
    for (const r of refs) key += `:${this.idOf(r.buffer)}@${r.offset}+${r.size}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      const entries: GPUBindGroupEntry[] = refs.map((r, i) => ({
        binding: i + 1,
        resource: { buffer: r.buffer, offset: r.offset, size: Math.ceil(r.size / 4) * 4 },
      }));
      if (k.iface.uniformSize > 0) {
        entries.push({
          binding: 0,
          resource: { buffer: this.uniformBuffer, size: Math.ceil(k.iface.uniformSize / 16) * 16 },
        });
      }
      bg = this.device.createBindGroup({ layout: k.layout, entries });
      if (this.bindGroups.size > 20000) this.bindGroups.clear();
      this.bindGroups.set(key, bg);
      this.stats.bindGroups++;
    }
    return bg;
  }

  private idOf(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private ensureEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private openPass(timestampWrites?: GPUComputePassTimestampWrites): GPUComputePassEncoder {
    if (timestampWrites) this.closePass();
    if (this.pass) return this.pass;
    this.passPipeline = null;
    return (this.pass = this.ensureEncoder().beginComputePass(timestampWrites ? { timestampWrites } : undefined));
  }

  private closePass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private assertAlive(): void {
    if (this.released) throw new Error('the GPU runtime was destroyed; create a new one with init()');
  }
}
