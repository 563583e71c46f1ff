// esbuild loads .wgsl files as text (see scripts/build.mjs).
declare module '*.wgsl' {
  const source: string;
  export default source;
}
