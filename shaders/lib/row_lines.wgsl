// The lines of an [outer, R, inner] view reduced along R, one invocation each (the including
// shader's params has outer, reduce and inner): line n starts at line_start(n), and its element
// r is params.inner further per step of r.
fn line_count() -> u32 { return params.outer * params.inner; }
fn line_start(n: u32) -> u32 { return (n / params.inner) * params.reduce * params.inner + n % params.inner; }
