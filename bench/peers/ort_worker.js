// ONNX Runtime (onnxruntime-node) as a peer for bench/peers/bench_peers.py: one JSON request a line on
// stdin, one JSON answer a line on stdout. Times only session.run; inputs are raw little-endian files.
//   node ort_worker.js ORT_MODULE_DIR IMAGE.onnx TEXT.onnx THREADS
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const [moduleDir, imageModel, textModel, threads] = process.argv.slice(2);
const ort = require(path.join(moduleDir, 'onnxruntime-node'));
const options = { intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
                  executionMode: 'sequential' };

function readTyped(file, Type) {
  const buf = fs.readFileSync(file);
  return new Type(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
}

async function main() {
  const image = await ort.InferenceSession.create(imageModel, options);
  const text = await ort.InferenceSession.create(textModel, options);
  const cache = new Map();
  const load = (file, Type) => {
    if (!cache.has(file)) cache.set(file, readTyped(file, Type));
    return cache.get(file);
  };
  process.stdout.write(JSON.stringify({ ready: true, version: ort.env.versions.common }) + '\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const req = JSON.parse(line);
    let feeds, session;
    if (req.op === 'images') {
      session = image;
      feeds = { pixel_values: new ort.Tensor('float32', load(req.pixels, Float32Array), [req.n, 3, req.size, req.size]) };
    } else {
      session = text;
      const shape = [req.n, req.length];
      const ids = req.cache === false ? readTyped(req.ids, BigInt64Array) : load(req.ids, BigInt64Array);
      const mask = req.cache === false ? readTyped(req.mask, BigInt64Array) : load(req.mask, BigInt64Array);
      feeds = { input_ids: new ort.Tensor('int64', ids, shape), attention_mask: new ort.Tensor('int64', mask, shape) };
    }
    const t0 = process.hrtime.bigint();
    const out = await session.run(feeds);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (req.save) fs.writeFileSync(req.save, Buffer.from(out.features.data.buffer));
    process.stdout.write(JSON.stringify({ s }) + '\n');
  }
}

main().catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
