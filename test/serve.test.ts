// The demo page's server (scripts/serve.mjs): which requests it serves, and that a malformed
// URL is answered 400 instead of throwing (decodeURIComponent throws, and the unhandled
// rejection used to end the server).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

interface Serve {
  requestedFile(url: string, method: string): { status: number; rel?: string };
}

const t = suite('demo server');

t('malformed or NUL-bearing paths are 400, paths outside web/ and dist/ 404, the rest served', async () => {
  // Loaded at run time from the source tree (bundled, its "started as a program" check would start
  // a server), inside the test: a top-level await would make uvu run the suites twice.
  const serve = (await import(new URL('../../scripts/serve.mjs', import.meta.url).href)) as Serve;
  assert.equal(serve.requestedFile('/%E0%A4%A', 'GET'), { status: 400 });
  assert.equal(serve.requestedFile('/web/%00x', 'GET'), { status: 400 });
  assert.equal(serve.requestedFile('/../etc/passwd', 'GET'), { status: 404 });
  assert.equal(serve.requestedFile('/dist/x%2F..%2F..%2Fetc', 'GET'), { status: 404 });
  assert.equal(serve.requestedFile('/web/app.css', 'POST'), { status: 404 });
  assert.equal(serve.requestedFile('/', 'GET'), { status: 200, rel: 'web/index.html' });
  assert.equal(serve.requestedFile('/dist/web/app.js', 'HEAD'), { status: 200, rel: 'dist/web/app.js' });
});

t.run();
