// bench/lwip: the lwIP host node's wasm size (raw, gzip), TCP throughput between two stacks back to back in
// Node (the binding bundled with esbuild), and through the element in headless Chromium: guest -> page and
// page -> guest over connect() (busybox nc in the tiny image), next to the guest's own pipe throughput (its limit).
// The relay's throughput is bench/relay.mjs. Prints a table and JSON.
//
//   npm run bench:lwip [-- --mib 16 --runs 3 --guest-mib 8 --no-browser]
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { buildLwipWasm } from '../wasm/lwip/build.mjs';
import { loadBinding, readAll, seededRandom, Wire, writeAll } from '../test/node/lwip-harness.mjs';
import { buildImagesAndBundle, launchBrowser, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
    'guest-mib': { type: 'string', default: '8' },
    'no-browser': { type: 'boolean', default: false },
  },
});
const bytes = Number(values.mib) * 1048576;
const runs = Number(values.runs);

const { info } = buildLwipWasm({ log: () => {} });
const binding = await loadBinding();
const data = seededRandom(16).bytes(bytes);
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

/** One way, `bytes` from b to a in 64 KiB writes; the time runs from connect to the last byte read. */
async function oneWay() {
  const wire = new Wire();
  const a = await wire.add(binding, '10.0.0.1');
  const b = await wire.add(binding, '10.0.0.2');
  const received = new Promise((resolve) => a.listen(5001, (connection) => resolve(readAll(connection))));
  const started = performance.now();
  const connection = await b.connect({ address: '10.0.0.1', port: 5001 });
  await writeAll(connection, data);
  const got = await received;
  const ms = performance.now() - started;
  if (sha256(got) !== sha256(data)) throw new Error(`received ${got.length} bytes that differ from the ${bytes} sent`);
  const packets = b.stats.packetsOut + a.stats.packetsOut;
  a.dispose();
  b.dispose();
  return { ms, packets };
}

const samples = [];
for (let i = 0; i < runs; i++) samples.push(await oneWay());
const mibps = samples.map((s) => Number((bytes / 1048576 / (s.ms / 1000)).toFixed(1)));
/** Guest <-> page through the element's connect(): the host node in the emulator worker, tiny image, no network. */
async function throughElement(mib) {
  const guestBytes = mib * 1048576;
  buildImagesAndBundle(['tiny']);
  const server = await startBenchServer();
  const browser = await launchBrowser({ protocolTimeout: 600_000 });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.origin}/bench/net-page.html`);
    await page.waitForFunction('window.benchPageReady === true');
    await page.evaluate(() => window.boot('/images/tiny/manifest.json'));
    const guest = (command, pattern) => page.evaluate((c, p) => window.guest(c, p), command, pattern);
    const count = guestBytes / 65536;
    const pipe = await guest(`echo "PIPE[$(dd if=/dev/zero bs=65536 count=${count} 2>/dev/null | wc -c)]"`, '^PIPE\\[(\\d+)\\]$');
    await guest(`dd if=/dev/zero bs=65536 count=${count} 2>/dev/null | nc -l -p 9001 & echo SERVING`, '^(SERVING)$');
    const down = await page.evaluate(() => window.readFromGuest(9001));
    if (down.bytes !== guestBytes) throw new Error(`guest -> page: ${down.bytes} of ${guestBytes} bytes`);
    await guest('nc -l -p 9000 >/dev/null & echo SINKING', '^(SINKING)$');
    const up = await page.evaluate((n) => window.writeToGuest(9000, n), guestBytes);
    const mibps = (ms) => Number((mib / (ms / 1000)).toFixed(2));
    return { mib, guestPipeMiBps: mibps(pipe.ms), guestToPageMiBps: mibps(down.ms), pageToGuestMiBps: mibps(up.ms) };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const result = {
  benchmark: 'lwip',
  date: new Date().toISOString(),
  lwip: info.lwip,
  wasmBytes: { raw: info.sizes.raw, gzip: info.sizes.gzip },
  nodeBackToBack: { mibOneWay: Number(values.mib), runs, mibPerSecond: mibps, best: Math.max(...mibps), packets: samples[0].packets },
  element: values['no-browser'] ? null : await throughElement(Number(values['guest-mib'])),
};

const KiB = (n) => (n / 1024).toFixed(1);
console.log(`\nlwIP wasm (${result.lwip})          ${KiB(result.wasmBytes.raw)} KiB raw, ${KiB(result.wasmBytes.gzip)} KiB gzip`);
console.log(`Node back to back, ${values.mib} MiB one way   ${mibps.join(' / ')} MiB/s (best ${result.nodeBackToBack.best})`);
if (result.element) {
  const e = result.element;
  console.log(`guest -> page, connect() + nc     ${e.guestToPageMiBps} MiB/s (${e.mib} MiB)`);
  console.log(`page -> guest, connect() + nc     ${e.pageToGuestMiBps} MiB/s (${e.mib} MiB)`);
  console.log(`guest's own pipe (dd | wc)        ${e.guestPipeMiBps} MiB/s: the guest is the limit when close to it`);
}
console.log('relay throughput: npm run bench:relay');
console.log(JSON.stringify(result, null, 2));
