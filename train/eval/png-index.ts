// Class indices from a label-map PNG. PASCAL VOC's SegmentationClass files are palette PNGs
// whose pixel values are class indices (255 = ignore) shown through a colour palette; sharp
// (libvips) always expands a palette to RGB and gives no way to read the indices, so this reads
// them itself: chunks, zlib (node:zlib) and the five PNG row filters, for palette and grayscale
// images of 1, 2, 4 or 8 bits, not interlaced. (Grayscale 8-bit is how converted label sets such
// as SegmentationClassAug store them.)
import { inflateSync } from 'node:zlib';

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export interface IndexMap {
  width: number;
  height: number;
  /** width*height bytes, row-major. */
  data: Uint8Array;
}

/** Width and height from the header alone. */
export function pngSize(bytes: Uint8Array, path: string): { width: number; height: number } {
  const h = header(bytes, path);
  return { width: h.width, height: h.height };
}

function header(bytes: Uint8Array, path: string) {
  if (bytes.length < 33 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error(`${path} is not a PNG file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (type !== 'IHDR') throw new Error(`${path}: PNG without an IHDR chunk first`);
  return {
    width: view.getUint32(16),
    height: view.getUint32(20),
    bitDepth: bytes[24],
    colorType: bytes[25],
    interlace: bytes[28],
  };
}

export function decodeIndexPng(bytes: Uint8Array, path: string): IndexMap {
  const { width, height, bitDepth, colorType, interlace } = header(bytes, path);
  if (colorType !== 3 && colorType !== 0) {
    const kind =
      colorType === 2 ? 'RGB' : colorType === 6 ? 'RGBA' : colorType === 4 ? 'gray+alpha' : `colour type ${colorType}`;
    throw new Error(
      `${path} is a ${kind} PNG; a label map must be a palette or grayscale PNG whose pixel values are class indices (as VOC's SegmentationClass)`,
    );
  }
  if (![1, 2, 4, 8].includes(bitDepth))
    throw new Error(`${path}: ${bitDepth}-bit label maps are not supported; use 8-bit palette or grayscale PNGs`);
  if (interlace !== 0)
    throw new Error(`${path}: interlaced (Adam7) PNG label maps are not supported; re-save it without interlacing`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + len > bytes.length) throw new Error(`${path}: PNG chunk ${type} is truncated`);
    if (type === 'IDAT') parts.push(bytes.subarray(at + 8, at + 8 + len));
    if (type === 'IEND') break;
    at += 12 + len;
  }
  if (!parts.length) throw new Error(`${path}: PNG without image data (IDAT)`);
  let raw: Uint8Array;
  try {
    raw = inflateSync(Buffer.concat(parts));
  } catch (e) {
    throw new Error(`${path}: corrupt PNG image data: ${(e as Error).message}`);
  }
  const stride = Math.ceil((width * bitDepth) / 8);
  if (raw.length < height * (stride + 1))
    throw new Error(`${path}: PNG image data is truncated (${raw.length} bytes, expected ${height * (stride + 1)})`);
  const rows = unfilter(raw, height, stride, path);
  const data = new Uint8Array(width * height);
  const perByte = 8 / bitDepth;
  const mask = (1 << bitDepth) - 1;
  for (let y = 0; y < height; y++) {
    const row = rows.subarray(y * stride, (y + 1) * stride);
    for (let x = 0; x < width; x++) {
      data[y * width + x] =
        bitDepth === 8 ? row[x] : (row[Math.floor(x / perByte)] >> (8 - bitDepth * (1 + (x % perByte)))) & mask;
    }
  }
  return { width, height, data };
}

// PNG row filters with one byte per pixel step (all bit depths up to 8 of one channel).
function unfilter(raw: Uint8Array, height: number, stride: number, path: string): Uint8Array {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = out.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? out.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i > 0 ? cur[i - 1] : 0;
      const b = prev[i];
      const c = i > 0 ? prev[i - 1] : 0;
      let v: number;
      switch (filter) {
        case 0:
          v = 0;
          break;
        case 1:
          v = a;
          break;
        case 2:
          v = b;
          break;
        case 3:
          v = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a),
            pb = Math.abs(p - b),
            pc = Math.abs(p - c);
          v = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`${path}: unknown PNG row filter ${filter} in row ${y}`);
      }
      cur[i] = (src[i] + v) & 255;
    }
  }
  return out;
}
