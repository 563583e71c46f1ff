// The register tiles of the workgroup-tiled conv kernels (tiled.ts), by name: a module of its own
// so the device profile can name a tile without importing the kernels.
export interface TiledTile {
  TM: 4 | 8;
  TN: 4 | 8;
  BK: number;
}
/** The tile candidates (named rows x columns per invocation); BK keeps the buffers at 16 KiB or less. */
export const TILED_TILES = {
  '8x8': { TM: 8, TN: 8, BK: 8 },
  '4x8': { TM: 4, TN: 8, BK: 8 },
  '8x4': { TM: 8, TN: 4, BK: 8 },
  '4x4': { TM: 4, TN: 4, BK: 16 },
} as const satisfies Record<string, TiledTile>;
export type TiledTileName = keyof typeof TILED_TILES;
