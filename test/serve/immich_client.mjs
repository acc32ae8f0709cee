// Speaks Immich's machine-learning protocol as Immich's server does
// (server/src/repositories/machine-learning.repository.ts: Node's built-in fetch, FormData and Blob):
// GET /ping with a timeout, POST /predict with a form of `entries` (JSON.stringify of the request)
// and an `image` Blob of the file's bytes (no file name, no type: FormData names it "blob") or a
// `text` field. Usage: node immich_client.mjs BASE_URL CASES.json; prints one JSON array of results.
import { readFile } from 'node:fs/promises';

const [base, casesPath] = process.argv.slice(2);
const cases = JSON.parse(await readFile(casesPath, 'utf8'));
const results = [];
for (const c of cases) {
  const signal = AbortSignal.timeout(c.timeoutMs ?? 20000);
  let response;
  if (c.path === '/ping') {
    response = await fetch(new URL('/ping', base), { signal });
  } else {
    const formData = new FormData();
    if (c.entries !== undefined) {
      formData.append('entries', typeof c.entries === 'string' ? c.entries : JSON.stringify(c.entries));
    }
    if (c.assetId !== undefined) {
      formData.append('assetId', c.assetId);
    }
    if (c.image !== undefined) {
      const fileBuffer = await readFile(c.image);
      formData.append('image', new Blob([new Uint8Array(fileBuffer)]));
    }
    if (c.text !== undefined) {
      formData.append('text', c.text);
    }
    try {
      response = await fetch(new URL('/predict', base), { method: 'POST', body: formData, signal });
    } catch (error) {
      // What Immich's server logs as "failed: fetch failed": no answer read (e.g. the connection
      // closed by an answer sent before the body was read).
      results.push({ name: c.name, ok: false, status: 0, error: String(error.cause?.code ?? error.message) });
      continue;
    }
  }
  const type = response.headers.get('content-type') ?? '';
  const raw = await response.text();
  let body = raw;
  if (type.startsWith('application/json')) {
    body = JSON.parse(raw);
    // What Immich stores: the `clip` string parsed as the vector it is.
    if (response.ok && typeof body.clip === 'string') {
      body.vector = JSON.parse(body.clip);
    }
  }
  results.push({ name: c.name, ok: response.ok, status: response.status, type, body });
}
process.stdout.write(JSON.stringify(results));
