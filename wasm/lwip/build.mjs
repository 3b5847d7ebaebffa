#!/usr/bin/env node
// Builds lwIP (Debian's `lwip` source package, 2.1.3) with our port in port/ into
// wasm/dist/lwip/: lwip.wasm, LICENSE.lwip (lwIP's COPYING), build-info.json.
//
//   node wasm/lwip/build.mjs [--out DIR] [--force] [--refresh-source] [--quiet]
//
// The source comes from `apt-get source` with a private apt state under ~/.cache/linux-vm/lwip/apt (a deb-src
// stanza for bookworm main; /etc is never touched) and is kept unpacked under ~/.cache/linux-vm/lwip/source.
// Results are cached under ~/.cache/linux-vm/lwip/<hash>/, the hash covering the port files, the source
// package's version, this script and the toolchain versions. Importable: `buildLwipWasm(options)`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { publishCached } from '../publish-cached.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const portDir = join(here, 'port');
const cacheRoot = join(homedir(), '.cache', 'linux-vm', 'lwip');
const SOURCE_PACKAGE = 'lwip';
const UPSTREAM_VERSION = '2.1.3';
const DEB_SRC = 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main';
const CLANG = '/usr/lib/llvm-14/bin/clang';
const WASM_OPT = 'wasm-opt';
// clang runs a wasm-opt it finds beside itself or on PATH after linking, without our feature flags (which
// then fails on bulk memory): LLVM's own directory has none, and we run wasm-opt ourselves.
const CLANG_PATH = '/usr/lib/llvm-14/bin';
const SIZE_TARGET_GZIP = 30 * 1024;

/** lwIP's own files that this configuration needs (IPv4, UDP, TCP, ICMP, fragments; no ARP, no OS layer). */
const LWIP_SOURCES = [
  'core/init.c', 'core/def.c', 'core/inet_chksum.c', 'core/ip.c', 'core/mem.c', 'core/memp.c', 'core/netif.c',
  'core/pbuf.c', 'core/tcp.c', 'core/tcp_in.c', 'core/tcp_out.c', 'core/timeouts.c', 'core/udp.c',
  'core/ipv4/ip4.c', 'core/ipv4/ip4_addr.c', 'core/ipv4/ip4_frag.c', 'core/ipv4/icmp.c',
];

const CFLAGS = [
  '--target=wasm32-wasi', '-Oz', '-flto', '-mbulk-memory', '-nostartfiles', '-std=c11', '-Wall', '-Wno-unused-function',
  '-ffunction-sections', '-fdata-sections',
];
const LDFLAGS = ['-fuse-ld=/usr/lib/llvm-14/bin/wasm-ld', '-Wl,--no-entry', '-Wl,--gc-sections', '-Wl,--strip-all', '-Wl,-z,stack-size=65536'];
const WASM_OPT_ARGS = ['-Oz', '--enable-bulk-memory', '--strip-debug', '--strip-producers'];

/** The host functions glue.c imports; anything else (a wasi call pulled in from libc) is a build error. */
const EXPECTED_IMPORTS = ['now', 'random', 'output', 'tcp_accepted', 'tcp_connected', 'tcp_recv', 'tcp_sent', 'tcp_error', 'udp_recv'];

/**
 * The catch-all (relay NAT) change in lwIP's input path, as anchored insertions: each anchor must occur
 * exactly once in the LF-normalized file, otherwise the source is not the lwIP this was written for.
 * The hooks themselves live in port/glue.c and are named in port/lwipopts.h.
 */
const PATCHES = [
  {
    file: 'core/ipv4/ip4.c',
    why: 'accept TCP/UDP packets for any destination address when catch-all is on',
    anchor: '  /* packet not for us? */\n  if (netif == NULL) {\n',
    insertBefore: '#ifdef LWIP_HOOK_IP4_ACCEPT_ANY\n  if (netif == NULL && LWIP_HOOK_IP4_ACCEPT_ANY(p, inp)) {\n    netif = inp;\n  }\n#endif\n',
  },
  {
    file: 'core/tcp_in.c',
    why: 'hand SYNs that no listener matches to the catch-all listener',
    anchor: '    if (lpcb != NULL) {\n      /* Move this PCB to the front of the list',
    insertBefore: '#ifdef LWIP_HOOK_TCP_CATCH_ALL_LISTENER\n    if (lpcb == NULL) {\n      lpcb = LWIP_HOOK_TCP_CATCH_ALL_LISTENER();\n      prev = NULL;\n    }\n#endif\n',
  },
  {
    file: 'core/tcp_in.c',
    why: "a new connection's local port is the SYN's destination port (the same as the listener's, except for catch-all)",
    anchor: '    npcb->local_port = pcb->local_port;\n',
    replaceWith: '    npcb->local_port = tcphdr->dest;\n',
  },
  {
    file: 'core/tcp_in.c',
    why: 'refuse a SYN with RST when no pcb is free, instead of leaving the peer to retransmit into a full pool',
    anchor: '      TCP_EVENT_ACCEPT(pcb, NULL, pcb->callback_arg, ERR_MEM, err);\n      LWIP_UNUSED_ARG(err); /* err not useful here */\n',
    insertAfter: '      tcp_rst((const struct tcp_pcb *)pcb, 0, seqno + tcplen, ip_current_dest_addr(),\n              ip_current_src_addr(), tcphdr->dest, tcphdr->src);\n',
  },
  {
    file: 'core/udp.c',
    why: 'hand datagrams that no pcb matches to the catch-all pcb',
    anchor: '  if (pcb == NULL) {\n    pcb = uncon_pcb;\n  }\n',
    insertAfter: '#ifdef LWIP_HOOK_UDP_CATCH_ALL_PCB\n  if (pcb == NULL) {\n    pcb = LWIP_HOOK_UDP_CATCH_ALL_PCB(dest, broadcast);\n  }\n#endif\n',
  },
];

function run(cmd, args, { cwd = here, env = {} } = {}) {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, LC_ALL: 'C', ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.code === 'ENOENT' ? 'not installed' : r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

function firstLine(cmd, args) {
  return run(cmd, args).split('\n')[0];
}

function filesUnder(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) filesUnder(p, out);
    else out.push(p);
  }
  return out.sort();
}

const lf = (text) => text.replace(/\r\n/g, '\n');

/** Unpacked source package with a `.complete` marker: `{ dir, version }`. */
function existingSource() {
  const base = join(cacheRoot, 'source');
  if (!existsSync(base)) return null;
  for (const name of readdirSync(base)) {
    const dir = join(base, name);
    if (existsSync(join(dir, '.complete'))) return { dir, version: readFileSync(join(dir, '.complete'), 'utf8').trim() };
  }
  return null;
}

/** `apt-get source lwip` with a private apt state; replaces any earlier unpacked source. */
function fetchSource(log) {
  const apt = join(cacheRoot, 'apt');
  for (const d of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(apt, d), { recursive: true });
  writeFileSync(join(apt, 'sources.list'), `${DEB_SRC}\n`);
  if (!existsSync(join(apt, 'status'))) writeFileSync(join(apt, 'status'), '');
  const opts = [
    '-o', `Dir::Etc::SourceList=${join(apt, 'sources.list')}`,
    '-o', 'Dir::Etc::SourceParts=/nonexistent',
    '-o', `Dir::State::Lists=${join(apt, 'lists')}`,
    '-o', `Dir::State::status=${join(apt, 'status')}`,
    '-o', `Dir::Cache=${join(apt, 'cache')}`,
    '-o', 'Debug::NoLocking=1',
    '-o', 'APT::Sandbox::User=root',
    '-o', 'Acquire::Languages=none',
  ];
  log('apt-get update (private state, deb-src bookworm main) …');
  run('apt-get', [...opts, '-q', 'update']);
  const base = join(cacheRoot, 'source');
  const tmp = join(cacheRoot, `.tmp-source-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    log(`apt-get source ${SOURCE_PACKAGE} …`);
    run('apt-get', [...opts, '-q', 'source', SOURCE_PACKAGE], { cwd: tmp });
    const dsc = readdirSync(tmp).find((f) => f.endsWith('.dsc'));
    const version = dsc && /^[^_]+_(.+)\.dsc$/.exec(dsc)[1];
    const unpacked = readdirSync(tmp, { withFileTypes: true }).find((e) => e.isDirectory());
    if (!version || !unpacked) throw new Error(`apt-get source ${SOURCE_PACKAGE}: no .dsc or unpacked tree in ${tmp} (is dpkg-dev installed?)`);
    if (!version.startsWith(`${UPSTREAM_VERSION}+`) && !version.startsWith(`${UPSTREAM_VERSION}-`)) {
      throw new Error(`Debian's ${SOURCE_PACKAGE} is ${version}; the port and patches here are written for ${UPSTREAM_VERSION}`);
    }
    writeFileSync(join(tmp, unpacked.name, '.complete'), `${version}\n`);
    rmSync(base, { recursive: true, force: true });
    mkdirSync(base, { recursive: true });
    renameSync(join(tmp, unpacked.name), join(base, unpacked.name));
    return { dir: join(base, unpacked.name), version };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Copies lwIP's sources and headers into `dir` with LF endings and our patches applied. */
function prepareSources(sourceDir, dir) {
  const src = join(sourceDir, 'src');
  for (const f of [...LWIP_SOURCES, ...filesUnder(join(src, 'include')).map((p) => relative(src, p))]) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), lf(readFileSync(join(src, f), 'utf8')));
  }
  for (const patch of PATCHES) {
    const file = join(dir, patch.file);
    const text = readFileSync(file, 'utf8');
    const count = text.split(patch.anchor).length - 1;
    if (count !== 1) {
      throw new Error(`patch "${patch.why}": its anchor occurs ${count} times in ${patch.file} (expected once; is this lwIP ${UPSTREAM_VERSION}?)`);
    }
    const replacement = patch.replaceWith ?? `${patch.insertBefore ?? ''}${patch.anchor}${patch.insertAfter ?? ''}`;
    writeFileSync(file, text.replace(patch.anchor, () => replacement));
  }
}

/** Names of the module's imports, read from the binary's import section. */
function wasmImports(bytes) {
  const imports = [];
  const module = new WebAssembly.Module(bytes);
  for (const i of WebAssembly.Module.imports(module)) imports.push(`${i.module}.${i.name}`);
  return imports;
}

/**
 * Builds (or takes from the cache) lwip.wasm and copies it with its licence to `outDir`.
 * @returns {{ outDir: string, cacheDir: string, cached: boolean, info: object }}
 */
export function buildLwipWasm({
  outDir = join(repoRoot, 'wasm', 'dist', 'lwip'),
  force = false,
  refreshSource = false,
  log = (s) => process.stderr.write(`[lwip-wasm] ${s}\n`),
} = {}) {
  const source = (!refreshSource && existingSource()) || fetchSource(log);
  const toolchain = { clang: firstLine(CLANG, ['--version']), wasmOpt: firstLine(WASM_OPT, ['--version']) };

  const h = createHash('sha256');
  h.update(JSON.stringify({ version: source.version, toolchain, LWIP_SOURCES, CFLAGS, LDFLAGS, WASM_OPT_ARGS, PATCHES }));
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const f of filesUnder(portDir)) {
    h.update(`\0${relative(portDir, f)}\0`);
    h.update(readFileSync(f));
  }
  const hash = h.digest('hex').slice(0, 24);
  const cacheDir = join(cacheRoot, `build-${hash}`);
  const cached = existsSync(join(cacheDir, 'build-info.json')) && !force;

  if (!cached) {
    const started = Date.now();
    const tmp = join(cacheRoot, `.tmp-build-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    try {
      log(`building lwIP ${source.version} (${toolchain.clang}) …`);
      const tree = join(tmp, 'src');
      prepareSources(source.dir, tree);
      const raw = join(tmp, 'lwip.raw.wasm');
      run(CLANG, [
        ...CFLAGS, ...LDFLAGS, `-I${portDir}`, `-I${join(tree, 'include')}`,
        ...LWIP_SOURCES.map((f) => join(tree, f)), join(portDir, 'glue.c'), '-o', raw,
      ], { env: { PATH: CLANG_PATH } });
      const final = join(tmp, 'lwip.wasm');
      run(WASM_OPT, [...WASM_OPT_ARGS, raw, '-o', final]);
      const bytes = readFileSync(final);
      const imports = wasmImports(bytes);
      const unexpected = imports.filter((i) => !EXPECTED_IMPORTS.map((n) => `env.${n}`).includes(i));
      if (unexpected.length) throw new Error(`lwip.wasm imports ${unexpected.join(', ')}: only env.{${EXPECTED_IMPORTS.join(',')}} are provided`);
      writeFileSync(join(tmp, 'LICENSE.lwip'), lf(readFileSync(join(source.dir, 'COPYING'), 'utf8')));
      const info = {
        hash,
        lwip: source.version,
        toolchain,
        patches: PATCHES.map((p) => `${p.file}: ${p.why}`),
        sizes: { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length, unoptimized: statSync(raw).size },
        seconds: (Date.now() - started) / 1000,
        builtAt: new Date().toISOString(),
      };
      writeFileSync(join(tmp, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
      rmSync(raw);
      rmSync(tree, { recursive: true });
      rmSync(cacheDir, { recursive: true, force: true });
      renameSync(tmp, cacheDir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  publishCached(cacheDir, outDir, ['lwip.wasm', 'LICENSE.lwip', 'build-info.json']);
  const info = JSON.parse(readFileSync(join(cacheDir, 'build-info.json'), 'utf8'));
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  log(`${cached ? 'cached' : 'built'}: ${outDir}/lwip.wasm ${kb(info.sizes.raw)} raw, ${kb(info.sizes.gzip)} gzip` +
    (info.sizes.gzip > SIZE_TARGET_GZIP ? ` (over the ${kb(SIZE_TARGET_GZIP)} gzip target)` : ''));
  return { outDir, cacheDir, cached, info };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const opt = (name) => argv.includes(name);
  const outIdx = argv.indexOf('--out');
  try {
    const r = buildLwipWasm({
      outDir: outIdx >= 0 ? argv[outIdx + 1] : undefined,
      force: opt('--force'),
      refreshSource: opt('--refresh-source'),
      log: opt('--quiet') ? () => {} : undefined,
    });
    process.stdout.write(`${JSON.stringify({ outDir: r.outDir, cached: r.cached, ...r.info.sizes })}\n`);
  } catch (e) {
    process.stderr.write(`[lwip-wasm] ${e.message}\n`);
    process.exit(1);
  }
}
