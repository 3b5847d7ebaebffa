#!/usr/bin/env node
// Builds the Tailscale client wasm (our Go main in this folder, GOOS=js GOARCH=wasm) into
// wasm/dist/tailscale/: tailscale.wasm (+ .gz/.br), the matching wasm_exec.js, build-info.json.
//
//   node wasm/tailscale/build.mjs [--out DIR] [--wasm-opt] [--force] [--quiet]
//   (LINUX_VM_WASM_OPT=1 in the environment also runs wasm-opt; off by default: measured on this build it
//   shrinks the raw file 8 % but the brotli file not at all, for ~150 s of CPU)
//
// Results are cached under ~/.cache/linux-vm/wasm/<hash>/, the hash covering go.mod, go.sum, every
// .go file here, the Go version and its wasm_exec.js, the build flags and the wasm-opt version, so a
// rebuild with unchanged inputs only copies files. Importable: `buildTailscaleWasm(options)`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import { publishCached } from '../publish-cached.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const BUILD_SCRIPT_VERSION = 1;

/** Features of tailscale.com that stay linked; every other omittable feature gets its ts_omit_ tag. */
export const KEEP_FEATURES = ['dns', 'health', 'netstack', 'useexitnode'];
const BASE_TAGS = ['netgo', 'osusergo', 'omitidna', 'omitpemdecrypt'];
const LDFLAGS = '-s -w';
const WASM_OPT_ARGS = ['--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext', '-Oz'];

function run(cmd, args, { env = {}, cwd = here, capture = true } = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', ...env },
    encoding: 'utf8',
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    maxBuffer: 64 << 20,
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr ?? ''}`);
  return (r.stdout ?? '').trim();
}

function goSources(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) goSources(p, out);
    else if (e.name.endsWith('.go') || e.name === 'go.mod' || e.name === 'go.sum') out.push(p);
  }
  return out.sort();
}

function tailscaleVersion() {
  return /^\s*(?:require\s+)?tailscale\.com (v\S+)/m.exec(readFileSync(join(here, 'go.mod'), 'utf8'))?.[1] ?? '?';
}

function wasmOptVersion() {
  const r = spawnSync('wasm-opt', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function sizesOf(file) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 });
  const br = brotliCompressSync(raw, {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: raw.length },
  });
  return { raw: raw.length, gz, br };
}

/**
 * Builds (or takes from the cache) the Tailscale wasm and copies it to `outDir`.
 * @returns {{ outDir: string, cacheDir: string, cached: boolean, info: object }}
 */
export function buildTailscaleWasm({
  outDir = join(repoRoot, 'wasm', 'dist', 'tailscale'),
  wasmOpt = process.env.LINUX_VM_WASM_OPT === '1',
  force = false,
  log = (s) => process.stderr.write(`[tailscale-wasm] ${s}\n`),
} = {}) {
  const goVersion = run('go', ['version']);
  const goroot = run('go', ['env', 'GOROOT']);
  const wasmExec = join(goroot, 'lib', 'wasm', 'wasm_exec.js');
  const optVersion = wasmOpt ? wasmOptVersion() : null;

  const h = createHash('sha256');
  h.update(JSON.stringify({ BUILD_SCRIPT_VERSION, goVersion, KEEP_FEATURES, BASE_TAGS, LDFLAGS, optVersion, WASM_OPT_ARGS }));
  h.update(readFileSync(wasmExec));
  for (const f of goSources(here)) {
    h.update(`\0${relative(here, f)}\0`);
    h.update(readFileSync(f));
  }
  const hash = h.digest('hex').slice(0, 24);
  const cacheRoot = join(homedir(), '.cache', 'linux-vm', 'wasm');
  const cacheDir = join(cacheRoot, `tailscale-${hash}`);
  let cached = existsSync(join(cacheDir, 'build-info.json')) && !force;

  if (!cached) {
    const started = Date.now();
    const tmp = join(cacheRoot, `.tmp-tailscale-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    try {
      log(`building (${goVersion}; tailscale.com ${tailscaleVersion()}) …`);
      const omit = run('go', ['run', './cmd/omittags', ...KEEP_FEATURES], { env: { GOOS: '', GOARCH: '' } });
      const tags = [...BASE_TAGS, ...omit.split(',').filter(Boolean)].join(',');
      const rawFile = join(tmp, 'tailscale.raw.wasm');
      run('go', ['build', '-p', '2', '-trimpath', `-ldflags=${LDFLAGS}`, '-tags', tags, '-o', rawFile, '.'], {
        env: { GOOS: 'js', GOARCH: 'wasm', CGO_ENABLED: '0' },
      });
      const goBuildSeconds = (Date.now() - started) / 1000;
      const rawSize = statSync(rawFile).size;
      log(`go build: ${(rawSize / 1e6).toFixed(1)} MB in ${goBuildSeconds.toFixed(0)} s`);
      const final = join(tmp, 'tailscale.wasm');
      let optimized = false;
      let wasmOptSeconds = null;
      if (optVersion) {
        const t0 = Date.now();
        log(`wasm-opt ${WASM_OPT_ARGS.join(' ')} …`);
        run('wasm-opt', [...WASM_OPT_ARGS, rawFile, '-o', final]);
        wasmOptSeconds = (Date.now() - t0) / 1000;
        if (statSync(final).size < rawSize) optimized = true;
        else rmSync(final);
      } else if (wasmOpt) {
        log('wasm-opt not found (Debian package binaryen): shipping the go build output as is');
      }
      if (!optimized) renameSync(rawFile, final);
      else rmSync(rawFile);
      copyFileSync(wasmExec, join(tmp, 'wasm_exec.js'));
      const s = sizesOf(final);
      writeFileSync(join(tmp, 'tailscale.wasm.gz'), s.gz);
      writeFileSync(join(tmp, 'tailscale.wasm.br'), s.br);
      const info = {
        hash,
        goVersion,
        tailscale: tailscaleVersion(),
        keepFeatures: KEEP_FEATURES,
        tags,
        ldflags: LDFLAGS,
        wasmOpt: optimized ? `${optVersion} ${WASM_OPT_ARGS.join(' ')}` : null,
        sizes: { goBuild: rawSize, raw: s.raw, gzip: s.gz.length, brotli: s.br.length },
        seconds: { goBuild: goBuildSeconds, wasmOpt: wasmOptSeconds, total: (Date.now() - started) / 1000 },
        builtAt: new Date().toISOString(),
      };
      writeFileSync(join(tmp, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
      rmSync(cacheDir, { recursive: true, force: true });
      renameSync(tmp, cacheDir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  publishCached(cacheDir, outDir, ['tailscale.wasm', 'tailscale.wasm.gz', 'tailscale.wasm.br', 'wasm_exec.js', 'build-info.json']);
  const info = JSON.parse(readFileSync(join(cacheDir, 'build-info.json'), 'utf8'));
  const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
  log(`${cached ? 'cached' : 'built'}: ${outDir}/tailscale.wasm ${mb(info.sizes.raw)} raw, ${mb(info.sizes.gzip)} gzip, ${mb(info.sizes.brotli)} brotli`);
  return { outDir, cacheDir, cached, info };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const opt = (name) => argv.includes(name);
  const outIdx = argv.indexOf('--out');
  try {
    const r = buildTailscaleWasm({
      outDir: outIdx >= 0 ? argv[outIdx + 1] : undefined,
      wasmOpt: opt('--wasm-opt') ? true : undefined,
      force: opt('--force'),
      log: opt('--quiet') ? () => {} : undefined,
    });
    process.stdout.write(`${JSON.stringify({ outDir: r.outDir, cached: r.cached, ...r.info.sizes })}\n`);
  } catch (e) {
    process.stderr.write(`[tailscale-wasm] ${e.message}\n`);
    process.exit(1);
  }
}
