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

/**
 * The file a request asks for, relative to the project root ({ rel }), or the status that
 * refuses it: 400 for a path that does not decode (one malformed URL must not stop the server),
 * 404 for anything outside web/ and dist/ or a method other than GET and HEAD.
 */
export function requestedFile(url, method) {
  let path;
  try {
    path = decodeURIComponent(new URL(url ?? '/', 'http://x').pathname);
  } catch {
    return { status: 400 };
  }
  if (path.includes('\0')) return { status: 400 };
  const rel = path === '/' ? 'web/index.html' : normalize(path).replace(/^[/\\]+/, '');
  // Only files under web/ and dist/ are served; normalize() has already resolved any '..'.
  if (!SERVED.some((d) => rel.startsWith(d + sep)) || (method !== 'GET' && method !== 'HEAD')) return { status: 404 };
  return { status: 200, rel };
}

/** Starts the server; resolves with it and its URL once it listens. */
export function startServer({ port = 8080, host = '127.0.0.1' } = {}) {
  if (!existsSync(join(root, 'dist/web/app.js'))) {
    throw new Error(
      'dist/web/app.js is missing: build the page first with `node scripts/build-lib.mjs --web` (npm run demo:web does both)',
    );
  }
  const server = createServer(async (req, res) => {
    const asked = requestedFile(req.url, req.method);
    if (!asked.rel) {
      res.writeHead(asked.status).end(asked.status === 400 ? 'bad request' : 'not found');
      return;
    }
    try {
      const body = await readFile(join(root, asked.rel));
      res.writeHead(200, {
        'content-type': TYPES[extname(asked.rel)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
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
