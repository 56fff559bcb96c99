// Prints the C++ sources of the CPU addon, one per line, for binding.gyp: every .cc file under
// native/ except the CUDA and fuzzing folders, so adding a kernel file needs no edit to binding.gyp.
const fs = require('node:fs');
const path = require('node:path');
const skip = new Set(['cuda', 'fuzz']);
function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) { if (!skip.has(entry.name)) walk(p); }
    else if (entry.name.endsWith('.cc')) console.log(p.split(path.sep).join('/'));
  }
}
walk('native');
