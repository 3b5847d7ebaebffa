#!/usr/bin/env node
// Proof in the browser: our Tailscale wasm, in a worker of a page served by the loopback tailnet's
// front door, logs in to headscale with a pre-auth key, reaches Running with a 100.64.0.0/10 address
// and exchanges hand-made packets with the tsnet peer through the packet port (ICMP echo, UDP echo,
// TCP SYN → SYN-ACK, a MagicDNS query). Then: a bad auth key and an unreachable control server must
// surface as errors. Prints the figures and ends with "N passed, N failed".
//
//   node test/tailnet/wasm-login.test.mjs        (TAILNET_VERBOSE=1 for headscale/peer/wasm logs)
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { buildTailscaleWasm } from '../../wasm/tailscale/build.mjs';
import { startTailnet } from './start.mjs';

const verbose = !!process.env.TAILNET_VERBOSE;
const results = [];
const figures = {};
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`  ✓ ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`  ✗ ${name}\n      ${String(e.stack ?? e).split('\n').slice(0, 4).join('\n      ')}`);
  }
}

const inCGNAT = (ip) => {
  const [a, b] = ip.split('.').map(Number);
  return a === 100 && b >= 64 && b <= 127;
};

const build = buildTailscaleWasm();
figures.wasm = build.info.sizes;
console.log(`wasm ${build.cached ? '(cached)' : '(built)'} at ${elapsed()}`);
const tailnet = await startTailnet();
console.log(`tailnet up at ${elapsed()}: ${tailnet.frontDoorURL}, peer ${tailnet.peerName} ${tailnet.peerIP}`);

const profile = mkdtempSync(join(tmpdir(), 'linux-vm-chromium-'));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_BIN || '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});

async function openPage() {
  const page = await browser.newPage();
  page.on('console', (m) => { if (verbose) console.log(`    [page] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`    [page error] ${e.message}`));
  await page.goto(`${tailnet.frontDoorURL}/test/tailnet/wasm-login.html`);
  await page.waitForFunction('window.tailnetTestReady === true', { timeout: 10000 });
  return page;
}

try {
  const page = await openPage();
  let self;
  await test('logs in with a pre-auth key and reaches Running with a 100.64.0.0/10 address', async () => {
    const r = await page.evaluate((cfg) => window.tailnetTest.login(cfg, 90000), {
      controlURL: tailnet.frontDoorURL, authKey: tailnet.authKey, hostname: 'wasm-browser',
      insecureDERPOverHTTP: true, verbose,
    });
    self = r.self;
    figures.wasmLoadMs = r.wasmLoadMs;
    figures.startToRunningMs = r.runningMs;
    const v4 = self.addresses.find((a) => a.includes('.'));
    assert.ok(v4 && inCGNAT(v4), `tailnet IPv4 ${v4} not in 100.64.0.0/10`);
    assert.ok(r.peers.some((p) => p.addresses.includes(tailnet.peerIP)), 'the peer is in the netmap');
    self.ipv4 = v4;
    console.log(`    self ${self.name} ${self.addresses.join(' ')}; peers: ${r.peers.map((p) => p.name).join(', ')}`);
  });

  if (self?.ipv4) {
    await test('ICMP echo to the peer through the packet port', async () => {
      const rtts = await page.evaluate((s, d) => window.tailnetTest.ping(s, d, 10), self.ipv4, tailnet.peerIP);
      figures.pingMs = rtts.map((x) => +x.toFixed(2));
      assert.equal(rtts.length, 10);
    });
    await test('UDP echo (port 7) to the peer', async () => {
      const r = await page.evaluate((s, d) => window.tailnetTest.udpEcho(s, d), self.ipv4, tailnet.peerIP);
      assert.equal(r.text, 'hello over the packet port');
      figures.udpEchoMs = +r.ms.toFixed(2);
    });
    await test('TCP SYN to the peer:80 is answered with SYN-ACK', async () => {
      const r = await page.evaluate((s, d) => window.tailnetTest.tcpSyn(s, d, 80), self.ipv4, tailnet.peerIP);
      assert.equal(r.flags & 0x12, 0x12, `flags 0x${r.flags.toString(16)}`);
      assert.ok(r.ackOk, 'SYN-ACK acknowledges our SYN');
      figures.synAckMs = +r.ms.toFixed(2);
    });
    await test('MagicDNS (100.100.100.100) resolves the peer by name', async () => {
      const r = await page.evaluate((s, n) => window.tailnetTest.magicDNS(s, n), self.ipv4, tailnet.peerName);
      assert.equal(r.rcode, 0);
      assert.deepEqual(r.answers, [tailnet.peerIP]);
    });
    await test('logout() removes the node from the tailnet at once', async () => {
      const listed = () => JSON.parse(tailnet.headscale('nodes', 'list')).map((n) => n.given_name ?? n.givenName ?? n.name);
      assert.ok(listed().includes('wasm-browser'), `headscale lists ${listed().join(', ')}`);
      const states = await page.evaluate(() => window.tailnetTest.logout());
      console.log(`    states after logout(): ${states.join(' → ')}`);
      assert.equal(states.at(-1), 'NeedsLogin');
      assert.ok(!listed().includes('wasm-browser'), `after logout headscale still lists ${listed().join(', ')}`);
    });
  }
  await page.evaluate(() => window.tailnetTest.close());
  await page.close();

  await test('a bad auth key is reported as auth-failed', async () => {
    const p = await openPage();
    const r = await p.evaluate((cfg) => window.tailnetTest.expectError(cfg, 45000), {
      controlURL: tailnet.frontDoorURL, authKey: 'hskey-auth-not-a-real-key-000000000000', hostname: 'wasm-bad-key',
      insecureDERPOverHTTP: true, verbose,
    });
    console.log(`    → ${r.code}: ${r.message} (after ${(r.afterMs / 1000).toFixed(1)} s; states ${r.states.join(' → ')})`);
    figures.badKeyErrorMs = Math.round(r.afterMs);
    await p.evaluate(() => window.tailnetTest.close());
    await p.close();
    assert.equal(r.code, 'auth-failed');
  });

  await test('a well-formed but unknown auth key is reported as auth-failed', async () => {
    const p = await openPage();
    const r = await p.evaluate((cfg) => window.tailnetTest.expectError(cfg, 45000), {
      controlURL: tailnet.frontDoorURL, authKey: `hskey-auth-${'A'.repeat(12)}-${'b'.repeat(64)}`, hostname: 'wasm-unknown-key',
      insecureDERPOverHTTP: true, verbose,
    });
    console.log(`    → ${r.code}: ${r.message} (after ${(r.afterMs / 1000).toFixed(1)} s)`);
    await p.evaluate(() => window.tailnetTest.close());
    await p.close();
    assert.equal(r.code, 'auth-failed');
  });

  await test('an unreachable control server is reported as control-unreachable', async () => {
    const p = await openPage();
    const r = await p.evaluate((cfg) => window.tailnetTest.expectError(cfg, 45000), {
      controlURL: 'http://127.0.0.1:9', authKey: tailnet.authKey, hostname: 'wasm-no-control',
      insecureDERPOverHTTP: true, verbose,
    });
    console.log(`    → ${r.code}: ${r.message} (after ${(r.afterMs / 1000).toFixed(1)} s)`);
    figures.unreachableErrorMs = Math.round(r.afterMs);
    await p.evaluate(() => window.tailnetTest.close());
    await p.close();
    assert.equal(r.code, 'control-unreachable');
  });
} finally {
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  console.log(`front door: ${JSON.stringify(tailnet.frontDoorStats)}`);
  await tailnet.stop();
}

const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
console.log('\nfigures:');
console.log(`  wasm size: ${mb(figures.wasm.raw)} raw, ${mb(figures.wasm.gzip)} gzip, ${mb(figures.wasm.brotli)} brotli` +
  ` (go build output ${mb(figures.wasm.goBuild)})`);
if (figures.startToRunningMs) {
  console.log(`  start → Running: ${(figures.startToRunningMs / 1000).toFixed(2)} s (of which wasm fetch+compile ${(figures.wasmLoadMs / 1000).toFixed(2)} s)`);
}
if (figures.pingMs) {
  const s = [...figures.pingMs].sort((a, b) => a - b);
  console.log(`  ping RTT over DERP/WebSocket (10): min ${s[0]} ms, median ${s[5]} ms, max ${s.at(-1)} ms; first ${figures.pingMs[0]} ms`);
}
if (figures.udpEchoMs) console.log(`  UDP echo ${figures.udpEchoMs} ms, SYN→SYN-ACK ${figures.synAckMs} ms`);
const passed = results.filter((r) => r.ok).length;
console.log(`\n${passed} passed, ${results.length - passed} failed`);
process.exit(results.length === passed ? 0 : 1);
