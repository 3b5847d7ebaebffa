#!/usr/bin/env node
// A real tailnet on 127.0.0.1 for tests: headscale (control + embedded DERP over WebSocket), one tsnet
// peer (HTTP on :80, TCP/UDP echo on :7), and a same-origin "front door" that proxies control and DERP
// to headscale and serves static files from the repository, so a page on its origin needs no CORS.
//
//   node test/tailnet/start.mjs          # builds (cached), starts, prints one JSON line, runs until ^C
//   node test/tailnet/start.mjs --build-only   # only builds (cached) headscale and the peer
//
// Importable: `const t = await startTailnet(); … await t.stop();`
// Binaries are cached under ~/.cache/linux-vm/tailnet/<hash of the Go module + Go version>/.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');

// ---------------------------------------------------------------- building (cached)

function goBuildCached(moduleDir, pkg, name, log) {
  const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' }).stdout.trim();
  const h = createHash('sha256').update(goVersion).update(pkg);
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.go$|^go\.(mod|sum)$/.test(e.name)) h.update(`\0${relative(moduleDir, p)}\0`).update(readFileSync(p));
    }
  };
  walk(moduleDir);
  const dir = join(homedir(), '.cache', 'linux-vm', 'tailnet', `${name}-${h.digest('hex').slice(0, 20)}`);
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  log(`building ${name} (${pkg}) with ${goVersion} … (first time only; minutes on a busy machine)`);
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  const r = spawnSync('go', ['build', '-p', '2', '-trimpath', '-ldflags=-s -w', '-o', tmp, pkg], {
    cwd: moduleDir,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`building ${name} failed`);
  renameSync(tmp, bin);
  return bin;
}

export function buildTailnetBinaries(log = () => {}) {
  return {
    headscale: goBuildCached(join(here, 'headscale'), 'github.com/juanfont/headscale/cmd/headscale', 'headscale', log),
    peer: goBuildCached(join(here, 'peer'), '.', 'peer', log),
  };
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freeTCPPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function freeUDPPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      lastErr = e;
    }
    await sleep(150);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
}

function httpGet(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

/** A child process with a bounded, escalating stop. Its output is kept in `output` (last 200 lines). */
function child(cmd, args, opts, log, label) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  const lines = [];
  const keep = (chunk) => {
    for (const l of chunk.toString().split('\n')) if (l) { lines.push(l); if (lines.length > 200) lines.shift(); }
  };
  p.stdout.on('data', keep);
  p.stderr.on('data', keep);
  p.stdout.on('data', (d) => log(`${label}: ${d.toString().trimEnd()}`, true));
  p.stderr.on('data', (d) => log(`${label}: ${d.toString().trimEnd()}`, true));
  const exited = new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
  return {
    proc: p,
    output: lines,
    exited,
    async stop(graceMs = 5000) {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

// ---------------------------------------------------------------- front door

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.wasm': 'application/wasm', '.css': 'text/css', '.txt': 'text/plain; charset=utf-8',
};

/** Paths that belong to headscale (control protocol, DERP, health); everything else is a static file. */
const CONTROL_PATHS = [/^\/key(\?|$)/, /^\/ts2021(\?|$)/, /^\/machine\//, /^\/derp(\/|\?|$)/, /^\/bootstrap-dns/,
  /^\/health(\?|$)/, /^\/register\//, /^\/verify(\?|$)/, /^\/generate_204/];

function startFrontDoor({ staticRoot, upstreamPort, cors, log }) {
  const isControl = (url) => CONTROL_PATHS.some((re) => re.test(url));
  const stats = { proxied: 0, upgrades: 0, static: 0 };
  const server = http.createServer((req, res) => {
    if (isControl(req.url)) {
      stats.proxied++;
      // cors: pages of another origin (a test runner's) may use this control server too.
      if (cors) {
        res.setHeader('access-control-allow-origin', '*');
        if (req.method === 'OPTIONS') {
          res.writeHead(204, {
            'access-control-allow-methods': 'GET, POST, OPTIONS',
            'access-control-allow-headers': String(req.headers['access-control-request-headers'] ?? '*'),
            'access-control-max-age': '600',
          });
          res.end();
          return;
        }
      }
      const up = http.request(
        { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (ures) => {
          const headers = cors ? ures.rawHeaders.filter((_, i, all) => !/^access-control-allow-origin$/i.test(all[i - (i % 2)])) : ures.rawHeaders;
          res.writeHead(ures.statusCode, headers);
          ures.pipe(res);
        },
      );
      up.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`front door: headscale unreachable: ${e.message}\n`);
      });
      req.pipe(up);
      return;
    }
    stats.static++;
    serveStatic(staticRoot, req, res);
  });
  // WebSocket (browser control /ts2021 and /derp) and Tailscale's own HTTP upgrades (native peers) are
  // proxied as raw byte streams after replaying the request head.
  server.on('upgrade', (req, socket, head) => {
    if (!isControl(req.url)) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    stats.upgrades++;
    const up = net.connect(upstreamPort, '127.0.0.1', () => {
      let headText = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${headText}\r\n`);
      if (head?.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const kill = () => { up.destroy(); socket.destroy(); };
    up.on('error', kill);
    socket.on('error', kill);
    up.on('close', kill);
    socket.on('close', kill);
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, stats }));
  });
}

function serveStatic(root, req, res) {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  let file = normalize(join(root, path));
  if (!file.startsWith(root + sep) && file !== root) {
    res.writeHead(403).end();
    return;
  }
  try {
    if (statSync(file).isDirectory()) file = join(file, 'index.html');
    const st = statSync(file);
    const headers = {
      'content-type': MIME[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    };
    // Pre-compressed siblings (tailscale.wasm.br / .gz from wasm/tailscale/build.mjs).
    const accept = String(req.headers['accept-encoding'] ?? '');
    for (const [enc, ext] of [['br', '.br'], ['gzip', '.gz']]) {
      if (accept.includes(enc) && existsSync(file + ext)) {
        const cst = statSync(file + ext);
        res.writeHead(200, { ...headers, 'content-encoding': enc, 'content-length': cst.size, vary: 'accept-encoding' });
        if (req.method === 'HEAD') return res.end();
        createReadStream(file + ext).pipe(res);
        return;
      }
    }
    res.writeHead(200, { ...headers, 'content-length': st.size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}

// ---------------------------------------------------------------- headscale config

function headscaleConfig({ dir, frontDoorPort, port, metricsPort, grpcPort, stunPort }) {
  // JSON is valid YAML, so the config is written as JSON.
  return JSON.stringify({
    server_url: `http://127.0.0.1:${frontDoorPort}`,
    listen_addr: `127.0.0.1:${port}`,
    metrics_listen_addr: `127.0.0.1:${metricsPort}`,
    grpc_listen_addr: `127.0.0.1:${grpcPort}`,
    grpc_allow_insecure: false,
    noise: { private_key_path: join(dir, 'noise_private.key') },
    prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
    derp: {
      server: {
        enabled: true,
        region_id: 900,
        region_code: 'loop',
        region_name: 'Loopback DERP',
        verify_clients: true,
        stun_listen_addr: `127.0.0.1:${stunPort}`,
        private_key_path: join(dir, 'derp_server_private.key'),
        automatically_add_embedded_derp_region: true,
        ipv4: '127.0.0.1',
      },
      urls: [],
      paths: [],
      auto_update_enabled: false,
      update_frequency: '24h',
    },
    disable_check_updates: true,
    node: { expiry: 0, ephemeral: { inactivity_timeout: '120s' } },
    database: { type: 'sqlite', sqlite: { path: join(dir, 'db.sqlite'), write_ahead_log: true } },
    log: { level: 'info', format: 'text' },
    policy: { mode: 'file', path: '' },
    dns: {
      magic_dns: true,
      base_domain: 'tailnet.test',
      override_local_dns: false,
      nameservers: { global: [], split: {} },
      search_domains: [],
      extra_records: [],
    },
    unix_socket: join(dir, 'headscale.sock'),
    unix_socket_permission: '0770',
    logtail: { enabled: false },
  }, null, 2);
}

// ---------------------------------------------------------------- the tailnet

/**
 * Starts the loopback tailnet.
 * `cors`: the front door adds CORS headers to control answers, so pages of other origins can log in too.
 * @param {{ staticRoot?: string, cors?: boolean, verbose?: boolean, log?: (s: string) => void }} [options]
 * @returns {Promise<{ frontDoorURL: string, authKey: string, peerIP: string, peerIPv6: string, peerName: string, peerControlURL: string,
 *   headscaleURL: string, headscale: (...args: string[]) => string, frontDoorStats: object, stop: () => Promise<void> }>}
 */
export async function startTailnet({ staticRoot = repoRoot, cors = false, verbose = !!process.env.TAILNET_VERBOSE,
  log = (s) => process.stderr.write(`[tailnet] ${s}\n`) } = {}) {
  const say = (s, noisy = false) => { if (!noisy || verbose) log(s); };
  const t0 = Date.now();
  const bins = buildTailnetBinaries(say);
  const dir = mkdtempSync(join(tmpdir(), 'linux-vm-tailnet-'));
  const cleanups = [];
  const children = [];
  // Last-resort cleanup if the parent exits without stop(): no stray processes.
  const onExit = () => { for (const c of children) try { c.proc.kill('SIGKILL'); } catch {} };
  process.once('exit', onExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const c of children.reverse()) await c.stop();
    for (const f of cleanups.reverse()) await f();
    rmSync(dir, { recursive: true, force: true });
    process.removeListener('exit', onExit);
  };

  try {
    const [port, metricsPort, grpcPort, stunPort] = [await freeTCPPort(), await freeTCPPort(), await freeTCPPort(), await freeUDPPort()];
    const fd = await startFrontDoor({ staticRoot, upstreamPort: port, cors, log: say });
    cleanups.push(() => new Promise((r) => { fd.server.closeAllConnections(); fd.server.close(() => r()); }));
    const frontDoorURL = `http://127.0.0.1:${fd.port}`;

    const cfgFile = join(dir, 'config.yaml');
    writeFileSync(cfgFile, headscaleConfig({ dir, frontDoorPort: fd.port, port, metricsPort, grpcPort, stunPort }));
    const hs = child(bins.headscale, ['serve', '-c', cfgFile], { cwd: dir }, say, 'headscale');
    children.push(hs);
    await waitFor('headscale /health', async () => {
      if (hs.proc.exitCode !== null) throw Object.assign(new Error(`headscale exited:\n${hs.output.join('\n')}`), { fatal: true });
      return (await httpGet(`http://127.0.0.1:${port}/health`)).status === 200;
    }, 30000);

    const headscale = (...args) => {
      const r = spawnSync(bins.headscale, [...args, '-c', cfgFile, '-o', 'json'], { encoding: 'utf8', cwd: dir });
      if (r.status !== 0) throw new Error(`headscale ${args.join(' ')}: ${r.stderr || r.stdout}`);
      return r.stdout;
    };
    const user = JSON.parse(headscale('users', 'create', 'linux-vm-test'));
    const key = JSON.parse(headscale('preauthkeys', 'create', '-u', String(user.id), '--reusable', '--ephemeral', '-e', '2h'));
    const authKey = key.key;
    if (!authKey) throw new Error('headscale returned no pre-auth key');

    const peer = child(bins.peer, ['-control-url', frontDoorURL, '-hostname', 'tailnet-peer', '-dir', join(dir, 'peer'),
      '-control-addr', '127.0.0.1:0', ...(verbose ? ['-v'] : [])], {
      cwd: dir,
      env: { ...process.env, TS_AUTHKEY: authKey, TS_DEBUG_USE_DERP_HTTP: '1' },
    }, say, 'peer');
    children.splice(0, 0, peer); // stopped first
    const peerInfo = await waitFor('the peer to join the tailnet', async () => {
      if (peer.proc.exitCode !== null) throw Object.assign(new Error(`peer exited:\n${peer.output.join('\n')}`), { fatal: true });
      const line = peer.output.find((l) => l.startsWith('{"'));
      return line && JSON.parse(line);
    }, 90000);

    const result = {
      frontDoorURL,
      authKey,
      peerIP: peerInfo.ipv4,
      peerIPv6: peerInfo.ipv6,
      peerName: peerInfo.name,
      peerControlURL: peerInfo.control,
      headscaleURL: `http://127.0.0.1:${port}`,
      headscale,
      frontDoorStats: fd.stats,
      startSeconds: (Date.now() - t0) / 1000,
      stop,
    };
    say(`up in ${result.startSeconds.toFixed(1)} s: front door ${frontDoorURL}, peer ${result.peerName} ${result.peerIP}`);
    return result;
  } catch (e) {
    await stop();
    throw e;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--build-only')) {
  const t0 = Date.now();
  const bins = buildTailnetBinaries((s) => process.stderr.write(`[tailnet] ${s}\n`));
  process.stderr.write(`[tailnet] binaries ready in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${Object.values(bins).join(', ')}\n`);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t = await startTailnet();
  const { frontDoorURL, authKey, peerIP, peerIPv6, peerName } = t;
  process.stdout.write(`${JSON.stringify({ frontDoorURL, authKey, peerIP, peerIPv6, peerName })}\n`);
  const shutdown = async () => { await t.stop(); process.exit(0); };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
