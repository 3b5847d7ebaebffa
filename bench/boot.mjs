// bench/boot: time from inserting <linux-vm> to its first shell prompt, and bytes fetched until then,
// per image, in headless Chromium (Debian's), median of N runs, each in a fresh browser context
// (empty HTTP cache: a first visit). Prints a table and JSON.
//
//   npm run bench:boot [-- --runs 5 --images tiny,debian]
import { parseArgs } from 'node:util';
import { buildImagesAndBundle, launchBrowser, median, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, images: { type: 'string', default: 'tiny,debian' } },
});
const runs = Number(values.runs);
const images = values.images.split(',');

buildImagesAndBundle(images);

// Counts the bytes of every response body the server sends (Range responses count their part).
let bytesServed = 0;
const countBytes = async (ctx, next) => {
  await next();
  if (ctx.method === 'GET') bytesServed += Number(ctx.response.length) || 0;
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
      const page = await context.newPage();
      bytesServed = 0;
      await page.goto(`${origin}/bench/boot-page.html`);
      await page.waitForFunction('window.benchPageReady === true');
      const { msToReady } = await page.evaluate((url) => window.bootOnce(url), `/images/${image}/manifest.json`);
      samples.push({ msToReady, bytes: bytesServed });
      console.error(`${image} run ${i + 1}/${runs}: ${(msToReady / 1000).toFixed(2)} s, ${(bytesServed / 1048576).toFixed(1)} MiB`);
      await context.close();
    }
    results.push({
      image,
      runs,
      medianSecondsToPrompt: Number((median(samples.map((s) => s.msToReady)) / 1000).toFixed(2)),
      medianMiBFetched: Number((median(samples.map((s) => s.bytes)) / 1048576).toFixed(2)),
      samples,
    });
  }
} finally {
  await browser.close();
  await server.stop();
}

console.log('\nimage    runs  median s to prompt  median MiB fetched (first visit)');
for (const r of results) {
  console.log(`${r.image.padEnd(8)} ${String(r.runs).padStart(4)}  ${r.medianSecondsToPrompt.toFixed(2).padStart(18)}  ${r.medianMiBFetched.toFixed(2).padStart(18)}`);
}
console.log(JSON.stringify({ benchmark: 'boot', date: new Date().toISOString(), results }, null, 2));
