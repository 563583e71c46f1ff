// What a person watching a run sees: one updating line on a terminal (step, epoch, images/s,
// both loss terms, lr, ETA), or a plain line every few steps when the output is a file.
export interface StepFigures {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  imagesPerSec: number;
  loss: number;
  lossGlobal: number;
  lossDense: number | null;
  lr: number;
  etaSec: number;
  /** How long the step waited for its batch from the loader, and how long issuing it took (ms). */
  dataWaitMs?: number;
  issueMs?: number;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '--:--';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0
    ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}`
    : `${m}:${String(r).padStart(2, '0')}`;
}

export function formatFigures(f: StepFigures, width = 24): string {
  const done = f.totalSteps > 0 ? f.step / f.totalSteps : 0;
  const filled = Math.round(done * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const dense = f.lossDense === null ? '' : ` dense ${f.lossDense.toFixed(4)}`;
  return (
    `${bar} step ${f.step}/${f.totalSteps} ep ${f.epoch + 1}/${f.epochs} | ${f.imagesPerSec.toFixed(1)} img/s | ` +
    `loss ${f.loss.toFixed(4)} (global ${f.lossGlobal.toFixed(4)}${dense}) | lr ${f.lr.toExponential(2)} | ETA ${formatDuration(f.etaSec)}` +
    (f.dataWaitMs === undefined
      ? ''
      : ` | data wait ${f.dataWaitMs.toFixed(0)} ms, issue ${(f.issueMs ?? 0).toFixed(0)} ms`)
  );
}

export class Progress {
  private readonly tty: boolean;
  private lastPrint = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly everySec = 10,
  ) {
    this.tty = !!stream.isTTY;
  }

  update(f: StepFigures): void {
    const now = Date.now();
    const last = f.step === f.totalSteps;
    if (this.tty) {
      this.stream.write(`\r${formatFigures(f).slice(0, (this.stream.columns ?? 160) - 1)}\x1b[K${last ? '\n' : ''}`);
    } else if (last || now - this.lastPrint >= this.everySec * 1000) {
      this.stream.write(formatFigures(f) + '\n');
      this.lastPrint = now;
    }
  }

  /** A message on its own line, not mangled by the updating bar. */
  note(msg: string): void {
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}${msg}\n`);
  }
}
