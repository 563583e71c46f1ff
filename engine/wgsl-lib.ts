// The WGSL snippet library for `//#include "lib/..."` lines (engine/kernel.ts): every file of
// shaders/lib/, bundled as text. A new snippet is one import and one entry here.
import bnBlocks from '../shaders/lib/bn_blocks.wgsl';
import bnChunkMoments from '../shaders/lib/bn_chunk_moments.wgsl';
import bnGradDz from '../shaders/lib/bn_grad_dz.wgsl';
import conv2dCore from '../shaders/lib/conv2d_core.wgsl';
import conv2dRelayout from '../shaders/lib/conv2d_relayout.wgsl';
import conv2dWgrad from '../shaders/lib/conv2d_wgrad.wgsl';
import conv2dWindow from '../shaders/lib/conv2d_window.wgsl';
import gemmParams from '../shaders/lib/gemm_params.wgsl';
import rowLines from '../shaders/lib/row_lines.wgsl';
import subgroup8 from '../shaders/lib/subgroup8.wgsl';

export const WGSL_LIB: Record<string, string> = {
  'lib/bn_blocks.wgsl': bnBlocks,
  'lib/bn_chunk_moments.wgsl': bnChunkMoments,
  'lib/bn_grad_dz.wgsl': bnGradDz,
  'lib/conv2d_core.wgsl': conv2dCore,
  'lib/conv2d_relayout.wgsl': conv2dRelayout,
  'lib/conv2d_wgrad.wgsl': conv2dWgrad,
  'lib/conv2d_window.wgsl': conv2dWindow,
  'lib/gemm_params.wgsl': gemmParams,
  'lib/row_lines.wgsl': rowLines,
  'lib/subgroup8.wgsl': subgroup8,
};
