// Quiver vs ONNX Runtime on the CMS models, same model/inputs/batch/threads, in one run.
// Usage: node bench/ort_compare.js [--quiver build/src/cli/quiver] [--batches 1,64] [--seconds 3]
//        [--threads 1] [--models a,b,...]
// Prints one row per (model, batch) with both throughputs and the ratio, then the geometric means.
const {execFileSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const root = path.resolve(__dirname, '..');
const quiver = path.resolve(opt('--quiver', path.join(root, 'build/src/cli/quiver')));
const hep = path.resolve(root, '../shared/models/hep');
const batches = opt('--batches', '1,64').split(',').map(Number);
const seconds = opt('--seconds', '3');
const threads = opt('--threads', '1');
const models = opt('--models', fs.readdirSync(hep).filter((m) => fs.existsSync(path.join(hep, m, 'model.onnx'))).join(',')).split(',');

const run = (cmd, a) => JSON.parse(execFileSync(cmd, a, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).trim().split('\n').pop());
const rows = [];
console.log(`quiver: ${quiver}\nthreads ${threads}, ${seconds} s per measurement\n`);
console.log('model                          batch   quiver inf/s      ORT inf/s    ratio   quiver p50 us  ORT p50 us');
for (const b of batches) {
  for (const m of models) {
    const file = path.join(hep, m, 'model.onnx');
    if (b !== 1 && m === 'hls4ml_three_layer') continue;  // fixed batch 1
    let q, o;
    try {
      q = run(quiver, ['bench', file, '--batch', String(b), '--threads', threads, '--seconds', seconds, '--json']);
    } catch (e) { console.log(`${m.padEnd(30)} ${String(b).padStart(5)}   quiver failed: ${(e.stderr || e.message).toString().trim().split('\n').pop()}`); continue; }
    try {
      o = run('node', [path.join(__dirname, 'ort/ort_bench.js'), file, String(b), seconds, threads]);
    } catch (e) { console.log(`${m.padEnd(30)} ${String(b).padStart(5)}   ORT failed: ${e.message}`); continue; }
    const ratio = q.inferences_per_s / o.inferences_per_s;
    rows.push({m, b, ratio});
    console.log(`${m.padEnd(30)} ${String(b).padStart(5)} ${q.inferences_per_s.toFixed(1).padStart(14)} ${o.inferences_per_s.toFixed(1).padStart(14)} ${ratio.toFixed(2).padStart(8)} ${q.latency_us.p50.toFixed(1).padStart(14)} ${o.latency_us.p50.toFixed(1).padStart(11)}`);
  }
}
for (const b of batches) {
  const r = rows.filter((x) => x.b === b && x.m !== 'hls4ml_three_layer');
  if (!r.length) continue;
  const g = Math.exp(r.reduce((s, x) => s + Math.log(x.ratio), 0) / r.length);
  console.log(`geometric mean ratio (quiver/ORT) over ${r.length} CMS models at batch ${b}: ${g.toFixed(2)}`);
}
