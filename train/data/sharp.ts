// sharp (libvips) reads and writes image files: image-folder datasets, PASCAL VOC, the CLI's
// pictures. It is an optional peer dependency of the package, loaded on first use, so programs
// that never touch image files (the built-in scenes, a browser) run without it installed.
import type SharpModule from 'sharp';

export type Sharp = typeof SharpModule;

let loading: Promise<Sharp> | null = null;

export function loadSharp(): Promise<Sharp> {
  const name = 'sharp';
  loading ??= import(name).then(
    (m: { default: Sharp }) => m.default,
    (e: { code?: string }) => {
      loading = null;
      if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e).includes("'sharp'")) throw e;
      throw new Error(
        "reading or writing image files needs the package 'sharp', an optional peer dependency of densecl-webgpu: npm install sharp",
      );
    },
  );
  return loading;
}
