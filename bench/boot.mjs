// bench/boot: time from inserting <linux-vm> to its first shell prompt, and bytes fetched until then,
// per image, in headless Chromium (Debian's), median of N runs, each in a fresh browser context
// (empty HTTP cache: a first visit). Prints a table and JSON.
//
//   npm run bench:boot [-- --runs 5 --images tiny,debian]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startDevServer } from '@web/dev-server';
import puppeteer from 'puppeteer-core';
import { serveImages } from '../images/serve-images.mjs';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, images: { type: 'string', default: 'tiny,debian' } },
});
const runs = Number(values.runs);
const images = values.images.split(',');
const root = new URL('..', import.meta.url).pathname;

for (const [command, args] of [
  ...images.map((image) => [process.execPath, ['images/build.mjs', image]]),
  [process.execPath, ['node_modules/rollup/dist/bin/rollup', '-c', '--silent']],
]) {
  if (spawnSync(command, args, { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
}

// Counts the bytes of every response body the server sends (Range responses count their part).
let bytesServed = 0;
const countBytes = async (ctx, next) => {
  await next();
  if (ctx.method === 'GET') bytesServed += Number(ctx.response.length) || 0;
};
const server = await startDevServer({
  config: { rootDir: root, port: 0, hostname: '127.0.0.1', middleware: [countBytes, serveImages()] },
  readCliArgs: false,
  readFileConfig: false,
  logStartMessage: false,
});
const origin = `http://127.0.0.1:${server.server.address().port}`;
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
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
