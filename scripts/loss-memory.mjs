// Builds scripts/loss-memory.ts and runs it (scripts/lib/run-ts.mjs).
import { runTypeScript } from './lib/run-ts.mjs';

await runTypeScript('loss-memory');
