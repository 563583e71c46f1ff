// Forwarding for the two importers other branches own now (models/resnet.ts, models/densecl.ts):
// the conv2d family lives in ./conv2d/. Once they import '../engine/ops/conv2d/index.js', delete this file.
export { conv2d } from './conv2d/index.js';
