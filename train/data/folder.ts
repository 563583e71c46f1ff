// A dataset from a folder of JPEG/PNG images (Node only: file system and sharp).
//
// sharp is worth its weight as a dependency: libvips decodes JPEG (mozjpeg) and PNG robustly,
// including CMYK, 16-bit, palette, grayscale and EXIF-rotated files, reports corrupt and
// truncated data as errors instead of garbage, and shrinks large photos in native code
// (JPEG shrink-on-load) far faster than any JS decoder would.
import { closeSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { loadSharp } from './sharp.js';
import type { RgbImage } from './augment.js';

const EXTENSIONS = ['.jpg', '.jpeg', '.png'];

export interface FolderOptions {
  /** Side of the training crop, to warn (once) about smaller images, which are upscaled. */
  cropSize?: number;
  /**
   * Shrink (never enlarge) each image on decode so its shorter side is at most this; 0 keeps
   * full size. Default 3 * cropSize: the smallest RandomResizedCrop (area 0.2, ratio 3/4) then
   * still spans more than cropSize pixels, so views lose nothing visible but decode and resize
   * much faster on large photos.
   */
  maxShortSide?: number;
  /** Read every file's header when opening, and drop the unreadable ones (default true). */
  verify?: boolean;
  onWarning?: (message: string) => void;
}

/** What a worker thread needs to rebuild the dataset: plain data, no handles. */
export interface FolderSpec {
  root: string;
  files: string[];
  labels: number[];
  classNames: string[];
  maxShortSide: number;
}

export interface FolderSample {
  image: RgbImage & { data: Uint8Array };
  /** Index into classNames of the first-level subfolder, or -1 for images at the top level. */
  label: number;
}

function walk(dir: string, out: string[], other: { count: number }): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files and folders, e.g. .DS_Store, .git
    const full = join(dir, e.name);
    if (e.isDirectory()) walk(full, out, other);
    else if (e.isFile() || e.isSymbolicLink()) {
      const lower = e.name.toLowerCase();
      if (EXTENSIONS.some((x) => lower.endsWith(x))) out.push(full);
      else other.count++;
    }
  }
}

function list(names: string[], max = 5): string {
  return names.slice(0, max).join(', ') + (names.length > max ? ` and ${names.length - max} more` : '');
}

/**
 * Why the file itself cannot be read (permissions, a folder behind a link), or null when it
 * can; asked after a decode fails, so an OS error is not reported as a bad image format.
 */
function whyUnreadable(path: string): string | null {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    readSync(fd, Buffer.alloc(1), 0, 1, 0);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM'
      ? 'permission denied: the file is not readable by this user'
      : (e as Error).message;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** An image file that could not be decoded; the message names the file. */
export class ImageDecodeError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`could not decode ${path}: ${reason}`);
  }
}

export class FolderDataset {
  readonly root: string;
  /** Paths relative to root, sorted; classes in sorted order of their folder names. */
  readonly files: string[];
  readonly labels: number[];
  readonly classNames: string[];
  readonly maxShortSide: number;
  /** Files dropped when opening because their header could not be read. */
  readonly skipped: { path: string; reason: string }[];

  private constructor(spec: FolderSpec, skipped: { path: string; reason: string }[] = []) {
    this.root = spec.root;
    this.files = spec.files;
    this.labels = spec.labels;
    this.classNames = spec.classNames;
    this.maxShortSide = spec.maxShortSide;
    this.skipped = skipped;
  }

  get length(): number {
    return this.files.length;
  }

  get numClasses(): number {
    return this.classNames.length;
  }

  /** Plain data that rebuilds this dataset in a worker thread: one case of loader.ts's DatasetSpec
   *  (the loader names the datasets, not the other way round). */
  workerSpec(): { kind: 'folder'; spec: FolderSpec } {
    return {
      kind: 'folder',
      spec: {
        root: this.root,
        files: this.files,
        labels: this.labels,
        classNames: this.classNames,
        maxShortSide: this.maxShortSide,
      },
    };
  }

  static fromSpec(spec: FolderSpec): FolderDataset {
    return new FolderDataset(spec);
  }

  /** Lists the images under `root` (recursively) and, unless told not to, checks their headers. */
  static async open(root: string, opts: FolderOptions = {}): Promise<FolderDataset> {
    const expected = `a folder of ${EXTENSIONS.join('/')} images (subfolders allowed; the first-level subfolder names the class)`;
    let st: Stats;
    try {
      st = statSync(root);
    } catch {
      throw new Error(`data folder "${root}" does not exist; expected ${expected}`);
    }
    if (!st.isDirectory()) throw new Error(`data folder "${root}" is not a folder; expected ${expected}`);
    const found: string[] = [];
    const other = { count: 0 };
    walk(root, found, other);
    if (found.length === 0) {
      throw new Error(
        `data folder "${root}" holds no images (searched subfolders too${other.count ? `; ${other.count} files with other extensions` : ''}); expected ${expected}`,
      );
    }
    const warn = opts.onWarning ?? ((m: string) => console.warn(`warning: ${m}`));
    const cropSize = opts.cropSize ?? 0;
    const maxShortSide = opts.maxShortSide ?? 3 * cropSize;

    let files = found.map((f) => relative(root, f));
    const skipped: { path: string; reason: string }[] = [];
    if (opts.verify ?? true) {
      const ok = new Array<boolean>(files.length).fill(false);
      const small: string[] = [];
      // Headers only; a few at a time so that a huge folder does not open thousands of files.
      let next = 0;
      const sharp = await loadSharp();
      const probe = async (): Promise<void> => {
        while (next < files.length) {
          const i = next++;
          try {
            const m = await sharp(join(root, files[i])).metadata();
            if (!m.width || !m.height) throw new Error('no image size in the header');
            ok[i] = true;
            if (Math.min(m.width, m.height) < cropSize) small.push(`${files[i]} (${m.width}x${m.height})`);
          } catch (e) {
            skipped.push({
              path: files[i],
              reason: whyUnreadable(join(root, files[i])) ?? (e as Error).message.split('\n')[0],
            });
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, probe));
      files = files.filter((_, i) => ok[i]);
      if (skipped.length) {
        warn(
          `skipped ${skipped.length} unreadable image${skipped.length > 1 ? 's' : ''} in "${root}": ${list(skipped.map((s) => `${s.path} (${s.reason})`))}`,
        );
      }
      if (files.length === 0)
        throw new Error(
          `data folder "${root}" holds no readable images: all ${found.length} failed to decode (${list(skipped.map((s) => s.path))})`,
        );
      if (small.length) {
        warn(
          `${small.length} image${small.length > 1 ? 's are' : ' is'} smaller than the ${cropSize}x${cropSize} crop and will be upscaled: ${list(small, 3)}`,
        );
      }
    }
    const classOf = (f: string): string | null => (f.includes(sep) ? f.slice(0, f.indexOf(sep)) : null);
    const classNames = [...new Set(files.map(classOf).filter((c): c is string => c !== null))].sort();
    const index = new Map(classNames.map((c, i) => [c, i]));
    const labels = files.map((f) => {
      const c = classOf(f);
      return c === null ? -1 : index.get(c)!;
    });
    return new FolderDataset({ root, files, labels, classNames, maxShortSide }, skipped);
  }

  /** Path of sample i, for messages. */
  path(index: number): string {
    return join(this.root, this.files[index]);
  }

  /** Decodes sample i to 8-bit RGB (alpha dropped, EXIF orientation applied). */
  async get(index: number): Promise<FolderSample> {
    if (!Number.isInteger(index) || index < 0 || index >= this.files.length) {
      throw new Error(`FolderDataset: index ${index} is outside 0..${this.files.length - 1}`);
    }
    const path = this.path(index);
    const sharp = await loadSharp();
    let img = sharp(path, { failOn: 'truncated', autoOrient: true }).removeAlpha().toColourspace('srgb');
    if (this.maxShortSide > 0)
      img = img.resize({
        width: this.maxShortSide,
        height: this.maxShortSide,
        fit: 'outside',
        withoutEnlargement: true,
      });
    const decoded = await img
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true })
      .catch((e: Error) => {
        throw new ImageDecodeError(path, whyUnreadable(path) ?? e.message.split('\n')[0]);
      });
    const { data, info } = decoded;
    const { width, height, channels } = info;
    let rgb: Uint8Array;
    if (channels === 3) {
      rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
    } else if (channels === 1) {
      rgb = new Uint8Array(width * height * 3);
      for (let i = 0; i < width * height; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i];
    } else {
      throw new ImageDecodeError(path, `decoded to ${channels} channels, expected RGB`);
    }
    return { image: { width, height, data: rgb }, label: this.labels[index] };
  }
}
