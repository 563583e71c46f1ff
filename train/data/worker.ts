// Entry of the data worker threads (bundled to data-worker.mjs next to the program or tests):
// rebuilds the dataset from plain data, then loads and augments whole batches on request.
import { parentPort, workerData } from 'node:worker_threads';
import { SceneDataset } from './scenes.js';
import { FolderDataset } from './folder.js';
import { computeBatch, type BatchConfig, type BatchJob, type DatasetSpec, type LoaderDataset } from './loader.js';

const { dataset, cfg } = workerData as { dataset: DatasetSpec; cfg: BatchConfig };
const ds: LoaderDataset =
  dataset.kind === 'scenes' ? new SceneDataset(dataset.options) : FolderDataset.fromSpec(dataset.spec);
const port = parentPort!;

port.on('message', async (job: BatchJob & { id: number }) => {
  try {
    const result = await computeBatch(ds, job, cfg);
    const transfer: ArrayBuffer[] = [result.q.buffer, result.k.buffer, result.labels.buffer] as ArrayBuffer[];
    if (result.qLabelMaps && result.kLabelMaps)
      transfer.push(result.qLabelMaps.buffer as ArrayBuffer, result.kLabelMaps.buffer as ArrayBuffer);
    port.postMessage({ id: job.id, ok: true, result }, transfer);
  } catch (e) {
    port.postMessage({ id: job.id, ok: false, message: (e as Error).message });
  }
});
