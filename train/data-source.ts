// The pre-training data: the built-in scenes or a folder of images, as a loader of two
// augmented views per image, with a sampler state saved in checkpoints.
import { SceneDataset } from './data/scenes.js';
import { FolderDataset } from './data/folder.js';
import { BatchLoader, type LoaderDataset, type SamplerState, type Batch } from './data/loader.js';

export interface DataOptions {
  data: string;
  batchSize: number;
  imgSize: number;
  seed: number;
  builtinImages: number;
  workers: number;
}

/** Views as bytes: a quarter of the floats to pass from the workers and to upload; the Trainer normalises them on the GPU. */
export interface TrainingData {
  loader: BatchLoader<Uint8Array>;
  size: number;
  description: string;
  next(): Promise<Batch<Uint8Array>>;
  close(): Promise<void>;
}

/** Scene images are generated a little larger than the views so random crops have room. */
export function sceneSourceSize(imgSize: number): number {
  return Math.max(32, Math.round(imgSize * 1.5));
}

export async function openDataset(
  o: Pick<DataOptions, 'data' | 'imgSize' | 'seed' | 'builtinImages'>,
): Promise<{ dataset: LoaderDataset; description: string }> {
  if (o.data === 'builtin') {
    const dataset = new SceneDataset({ seed: o.seed, size: sceneSourceSize(o.imgSize), length: o.builtinImages });
    return { dataset, description: `built-in scenes (${dataset.length} images, ${dataset.size}px, seed ${o.seed})` };
  }
  // The crop size lets large images shrink on load (a 16000x16000 PNG: 123 MB instead of 820 MB, 6x faster).
  const dataset = await FolderDataset.open(o.data, { cropSize: o.imgSize });
  const skipped = dataset.skipped.length ? `, ${dataset.skipped.length} unreadable skipped` : '';
  return { dataset, description: `${o.data} (${dataset.length} images${skipped})` };
}

/** `shard`: this process's slice of every batch of batchSize images in a data-parallel job. */
export async function openTrainingData(
  o: DataOptions,
  resume?: SamplerState | null,
  shard = { rank: 0, worldSize: 1 },
): Promise<TrainingData> {
  const { dataset, description } = await openDataset(o);
  if (dataset.length < o.batchSize) {
    throw new Error(
      `the dataset ${description} has ${dataset.length} images, fewer than --batch-size ${o.batchSize}; lower the batch size or add images`,
    );
  }
  const loader = await BatchLoader.create(dataset, {
    batchSize: o.batchSize / shard.worldSize,
    ...shard,
    size: o.imgSize,
    seed: o.seed,
    workers: o.workers,
    resume: resume ?? undefined,
    pixels: 'bytes',
  });
  return { loader, size: dataset.length, description, next: () => loader.next(), close: () => loader.close() };
}
