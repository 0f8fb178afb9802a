// Command-line options of the bench scripts (ort_compare.js, aot_compare.js). --help prints the
// script's leading comment; an option the script does not name is refused: neither starts a run,
// which takes minutes of every core and whose timings are void unless the machine was quiet.
const fs = require('fs');

// `valued`: options followed by a value; `flags`: options without one. Returns opt(name, default)
// and has(flag).
function parse(file, valued, flags) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const usage = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
    console.log(usage.map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  }
  for (let i = 0; i < args.length; ++i) {
    if (valued.includes(args[i]) && i + 1 < args.length) ++i;
    else if (!flags.includes(args[i])) {
      console.error(`${file.split('/').pop()}: unknown option or missing value: ${args[i]} (--help lists the options)`);
      process.exit(2);
    }
  }
  return {
    opt: (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; },
    has: (flag) => args.includes(flag),
  };
}

module.exports = {parse};
