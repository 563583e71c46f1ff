// Pictures written with sharp: validation images beside their true and predicted label maps, and
// line plots of training losses (drawn as SVG, rasterised by sharp's librsvg).
import { writeFileSync } from 'node:fs';
import { loadSharp } from '../data/sharp.js';
import { plainView, MOCO_V2, type RgbImage } from '../data/augment.js';

/** Colour of class k in PASCAL VOC's palette (the bits of k spread over the high bits of r, g, b); 255 (ignore) light grey-yellow as in VOC. */
export function labelColour(k: number): [number, number, number] {
  if (k === 255) return [224, 224, 192];
  let r = 0,
    g = 0,
    b = 0;
  for (let j = 0, c = k; j < 8; j++, c >>= 3) {
    r |= ((c >> 0) & 1) << (7 - j);
    g |= ((c >> 1) & 1) << (7 - j);
    b |= ((c >> 2) & 1) << (7 - j);
  }
  return [r, g, b];
}

const GAP = 4;

/**
 * Rows of [image | true labels | predicted labels], each tile `size` pixels scaled up by nearest
 * neighbour to at least 96 pixels, with a caption strip. `labels` and `predictions` are
 * [rows, size, size].
 */
export async function writeSegmentationPicture(
  path: string,
  images: RgbImage[],
  labels: Uint8Array,
  predictions: Uint8Array,
  size: number,
): Promise<void> {
  const rows = images.length;
  const scale = Math.max(1, Math.ceil(96 / size));
  const tile = size * scale;
  const head = 22;
  const width = 3 * tile + 4 * GAP;
  const height = head + rows * (tile + GAP) + GAP;
  const px = new Uint8Array(width * height * 3).fill(255);
  const put = (x0: number, y0: number, colourAt: (x: number, y: number) => [number, number, number]): void => {
    for (let y = 0; y < tile; y++) {
      for (let x = 0; x < tile; x++) {
        const c = colourAt(Math.floor(x / scale), Math.floor(y / scale));
        const o = ((y0 + y) * width + x0 + x) * 3;
        px[o] = c[0];
        px[o + 1] = c[1];
        px[o + 2] = c[2];
      }
    }
  };
  images.forEach((img, r) => {
    // The evaluated view, normalisation undone.
    const { view } = plainView(img, size);
    const plane = size * size;
    const value = (ch: number, x: number, y: number) =>
      Math.round(Math.min(Math.max(view[ch * plane + y * size + x] * MOCO_V2.std[ch] + MOCO_V2.mean[ch], 0), 1) * 255);
    const y0 = head + GAP + r * (tile + GAP);
    put(GAP, y0, (x, y) => [value(0, x, y), value(1, x, y), value(2, x, y)]);
    put(2 * GAP + tile, y0, (x, y) => labelColour(labels[r * plane + y * size + x]));
    put(3 * GAP + 2 * tile, y0, (x, y) => labelColour(predictions[r * plane + y * size + x]));
  });
  const text = (x: number, s: string) =>
    `<text x="${x}" y="15" font-family="sans-serif" font-size="12">${escapeXml(s)}</text>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${head}">${text(GAP, 'image')}${text(2 * GAP + tile, 'true')}${text(3 * GAP + 2 * tile, 'predicted')}</svg>`;
  const sharp = await loadSharp();
  const png = await sharp(px, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
  writeFileSync(path, png);
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

export interface Series {
  name: string;
  colour: string;
  /** Dashed line (e.g. a second seed). */
  dash?: string;
  points: [number, number][];
}

/** A line plot of several series as SVG and PNG (`base`.svg, `base`.png). */
export async function writeLinePlot(
  base: string,
  title: string,
  xLabel: string,
  yLabel: string,
  series: Series[],
): Promise<string> {
  const W = 720,
    H = 440,
    L = 60,
    R = 190,
    T = 36,
    B = 48;
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (!all.length) throw new Error(`plot ${title}: no finite points`);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = 0.05 * (y1 - y0);
  [y0, y1] = [y0 - pad, y1 + pad];
  const sx = (x: number) => L + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const ticks = (lo: number, hi: number, n: number) =>
    Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  const parts: string[] = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-family="sans-serif" font-size="15">${escapeXml(title)}</text>`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`,
  ];
  for (const v of ticks(y0, y1, 5)) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${L - 6}" y="${sy(v) + 4}" font-family="sans-serif" font-size="11" text-anchor="end">${fmt(v)}</text>`,
    );
  }
  for (const v of ticks(x0, x1, 5)) {
    parts.push(
      `<text x="${sx(v)}" y="${H - B + 16}" font-family="sans-serif" font-size="11" text-anchor="middle">${Math.round(v)}</text>`,
    );
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${H - 10}" font-family="sans-serif" font-size="12" text-anchor="middle">${escapeXml(xLabel)}</text>`,
  );
  parts.push(
    `<text x="16" y="${(T + H - B) / 2}" font-family="sans-serif" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${escapeXml(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points
      .filter(([, y]) => Number.isFinite(y))
      .map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
      .join(' ');
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="1.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    const ly = T + 10 + i * 18;
    parts.push(
      `<line x1="${W - R + 12}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    parts.push(
      `<text x="${W - R + 46}" y="${ly + 4}" font-family="sans-serif" font-size="11">${escapeXml(s.name)}</text>`,
    );
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
  writeFileSync(`${base}.svg`, svg);
  const sharp = await loadSharp();
  writeFileSync(`${base}.png`, await sharp(Buffer.from(svg)).png().toBuffer());
  return `${base}.png`;
}
