// The WGSL snippet library for `//#include "lib/..."` lines (engine/kernel.ts): every file of
// shaders/lib/, bundled as text. A new snippet is one import and one entry here.
import bnApplyBlock from '../shaders/lib/bn_apply_block.wgsl';
import bnBlocks from '../shaders/lib/bn_blocks.wgsl';
import bnChunkMoments from '../shaders/lib/bn_chunk_moments.wgsl';
import bnGradCoef from '../shaders/lib/bn_grad_coef.wgsl';
import bnGradDz from '../shaders/lib/bn_grad_dz.wgsl';
import bnGradInputBlock from '../shaders/lib/bn_grad_input_block.wgsl';
import bnGradPartials from '../shaders/lib/bn_grad_partials.wgsl';
import bnGroupStats from '../shaders/lib/bn_group_stats.wgsl';
import bnMomentPartials from '../shaders/lib/bn_moment_partials.wgsl';
import conv2dCore from '../shaders/lib/conv2d_core.wgsl';
import conv2dRelayout from '../shaders/lib/conv2d_relayout.wgsl';
import conv2dWgrad from '../shaders/lib/conv2d_wgrad.wgsl';
import conv2dWindow from '../shaders/lib/conv2d_window.wgsl';
import entryTable from '../shaders/lib/entry_table.wgsl';
import gemmParams from '../shaders/lib/gemm_params.wgsl';
import gradScale from '../shaders/lib/grad_scale.wgsl';
import halfPair from '../shaders/lib/half_pair.wgsl';
import outScale from '../shaders/lib/out_scale.wgsl';
import rowLines from '../shaders/lib/row_lines.wgsl';
import subgroup8 from '../shaders/lib/subgroup8.wgsl';

export const WGSL_LIB: Record<string, string> = {
  'lib/bn_apply_block.wgsl': bnApplyBlock,
  'lib/bn_blocks.wgsl': bnBlocks,
  'lib/bn_chunk_moments.wgsl': bnChunkMoments,
  'lib/bn_grad_coef.wgsl': bnGradCoef,
  'lib/bn_grad_dz.wgsl': bnGradDz,
  'lib/bn_grad_input_block.wgsl': bnGradInputBlock,
  'lib/bn_grad_partials.wgsl': bnGradPartials,
  'lib/bn_group_stats.wgsl': bnGroupStats,
  'lib/bn_moment_partials.wgsl': bnMomentPartials,
  'lib/conv2d_core.wgsl': conv2dCore,
  'lib/conv2d_relayout.wgsl': conv2dRelayout,
  'lib/conv2d_wgrad.wgsl': conv2dWgrad,
  'lib/conv2d_window.wgsl': conv2dWindow,
  'lib/entry_table.wgsl': entryTable,
  'lib/gemm_params.wgsl': gemmParams,
  'lib/grad_scale.wgsl': gradScale,
  'lib/half_pair.wgsl': halfPair,
  'lib/out_scale.wgsl': outScale,
  'lib/row_lines.wgsl': rowLines,
  'lib/subgroup8.wgsl': subgroup8,
};
