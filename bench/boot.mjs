// bench/boot: time from inserting <linux-vm> to its first shell prompt, and bytes fetched until then,
// per image, in headless Chromium (Debian's), median of N runs. Each run is a first visit (a fresh
// browser context: empty HTTP cache and IndexedDB) followed by a return visit (a new page in the same
// context: the server answers 304s, disk blocks come from IndexedDB). Prints a table and JSON.
//
//   npm run bench:boot [-- --runs 5 --images tiny,debian]      (BENCH_LOG_FETCHES=1 lists every response)
import { parseArgs } from 'node:util';
import { buildImagesAndBundle, launchBrowser, median, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, images: { type: 'string', default: 'tiny,debian' } },
});
const runs = Number(values.runs);
const images = values.images.split(',');
const round = (x) => Number(x.toFixed(2));

buildImagesAndBundle(images);

// Counts the bytes of every response body the server sends (Range responses count their part).
let bytesServed = 0;
const countBytes = async (ctx, next) => {
  await next();
  if (ctx.method === "GET") bytesServed += Number(ctx.response.length) || 0;
  if (process.env.BENCH_LOG_FETCHES) console.error(`  ${ctx.status} ${ctx.url} ${ctx.response.length ?? ""} ${ctx.get("cache-control")} ${ctx.get("if-modified-since")}`);
};
const server = await startBenchServer({ middleware: [countBytes] });
const { origin } = server;
const browser = await launchBrowser();

const results = [];
try {
  for (const image of images) {
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const context = await browser.createBrowserContext();
      const sample = {};
      for (const visit of ['first', 'return']) {
        const page = await context.newPage();
        bytesServed = 0;
        await page.goto(`${origin}/bench/boot-page.html`);
        await page.waitForFunction('window.benchPageReady === true');
        const { msToReady } = await page.evaluate((url) => window.bootOnce(url), `/images/${image}/manifest.json`);
        sample[visit] = { msToReady, bytes: bytesServed };
        console.error(`${image} run ${i + 1}/${runs}, ${visit} visit: ${(msToReady / 1000).toFixed(2)} s, ${(bytesServed / 1048576).toFixed(1)} MiB`);
        await page.close(); // ends the VM (and releases its disk) before the next visit
      }
      samples.push(sample);
      await context.close();
    }
    const stat = (visit, key) => median(samples.map((s) => s[visit][key]));
    results.push({
      image,
      runs,
      first: { medianSecondsToPrompt: round(stat('first', 'msToReady') / 1000), medianMiBFetched: round(stat('first', 'bytes') / 1048576) },
      return: { medianSecondsToPrompt: round(stat('return', 'msToReady') / 1000), medianMiBFetched: round(stat('return', 'bytes') / 1048576) },
      samples,
    });
  }
} finally {
  await browser.close();
  await server.stop();
}

console.log('\nimage    runs   first visit: s to prompt, MiB   return visit: s to prompt, MiB   (medians)');
for (const r of results) {
  const cells = (v) => `${v.medianSecondsToPrompt.toFixed(2).padStart(8)} s ${v.medianMiBFetched.toFixed(2).padStart(8)} MiB`;
  console.log(`${r.image.padEnd(8)} ${String(r.runs).padStart(4)}   ${cells(r.first)}       ${cells(r.return)}`);
}
console.log(JSON.stringify({ benchmark: 'boot', date: new Date().toISOString(), results }, null, 2));
