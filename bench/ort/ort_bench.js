// The peer: ONNX Runtime (CPU, npm onnxruntime-node) on the same model, inputs, batch and threads.
// Inputs: the model's test_data_set_0 (ONNX TensorProto files, decoded with protobufjs from Debian's
// onnx.proto), tiled along dim 0 to the batch, exactly as `quiver bench` does.
// Timing: a tight loop around session.run only; Node's own overhead per call is reported separately
// (a loop around an already-resolved promise) so it can be judged.
// Usage: node ort_bench.js MODEL.onnx BATCH SECONDS [THREADS]  -> one JSON line.
//        node ort_bench.js MODEL.onnx BATCH memory [THREADS]  -> the RSS the process gains from
//        InferenceSession creation + the first run (inputs already read), one JSON line.
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const protobuf = require('protobufjs');

const [modelPath, batchArg, secondsArg, threadsArg] = process.argv.slice(2);
const batch = parseInt(batchArg || '1');
const seconds = parseFloat(secondsArg || '3');
const threads = parseInt(threadsArg || '1');

const root = protobuf.loadSync('/usr/include/onnx/onnx.proto');
const TensorProto = root.lookupType('onnx.TensorProto');
const TYPES = {1: ['float32', Float32Array, 4], 6: ['int32', Int32Array, 4], 7: ['int64', BigInt64Array, 8],
               9: ['bool', Uint8Array, 1], 11: ['float64', Float64Array, 8], 2: ['uint8', Uint8Array, 1],
               3: ['int8', Int8Array, 1]};

function readTensor(file) {
  const p = TensorProto.decode(fs.readFileSync(file));
  const [type, Arr, size] = TYPES[p.dataType];
  const dims = p.dims.map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  let data;
  if (p.rawData && p.rawData.length) {
    const buf = Buffer.from(p.rawData);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    data = new Arr(ab);
  } else if (p.dataType === 1) data = Float32Array.from(p.floatData);
  else if (p.dataType === 7) data = BigInt64Array.from(p.int64Data.map((x) => BigInt(x.toString())));
  else data = Arr.from(p.int32Data);
  if (data.length !== n) throw new Error(`${file}: ${data.length} values for ${dims}`);
  return {name: p.name, type, dims, data, Arr};
}

function tile(t, b) {
  if (t.dims.length === 0 || t.dims[0] === b || t.dims[0] === 0) return t;
  const rows = t.dims[0];
  const per = t.data.length / rows;
  const out = new t.Arr(per * b);
  for (let i = 0; i < b; i++) out.set(t.data.subarray((i % rows) * per, (i % rows + 1) * per), i * per);
  return {...t, dims: [b, ...t.dims.slice(1)], data: out};
}

async function main() {
  const dir = path.join(path.dirname(modelPath), 'test_data_set_0');
  const files = fs.readdirSync(dir).filter((f) => /^input_\d+\.pb$/.test(f))
      .sort((a, b) => parseInt(a.match(/\d+/)[0]) - parseInt(b.match(/\d+/)[0]));
  const tensors = files.map((f) => {
    const t = readTensor(path.join(dir, f));
    const fixedBatch = t.dims[0] === 1 && batch !== 1 && /hls4ml/.test(modelPath);
    return fixedBatch ? t : tile(t, batch);
  });
  const rss0 = process.memoryUsage().rss;
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential'});
  const feeds = {};
  tensors.forEach((t, i) => { feeds[session.inputNames[i]] = new ort.Tensor(t.type, t.data, t.dims); });
  if (secondsArg === 'memory') {
    await session.run(feeds);
    console.log(JSON.stringify({peer: 'onnxruntime-node', model: modelPath, batch,
      rss_gain_bytes: process.memoryUsage().rss - rss0}));
    return;
  }
  // The first call of the fresh session, timed on its own (quiver bench reports the same), then the
  // same 20 warm-up calls quiver bench gives each measured state.
  const f0 = process.hrtime.bigint();
  await session.run(feeds);
  const firstCallUs = Number(process.hrtime.bigint() - f0) / 1e3;
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const lat = [];
  const stopAt = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  let t0 = start;
  let calls = 0;
  for (;;) {
    await session.run(feeds);
    const t1 = process.hrtime.bigint();
    lat.push(Number(t1 - t0) / 1e3);
    t0 = t1;
    calls++;
    if (t1 >= stopAt && calls >= 20) break;  // at least 20 calls, as quiver bench
  }
  const secs = Number(t0 - start) / 1e9;
  // Node's share: the same loop shape around a resolved promise.
  let n0 = process.hrtime.bigint();
  const N = 200000;
  for (let i = 0; i < N; i++) await Promise.resolve(i);
  const nodeOverheadUs = Number(process.hrtime.bigint() - n0) / 1e3 / N;
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p / 100 * lat.length))];
  console.log(JSON.stringify({peer: 'onnxruntime-node ' + require('onnxruntime-node/package.json').version,
    model: modelPath, batch, threads, seconds: secs, calls, inferences_per_s: calls / secs,
    latency_us: {p50: q(50), p90: q(90), p99: q(99)}, first_call_us: firstCallUs, warmup_calls: 20, node_loop_overhead_us: nodeOverheadUs,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024}));
}
main().catch((e) => { console.error(e.message); process.exit(1); });
