// The files of one pre-training run: config.json, log.jsonl and checkpoint.safetensors. A run
// never damages another: a folder that holds a checkpoint is refused unless the run resumes it
// or --overwrite is given, and an overwriting run holds its config and log lines back until its
// own first checkpoint is written, so a run that fails early leaves the old one as it was.
// Only rank 0 of a job makes one of these.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeStaleTemporaries, writeFileAtomic } from './io.js';

export const CHECKPOINT = 'checkpoint.safetensors';
export const CONFIG = 'config.json';
export const LOG = 'log.jsonl';

const encode = (s: string) => new TextEncoder().encode(s);

export class RunFolder {
  readonly checkpointPath: string;
  readonly logPath: string;
  readonly configPath: string;
  /** Overwriting another run: what replaces its config and log with our first checkpoint. */
  private held: { config: string; lines: string[] } | null = null;

  constructor(readonly dir: string) {
    this.checkpointPath = join(dir, CHECKPOINT);
    this.logPath = join(dir, LOG);
    this.configPath = join(dir, CONFIG);
  }

  /** Removes what writers killed mid-write left here (see removeStaleTemporaries); returns the names. */
  removeStaleTemporaries(): string[] {
    return removeStaleTemporaries(this.dir, [
      CHECKPOINT,
      CONFIG,
      LOG,
      'backbone_torchvision.safetensors',
      'backbone_detectron2.safetensors',
    ]);
  }

  /** Refuses to start a new run over another run's checkpoint unless told to replace it. */
  checkNewRun(overwrite: boolean): void {
    if (!overwrite && existsSync(this.checkpointPath)) {
      throw new Error(
        `--out ${this.dir} holds another run (${CHECKPOINT}); continue it with --resume ${this.dir}, ` +
          `choose another --out, or replace it with --overwrite (it stays as it is until the new run's first checkpoint)`,
      );
    }
  }

  /**
   * A new run: config.json and an empty log, or, over another run's checkpoint, both held back
   * until the first checkpoint of this run.
   */
  startNew(config: object): void {
    const text = JSON.stringify(config, null, 2);
    if (existsSync(this.checkpointPath)) {
      this.held = { config: text, lines: [] };
      return;
    }
    writeFileAtomic(this.configPath, encode(text));
    writeFileSync(this.logPath, '');
  }

  /** A resumed run at `step`: the log keeps the lines of steps up to it; config.json is rewritten (--epochs may have grown). */
  startResumed(config: object, step: number, warn: (message: string) => void): void {
    truncateLog(this.logPath, step, warn);
    writeFileAtomic(this.configPath, encode(JSON.stringify(config, null, 2)));
  }

  /** One whole line per step (a single write, so a crash leaves at most the last one torn). */
  log(record: object): void {
    const line = JSON.stringify(record) + '\n';
    if (this.held) this.held.lines.push(line);
    else appendFileSync(this.logPath, line);
  }

  /** Writes the checkpoint atomically; the first one of an overwriting run then replaces the old config and log. */
  writeCheckpoint(bytes: Uint8Array): void {
    writeFileAtomic(this.checkpointPath, bytes);
    if (!this.held) return;
    writeFileAtomic(this.configPath, encode(this.held.config));
    writeFileAtomic(this.logPath, encode(this.held.lines.join('')));
    this.held = null;
  }
}

/**
 * Keeps the log's lines of steps up to `step`. A torn last line (a write cut short by a full
 * disk or a kill) is dropped with a warning; any other unreadable line is an error naming the
 * file and line.
 */
export function truncateLog(path: string, step: number, warn: (message: string) => void): void {
  if (!existsSync(path)) return;
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const last = lines.length - 1; // text ends with '\n' when the last line is whole: lines[last] === ''
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]) continue;
    let record: { step?: unknown };
    try {
      record = JSON.parse(lines[i]) as { step?: unknown };
    } catch (e) {
      if (i === last) {
        warn(
          `${path}: dropped its torn last line (${lines[i].length} characters, ${(e as Error).message}); the whole lines before it are kept`,
        );
        continue;
      }
      throw new Error(
        `${path}: line ${i + 1} is not JSON (${(e as Error).message}); fix or delete that line to resume`,
      );
    }
    if (typeof record?.step !== 'number')
      throw new Error(`${path}: line ${i + 1} has no step number; fix or delete that line to resume`);
    if (record.step <= step) kept.push(lines[i] + '\n');
  }
  writeFileAtomic(path, encode(kept.join('')));
}
