// Package entry "densecl-webgpu/train": the browser-safe training step and what feeds it
// (built-in scenes, MoCo-v2 augmentation, the seeded batch loader), SGD and the schedule, and
// safetensors in memory. The CLI's file-based pretrain loop is not part of the package API.
export {
  Trainer,
  TRAINER_DEFAULTS,
  IMAGENET_NORMALIZATION,
  type TrainerOptions,
  type StepStats,
  type StepOptions,
  type ParallelOptions,
} from './trainer.js';
export { SingleProcess, type Communicator, type CommArray } from '../engine/comm/communicator.js';
export { Sgd, type SgdOptions } from '../engine/ops/sgd.js';
export { scaledLr, cosineLr } from './optim/schedule.js';
export { SceneDataset, SCENE_CLASSES, type SceneOptions, type SceneSample } from './data/scenes.js';
export {
  BatchLoader,
  EpochSampler,
  type Batch,
  type LoaderOptions,
  type LoaderDataset,
  type Sample,
  type SamplerState,
  type PixelFormat,
  type ViewBatch,
} from './data/loader.js';
export {
  augmentView,
  plainView,
  viewToSource,
  cropLabels,
  MOCO_V2,
  type AugmentConfig,
  type ViewParams,
  type RgbImage,
  type CropBox,
} from './data/augment.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  safeTensor,
  type SafeTensor,
  type SafetensorsFile,
  type SafeDType,
} from '../engine/safetensors.js';
