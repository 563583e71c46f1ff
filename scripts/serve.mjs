// A small static server for the demo page (node:http, localhost only):
//   /             web/index.html
//   /web/...      the page's files
//   /dist/...     the package builds (the page loads /dist/web/app.js, which imports /dist/browser)
// Usage: node scripts/serve.mjs [--port N]   (default 8080, PORT in the environment, 0 = any free port)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, normalize, extname, sep } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
};
const SERVED = ['web', 'dist'];

/** Starts the server; resolves with it and its URL once it listens. */
export function startServer({ port = 8080, host = '127.0.0.1' } = {}) {
  if (!existsSync(join(root, 'dist/web/app.js'))) {
    throw new Error('dist/web/app.js is missing: build the page first with `node scripts/build-lib.mjs --web` (npm run demo:web does both)');
  }
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const rel = path === '/' ? 'web/index.html' : normalize(path).replace(/^[/\\]+/, '');
    // Only files under web/ and dist/ are served; normalize() has already resolved any '..'.
    if (!SERVED.some((d) => rel.startsWith(d + sep)) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end('not found');
      return;
    }
    try {
      const body = await readFile(join(root, rel));
      res.writeHead(200, { 'content-type': TYPES[extname(rel)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({ server, port: actual, url: `http://localhost:${actual}/` });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--port');
  const port = Number(i > 0 ? process.argv[i + 1] : (process.env.PORT ?? 8080));
  try {
    const { url } = await startServer({ port });
    console.log(`serving the demo at ${url}  (Chrome/Edge 113+ with WebGPU; Ctrl-C stops)`);
  } catch (e) {
    console.error(`serve: ${e.code === 'EADDRINUSE' ? `port ${port} is in use; pass --port N` : e.message}`);
    process.exit(1);
  }
}
