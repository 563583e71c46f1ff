// Package entry "densecl-webgpu/models": ResNet, MoCo-v2 and DenseCL built from engine ops.
export { DenseCL, type DenseCLConfig, type Method, type StepOutput } from './densecl.js';
export { ResNet, type Arch, type ResNetConfig } from './resnet.js';
export {
  ModelState,
  kaimingNormal,
  torchDefaultUniform,
  constant,
  normal,
  type ParamSpec,
  type BufferSpec,
} from './state.js';
export { pixelCrossEntropy, type PixelCrossEntropyOptions } from './ops/pixel_cross_entropy.js';
