// Browser bundle size of a comparable small app on Syncline, Yjs + y-websocket (+ y-indexeddb)
// and TinyBase (MergeableStore + IndexedDB persister + WebSocket synchronizer client).
//
//   npm run bench:bundle            (runs `tsc -b packages/client` first: Syncline is bundled from its built dist/)
//   node bench/bundle-size.mjs --no-build
//
// Each entry in bench/bundles/ is bundled with esbuild (bundle, minify, esm, browser, es2022,
// tree shaking) through normal package resolution, so @syncline/client resolves to
// packages/client/dist via its package.json "exports". Sizes are the minified output's bytes
// and its gzip (level 9) bytes. The largest inputs of the Syncline bundle come from esbuild's
// metafile (bytes each input contributes to the minified output).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const entries = [
  { name: 'Syncline (@syncline/client)', file: 'syncline.mjs', packages: ['@syncline/client', '@syncline/core', 'idb', 'yjs'] },
  { name: 'Yjs + y-websocket + y-indexeddb', file: 'yjs.mjs', packages: ['yjs', 'y-websocket', 'y-indexeddb'] },
  { name: 'TinyBase (MergeableStore + IndexedDB persister + WS synchronizer)', file: 'tinybase.mjs', packages: ['tinybase'] },
];
// The same Syncline entry with yjs left out of the bundle (external): what Syncline's own code
// and idb weigh. Not a runnable bundle; shown because Yjs (and the lib0 it imports) comes in
// through crdt fields (core's record-state), which the schema decides at run time.
const withoutYjs = { name: 'Syncline, yjs external (not runnable: its own code + idb)', file: 'syncline.mjs', packages: ['@syncline/client', '@syncline/core', 'idb'], external: ['yjs'] };

if (!process.argv.includes('--no-build')) {
  execFileSync('npx', ['tsc', '-b', 'packages/client'], { cwd: root, stdio: 'inherit' }); // and core, its reference
}

function version(pkg) {
  // The installed package.json above the resolved entry (some packages do not export it). Resolved
  // from bench/, as the entries in bench/bundles/ are.
  let dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
  for (;;) {
    try {
      const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (json.name === pkg) return json.version;
    } catch {
      // no package.json here: go up
    }
    const up = dirname(dir);
    if (up === dir) return '?';
    dir = up;
  }
}

/** The package an input path belongs to: node_modules/<pkg> or packages/<name> (a workspace). */
function packageOf(path) {
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = path.slice(nm + 'node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const ws = /^packages\/([^/]+)\//.exec(path);
  if (ws) return `@syncline/${ws[1]}`;
  return path;
}

const fmt = (n) => n.toLocaleString('en-US');

const results = [];
for (const entry of [...entries, withoutYjs]) {
  const entryPath = join(here, 'bundles', entry.file);
  const out = await esbuild.build({
    entryPoints: [entryPath],
    absWorkingDir: root,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    treeShaking: true,
    external: entry.external ?? [],
    outfile: join(here, 'bundles', 'out', entry.file.replace('.mjs', '.js')), // not written
    write: false,
    metafile: true,
    logLevel: 'warning',
  });
  const js = out.outputFiles[0];
  const bytes = js.contents;
  const gzip = gzipSync(bytes, { level: 9 }).length;
  const output = Object.entries(out.metafile.outputs).find(([path]) => path.endsWith('.js'))[1];
  const inputs = Object.entries(output.inputs).map(([path, info]) => ({ path, bytes: info.bytesInOutput }));
  const versions = entry.packages.map((p) => `${p} ${version(p)}`).join(', ');
  results.push({ ...entry, min: bytes.length, gzip, inputs, versions });
}

console.log(`esbuild ${esbuild.version}: bundle, minify, format esm, platform browser, target es2022, tree shaking; gzip level 9\n`);
console.log('| app | packages | minified bytes | gzip bytes |');
console.log('| --- | --- | --- | --- |');
for (const r of results) console.log(`| ${r.name} | ${r.versions} | ${fmt(r.min)} | ${fmt(r.gzip)} |`);

const [syncline, yjs, tinybase] = results;
const others = [yjs, tinybase];
console.log('');
for (const other of others) {
  const name = other === yjs ? 'Yjs' : 'TinyBase';
  console.log(`Syncline / ${name}: ${(syncline.min / other.min).toFixed(2)}x minified, ${(syncline.gzip / other.gzip).toFixed(2)}x gzip`);
}

for (const r of results.slice(0, 3)) {
  const byPackage = new Map();
  for (const input of r.inputs) byPackage.set(packageOf(input.path), (byPackage.get(packageOf(input.path)) ?? 0) + input.bytes);
  const total = r.inputs.reduce((sum, i) => sum + i.bytes, 0);
  console.log(`\n${r.name}: minified bytes by package (esbuild metafile, bytes in output)`);
  for (const [pkg, bytes] of [...byPackage].sort((a, b) => b[1] - a[1])) {
    if (bytes === 0) continue;
    console.log(`  ${pkg.padEnd(40)} ${fmt(bytes).padStart(9)}  ${((100 * bytes) / total).toFixed(1).padStart(5)}%`);
  }
  if (r !== syncline) continue;
  console.log(`\n${r.name}: the 25 largest inputs`);
  for (const input of [...r.inputs].sort((a, b) => b.bytes - a.bytes).slice(0, 25)) {
    console.log(`  ${input.path.padEnd(60)} ${fmt(input.bytes).padStart(9)}`);
  }
}
