// quiver compile vs the engine (speed) and vs the engine and ONNX Runtime (memory), in one run.
// Usage (under /work/tools/cpu bench):
//   node bench/aot_compare.js [--build build] [--models a,b] [--batches 1,64] [--seconds 2] [--rounds 5] [--reproducible]
// --reproducible: the models compiled with `quiver compile --reproducible` (checked bitwise against the
// engine's reproducible mode first) against the engine's reproducible mode (`quiver bench
// --reproducible`); the memory part is skipped.
// Each model is compiled and built once (quiver compile --check: it must match the engine first).
// Speed: `quiver bench` on MODEL.onnx and on the compiled libNAME.so, alternating, `--rounds` times per
// batch, same inputs (test_data_set_0 tiled to the batch), one thread; medians with min..max.
// Memory: the RSS a process gains by loading the model and running it once (batch 1): bench/aot_memory
// for the engine and the library, bench/ort/ort_bench.js ... memory for ONNX Runtime; medians of 3.
const {execFileSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const {opt, has} = require('./cli_args').parse(__filename, ['--build', '--batches', '--seconds', '--rounds', '--models'],
                                                ['--reproducible']);
const root = path.resolve(__dirname, '..');
const build = path.resolve(opt('--build', path.join(root, 'build')));
const quiver = path.join(build, 'src/cli/quiver');
const memtool = path.join(build, 'bench/aot_memory');
const hep = path.resolve(root, '../shared/models/hep');
const batches = opt('--batches', '1,64').split(',').map(Number);
const seconds = opt('--seconds', '2');
const rounds = Number(opt('--rounds', '5'));
const models = opt("--models", "hls4ml_three_layer,ticl_supercls,ticl_energy_id,higgs_interaction_net,deepboostedjet_resnet,deepdoublex_bvl_102x,deepdoublex_ddb_94x_unsorted,deepjet_run3,deepvertex_phase1,particlenet_ak4_hlt,particlenet_ak8_hlt").split(',');
const repro = has('--reproducible');
const outDir = path.join(build, repro ? 'bench-aot-repro' : 'bench-aot');

const json = (cmd, a) => JSON.parse(execFileSync(cmd, a, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).trim().split('\n').pop());
const median = (v) => { const s = [...v].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const fmt = (v) => `${median(v).toFixed(0)} [${Math.min(...v).toFixed(0)}..${Math.max(...v).toFixed(0)}]`;

const libs = {};
for (const m of models) {
  const dir = path.join(outDir, m);
  execFileSync(quiver, ['compile', path.join(hep, m, 'model.onnx'), '-o', dir, '--name', m, '--check', ...(repro ? ['--reproducible'] : [])],
               {stdio: ['ignore', 'pipe', 'inherit']});
  libs[m] = path.join(dir, `lib${m}.so`);
}
console.log(`quiver: ${quiver}; 1 thread, ${seconds} s per measurement, ${rounds} alternating rounds${repro ? '; reproducible numerics (engine and compiled)' : ''}\n`);
console.log('model                          batch   engine inf/s [min..max]      aot inf/s [min..max]   aot/engine');
const ratios = {};
for (const b of batches) {
  for (const m of models) {
    if (b !== 1 && m === 'hls4ml_three_layer') continue;  // fixed batch 1
    const file = path.join(hep, m, 'model.onnx');
    const data = path.join(hep, m, 'test_data_set_0');
    const e = [], a = [];
    for (let r = 0; r < rounds; r++) {
      e.push(json(quiver, ['bench', file, '--batch', String(b), '--seconds', seconds, '--json', ...(repro ? ['--reproducible'] : [])]).inferences_per_s);
      a.push(json(quiver, ['bench', libs[m], '--test-data', data, '--batch', String(b), '--seconds', seconds, '--json']).inferences_per_s);
    }
    const ratio = median(a) / median(e);
    (ratios[b] = ratios[b] || []).push(ratio);
    console.log(`${m.padEnd(30)} ${String(b).padStart(5)} ${fmt(e).padStart(25)} ${fmt(a).padStart(25)} ${ratio.toFixed(2).padStart(12)}`);
  }
}
for (const b of batches) {
  const r = ratios[b] || [];
  if (r.length) console.log(`geometric mean aot/engine at batch ${b} over ${r.length} models: ${Math.exp(r.reduce((s, x) => s + Math.log(x), 0) / r.length).toFixed(2)}`);
}
if (repro) process.exit(0);
console.log('\nRSS gained by loading + first run (batch 1), MiB, median of 3:');
console.log('model                             engine      aot      ORT   aot/engine  aot/ORT');
for (const m of models) {
  const file = path.join(hep, m, 'model.onnx');
  const data = path.join(hep, m, 'test_data_set_0');
  const e = [], a = [], o = [];
  for (let r = 0; r < 3; r++) {
    e.push(json(memtool, [file, data, '1']).rss_gain_bytes / 1048576);
    a.push(json(memtool, [libs[m], data, '1']).rss_gain_bytes / 1048576);
    o.push(json('node', [path.join(__dirname, 'ort/ort_bench.js'), file, '1', 'memory', '1']).rss_gain_bytes / 1048576);
  }
  const [me, ma, mo] = [median(e), median(a), median(o)];
  console.log(`${m.padEnd(30)} ${me.toFixed(1).padStart(8)} ${ma.toFixed(1).padStart(8)} ${mo.toFixed(1).padStart(8)} ${(ma / me).toFixed(2).padStart(11)} ${(ma / mo).toFixed(2).padStart(8)}`);
}
