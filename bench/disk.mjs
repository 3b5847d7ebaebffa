// bench/disk: the persistent disk of the `debian` image in headless Chromium (Debian's):
//  - time to prompt and bytes fetched on a first visit (empty storage) and a second one (same profile:
//    base blocks come from IndexedDB, the overlay is reopened);
//  - guest write throughput, `dd … conv=fsync` (each fsync waits for IndexedDB);
//  - the overlay's size and the origin's storage growth after writing 100 MB of random data.
// Prints a table and JSON.
//
//   npm run bench:disk [-- --write-mib 100 --dd-mib 32 --no-build --build-id debian-<hash12>]
//   (--build-id: boot that build from the image cache instead of images/dist/debian)
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../images/lib/util.mjs';
import { serveImages } from '../images/serve-images.mjs';
import { buildImagesAndBundle, launchBrowser, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({
  options: {
    'write-mib': { type: 'string', default: '100' },
    'dd-mib': { type: 'string', default: '32' },
    'no-build': { type: 'boolean', default: false }, // use images/dist/debian and dist/ as they are
    'build-id': { type: 'string' },
  },
});
const writeMiB = Number(values['write-mib']);
const ddMiB = Number(values['dd-mib']);
const MiB = 1048576;
if (!values['no-build']) buildImagesAndBundle(['debian']);

let bytesServed = 0;
const countBytes = async (ctx, next) => {
  await next();
  if (ctx.method === 'GET') bytesServed += Number(ctx.response.length) || 0;
};
const cached = serveImages({ prefix: '/cached-images/', root: path.join(cacheRoot(), 'images') });
const server = await startBenchServer({ middleware: [countBytes, cached] });
const manifestUrl = values['build-id'] ? `/cached-images/${values['build-id']}/manifest.json` : '/images/debian/manifest.json';
const browser = await launchBrowser();
const persist = `bench-${Date.now()}`;
const result = { benchmark: 'disk', date: new Date().toISOString(), image: values['build-id'] ?? 'debian', visits: [] };

/** One visit: a new page in `context`, booted to the prompt. Returns the page. */
async function visit(context, label) {
  const page = await context.newPage();
  bytesServed = 0;
  await page.goto(`${server.origin}/bench/disk-page.html`);
  await page.waitForFunction('window.benchPageReady === true');
  const { msToReady } = await page.evaluate((m, p) => window.bootOnce(m, p), manifestUrl, persist);
  const visitResult = { visit: label, secondsToPrompt: Number((msToReady / 1000).toFixed(2)), mibFetched: Number((bytesServed / MiB).toFixed(2)) };
  result.visits.push(visitResult);
  console.error(`${label} visit: ${visitResult.secondsToPrompt} s to prompt, ${visitResult.mibFetched} MiB fetched`);
  return page;
}

try {
  const context = await browser.createBrowserContext();
  const first = await visit(context, 'first');
  await first.close(); // ends the worker; the overlay and the block cache stay in IndexedDB
  const second = await visit(context, 'second');

  // dd prints e.g. "33554432 bytes (34 MB, 32 MiB) copied, 5.1 s, 6.6 MB/s"
  const dd = await second.evaluate((c, p) => window.runCommand(c, p),
    `dd if=/dev/zero of=/root/dd.bin bs=1M count=${ddMiB} conv=fsync 2>&1 | tail -n1; rm -f /root/dd.bin; sync`, 'copied, ([\\d.]+) s');
  result.writeThroughput = { mib: ddMiB, seconds: Number(dd[1]), mibPerSecond: Number((ddMiB / Number(dd[1])).toFixed(2)) };
  console.error(`dd ${ddMiB} MiB conv=fsync: ${dd[1]} s`);

  const before = await second.evaluate(() => window.storageUsage());
  const started = Date.now();
  await second.evaluate((c, p) => window.runCommand(c, p),
    `head -c ${writeMiB}M /dev/urandom > /root/random.bin && sync && echo written-$((6*7))`, '^written-42$');
  const after = await second.evaluate(() => window.storageUsage());
  result.overlayAfterWrite = {
    mibWritten: writeMiB,
    secondsToWriteAndSync: Number(((Date.now() - started) / 1000).toFixed(1)),
    overlayMiBBefore: Number((before.overlayBytes / MiB).toFixed(1)),
    overlayMiBAfter: Number((after.overlayBytes / MiB).toFixed(1)),
    originUsageGrowthMiB: Number(((after.usage - before.usage) / MiB).toFixed(1)),
  };
  console.error(`after writing ${writeMiB} MiB: overlay ${result.overlayAfterWrite.overlayMiBAfter} MiB`);
} finally {
  await browser.close();
  await server.stop();
}

console.log('\nvisit    s to prompt  MiB fetched');
for (const v of result.visits) console.log(`${v.visit.padEnd(8)} ${v.secondsToPrompt.toFixed(2).padStart(11)}  ${v.mibFetched.toFixed(2).padStart(11)}`);
console.log(JSON.stringify(result, null, 2));
