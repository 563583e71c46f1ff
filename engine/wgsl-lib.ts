// The WGSL snippet library for `//#include "lib/..."` lines (engine/kernel.ts): every file of
// shaders/lib/, bundled as text. A new snippet is one import and one entry here.
import gemmParams from '../shaders/lib/gemm_params.wgsl';

export const WGSL_LIB: Record<string, string> = {
  'lib/gemm_params.wgsl': gemmParams,
};
