// Shared setup of the browser benchmarks (bench/boot.mjs, bench/cpu.mjs): build the images and the bundle,
// serve the repository (+ images/dist at /images/) with @web/dev-server, drive Debian's headless Chromium.
import { spawnSync } from 'node:child_process';
import { startDevServer } from '@web/dev-server';
import puppeteer from 'puppeteer-core';
import { serveImages } from '../../images/serve-images.mjs';

/** The repository root (absolute path, with a trailing slash). */
export const root = new URL('../..', import.meta.url).pathname;

/** Builds (or finds cached) one guest image (images/build.mjs NAME); true if it succeeded. */
export const buildImage = (name) =>
  spawnSync(process.execPath, ['images/build.mjs', name], { cwd: root, stdio: 'inherit' }).status === 0;

/** Builds the rollup bundle dist/linux-vm.js, after the lwIP wasm it ships (cached); true if it succeeded. */
export const buildBundle = () =>
  spawnSync(process.execPath, ['wasm/lwip/build.mjs', '--quiet'], { cwd: root, stdio: 'inherit' }).status === 0 &&
  spawnSync(process.execPath, ['node_modules/rollup/dist/bin/rollup', '-c', '--silent'], { cwd: root, stdio: 'inherit' }).status === 0;

/** Builds (or finds cached) the named guest images, then the bundle. Exits on the first failure. */
export function buildImagesAndBundle(images) {
  for (const build of [...images.map((image) => () => buildImage(image)), buildBundle]) {
    if (!build()) process.exit(1);
  }
}

/**
 * Serves the repository root and the built images (with Range support) on 127.0.0.1, a free port.
 * `middleware` runs before the image server. Returns { origin, stop() }.
 */
export async function startBenchServer({ middleware = [] } = {}) {
  const server = await startDevServer({
    config: { rootDir: root, port: 0, hostname: '127.0.0.1', middleware: [...middleware, serveImages()] },
    readCliArgs: false,
    readFileConfig: false,
    logStartMessage: false,
  });
  return { origin: `http://127.0.0.1:${server.server.address().port}`, stop: () => server.stop() };
}

/**
 * Headless Chromium ($CHROMIUM or /usr/bin/chromium) with the flags that work here (see DESIGN.md).
 * `protocolTimeout` (ms, puppeteer's default 180 s) bounds each page.evaluate: raise it for long guest runs.
 */
export function launchBrowser({ protocolTimeout } = {}) {
  return puppeteer.launch({
    ...(protocolTimeout ? { protocolTimeout } : {}),
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Opens bench/net-page.html, boots `image` without a network, then sets `properties` and `network` and waits
 * for the guest's DHCP lease. Returns { join: {msToIpAssigned, ipv4}, guest(command, pattern, ms) }: `guest`
 * types a command and resolves with { value: the pattern's first group, ms }.
 */
export async function bootOnNetwork(browser, origin, image, network, properties) {
  const page = await browser.newPage();
  await page.goto(`${origin}/bench/net-page.html`);
  await page.waitForFunction('window.benchPageReady === true');
  const guest = (command, pattern, ms) => page.evaluate((c, p, t) => window.guest(c, p, t), command, pattern, ms);
  const join = await page.evaluate((i, n, p) => window.bootThenNetwork(i, n, p), `/images/${image}/manifest.json`, network, properties);
  console.error(`ip-assigned after ${(join.msToIpAssigned / 1000).toFixed(2)} s: ${join.ipv4}`);
  await guest('for i in $(seq 90); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[ok]"', '^LEASE\\[(ok)\\]$');
  return { join, guest };
}
