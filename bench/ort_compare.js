// Quiver vs ONNX Runtime on the CMS models, same model/inputs/batch/threads, in one run.
// Usage: node bench/ort_compare.js [--quiver build/src/cli/quiver] [--batches 1,64] [--seconds 3]
//        [--threads 1] [--models a,b,...] [--runs 5] [--reproducible | --first-call]
// Both sides measure a warmed state (20 calls on the measured session/state before its window) over
// a window of at least --seconds and 20 calls. Each (model, batch) point is --runs rounds, quiver and
// ORT alternating (the order flips each round, so drift hits both sides alike); a row shows the
// medians with the spread (min-max) of throughput, the throughput ratio and the p50 ratio
// (ORT p50 / quiver p50: > 1 means quiver is faster either way), and each side's first call of a
// fresh state. Then the geometric means of both ratios per batch.
// --first-call: only the first call, each round a fresh process per side (the window shrinks to the
// 20-call minimum): quiver's first call of a fresh state (in a fresh process: it includes one-time
// process work such as oneDNN's first GEMM), quiver's first call of a state sized ahead by
// prepare_state (what a server/flow/client instance pays after sizing at load), and ORT's first run
// after InferenceSession creation; medians [min-max] of --runs rounds, the warm p50 of each side for
// scale, and ORT first / quiver prepared first (> 1: quiver's first production call is faster).
// --reproducible adds a third side to every round, Quiver in reproducible numerics
// (`quiver bench --reproducible`, the order of the three rotating each round): its median throughput
// [spread] and p50, its cost against the default mode (default / reproducible throughput and
// reproducible / default p50: how many times slower) and its ratios to ORT (throughput and p50, > 1
// means reproducible quiver is faster); then their geometric means per batch.
const {execFileSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const {opt, has} = require('./cli_args').parse(__filename, ['--quiver', '--batches', '--seconds', '--threads', '--models', '--runs'],
                                                ['--reproducible', '--first-call']);
const root = path.resolve(__dirname, '..');
const quiver = path.resolve(opt('--quiver', path.join(root, 'build/src/cli/quiver')));
const hep = path.resolve(root, '../shared/models/hep');
const batches = opt('--batches', '1,64').split(',').map(Number);
const seconds = opt('--seconds', '3');
if (!(parseFloat(seconds) >= 3) && !has('--first-call')) console.log(`note: --seconds ${seconds} is under the 3 s an honest point needs`);
const threads = opt('--threads', '1');
const runs = parseInt(opt('--runs', '5'));
if (!(runs >= 5)) console.log(`note: --runs ${runs} is under the 5 alternating rounds an honest point needs`);
const repro = has('--reproducible');
const models = opt('--models', fs.readdirSync(hep).filter((m) => fs.existsSync(path.join(hep, m, 'model.onnx'))).join(',')).split(',');

const run = (cmd, a) => JSON.parse(execFileSync(cmd, a, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).trim().split('\n').pop());
const median = (v) => { const s = [...v].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const spread = (v, d = 0) => `${Math.min(...v).toFixed(d)}-${Math.max(...v).toFixed(d)}`;
const firstCall = has('--first-call');
if (firstCall) {
  console.log(`quiver: ${quiver}\nfirst calls, ${runs} alternating rounds per point (fresh process per side and round), medians [min-max]\n`);
  console.log('model                          batch  quiver fresh 1st us  quiver prepared 1st us       ORT 1st us   quiver / ORT warm p50 us  ORT 1st / quiver prepared 1st');
  for (const b of batches) {
    for (const m of models) {
      if (b !== 1 && m === 'hls4ml_three_layer') continue;
      const file = path.join(hep, m, 'model.onnx');
      const qs = [], os = [];
      for (let r = 0; r < runs; r++) {
        const q = () => qs.push(run(quiver, ['bench', file, '--batch', String(b), '--threads', threads, '--seconds', '0.01', '--json']));
        const o = () => os.push(run('node', [path.join(__dirname, 'ort/ort_bench.js'), file, String(b), '0.01', threads]));
        if (r % 2) { o(); q(); } else { q(); o(); }
      }
      const cell = (v) => `${median(v).toFixed(0)} [${spread(v)}]`;
      const qf = qs.map((x) => x.first_call_us), qp = qs.map((x) => x.prepared_first_call_us), of = os.map((x) => x.first_call_us);
      console.log(`${m.padEnd(30)} ${String(b).padStart(5)} ${cell(qf).padStart(20)} ${cell(qp).padStart(23)} ${cell(of).padStart(16)} ` +
                  `${`${median(qs.map((x) => x.latency_us.p50)).toFixed(1)} / ${median(os.map((x) => x.latency_us.p50)).toFixed(1)}`.padStart(25)} ` +
                  `${(median(of) / median(qp)).toFixed(2).padStart(30)}`);
    }
  }
  process.exit(0);
}
const rows = [];
console.log(`quiver: ${quiver}\nthreads ${threads}, ${seconds} s (and >= 20 calls) per measurement, ${runs} alternating rounds per point, medians [min-max]\n`);
console.log('model                          batch   quiver inf/s [spread]        ORT inf/s [spread]  thr ratio  quiver p50 us  ORT p50 us  p50 ratio  1st call us quiver / ORT' +
            (repro ? '    repro inf/s [spread]  repro p50 us  repro cost thr / p50  repro/ORT thr / p50' : ''));
for (const b of batches) {
  for (const m of models) {
    const file = path.join(hep, m, 'model.onnx');
    if (b !== 1 && m === 'hls4ml_three_layer') continue;  // fixed batch 1
    const qbench = ['bench', file, '--batch', String(b), '--threads', threads, '--seconds', seconds, '--json'];
    const qs = [], os = [], rs = [];
    const side = {
      quiver: () => qs.push(run(quiver, qbench)),
      ORT: () => os.push(run('node', [path.join(__dirname, 'ort/ort_bench.js'), file, String(b), seconds, threads])),
      reproducible: () => rs.push(run(quiver, [...qbench, '--reproducible'])),
    };
    const names = repro ? ['quiver', 'ORT', 'reproducible'] : ['quiver', 'ORT'];
    let failed = null;
    for (let r = 0; r < runs && !failed; r++) {
      // two sides: flip each round; three: rotate, so each side goes first, middle and last alike
      const order = repro ? names.map((_, i) => names[(i + r) % 3]) : (r % 2 ? ['ORT', 'quiver'] : ['quiver', 'ORT']);
      for (const name of order) {
        try { side[name](); } catch (e) { failed = `${name} failed: ${(e.stderr || e.message).toString().trim().split('\n').pop()}`; break; }
      }
    }
    if (failed) { console.log(`${m.padEnd(30)} ${String(b).padStart(5)}   ${failed}`); continue; }
    const qi = qs.map((x) => x.inferences_per_s), oi = os.map((x) => x.inferences_per_s);
    const qp = median(qs.map((x) => x.latency_us.p50)), op = median(os.map((x) => x.latency_us.p50));
    const ratio = median(qi) / median(oi), p50ratio = op / qp;
    const row = {m, b, ratio, p50ratio};
    const qf = median(qs.map((x) => x.first_call_us)), of = median(os.map((x) => x.first_call_us));
    let extra = '';
    if (repro) {
      const ri = rs.map((x) => x.inferences_per_s), rp = median(rs.map((x) => x.latency_us.p50));
      Object.assign(row, {cost: median(qi) / median(ri), pcost: rp / qp, rratio: median(ri) / median(oi), rp50ratio: op / rp});
      extra = ` ${`${median(ri).toFixed(1)} [${spread(ri)}]`.padStart(23)} ${rp.toFixed(1).padStart(13)} ${`${row.cost.toFixed(2)} / ${row.pcost.toFixed(2)}`.padStart(21)}` +
              ` ${`${row.rratio.toFixed(2)} / ${row.rp50ratio.toFixed(2)}`.padStart(20)}`;
    }
    rows.push(row);
    console.log(`${m.padEnd(30)} ${String(b).padStart(5)} ${`${median(qi).toFixed(1)} [${spread(qi)}]`.padStart(24)} ${`${median(oi).toFixed(1)} [${spread(oi)}]`.padStart(24)} ` +
                `${ratio.toFixed(2).padStart(10)} ${qp.toFixed(1).padStart(14)} ${op.toFixed(1).padStart(11)} ${p50ratio.toFixed(2).padStart(10)}  ${qf.toFixed(0).padStart(10)} / ${of.toFixed(0)}${extra}`);
  }
}
const geo = (r, k) => Math.exp(r.reduce((s, x) => s + Math.log(x[k]), 0) / r.length);
for (const b of batches) {
  const r = rows.filter((x) => x.b === b && x.m !== 'hls4ml_three_layer');
  if (!r.length) continue;
  console.log(`geometric mean (quiver/ORT) over ${r.length} CMS models at batch ${b}: throughput ${geo(r, 'ratio').toFixed(2)}, p50 ${geo(r, 'p50ratio').toFixed(2)}`);
  if (repro) {
    // over the CMS models as above, and over every model measured at this batch (hls4ml_three_layer too)
    for (const [set, what] of [[r, 'CMS models'], [rows.filter((x) => x.b === b), 'models (all measured)']]) {
      console.log(`reproducible mode at batch ${b} over ${set.length} ${what} (geometric means): cost vs default ${geo(set, 'cost').toFixed(2)}x throughput, ` +
                  `${geo(set, 'pcost').toFixed(2)}x p50; reproducible quiver/ORT: throughput ${geo(set, 'rratio').toFixed(2)}, p50 ${geo(set, 'rp50ratio').toFixed(2)}`);
    }
  }
}
