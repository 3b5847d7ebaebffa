// Test-server pieces for the disk suites (web-test-runner.config.mjs):
//  - /test-disk/norange/<image>/<file>: the built images from a server that ignores Range (200, whole body);
//  - /test-disk/chunked/<image>/manifest.json: the image's manifest with `disk.chunks`, its chunk files
//    generated once from disk.img if the build did not emit them (test cache under ~/.cache/linux-vm);
//  - the `set-storage-quota` command: Chromium's Storage.overrideQuotaForOrigin via the DevTools protocol.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { imagesDist, serveImages } from '../images/serve-images.mjs';
import { writeDiskChunks } from '../images/lib/chunks.mjs';
import { cacheRoot } from '../images/lib/util.mjs';

const inside = (root, file) => file.startsWith(root + path.sep);
const builtImages = () => path.join(cacheRoot(), 'images');

/** An image by dist name (`debian`) or by build id in the image cache (`debian-<hash12>`). */
async function imageDir(image) {
  const dist = path.join(imagesDist, image);
  return (await fs.stat(dist).catch(() => undefined)) ? dist : path.join(builtImages(), image);
}

/**
 * The manifest URL the disk suite boots: /images/debian/manifest.json, or with LINUX_VM_DISK_IMAGE=<build id>
 * a build from the image cache (served at /test-disk/images/<id>/), e.g. to test while images/dist moves.
 */
export const diskTestImage = () =>
  process.env.LINUX_VM_DISK_IMAGE ? `/test-disk/images/${process.env.LINUX_VM_DISK_IMAGE}/manifest.json` : '/images/debian/manifest.json';

export function diskTestServer() {
  const generating = new Map();
  const cachedImages = serveImages({ prefix: '/test-disk/images/', root: builtImages() });
  async function chunkDir(image) {
    const manifest = JSON.parse(await fs.readFile(path.join(await imageDir(image), 'manifest.json'), 'utf8'));
    if (manifest.disk?.chunks) return { manifest, dir: await imageDir(image) };
    const dir = path.join(cacheRoot(), 'test-chunks', manifest.id);
    if (!generating.has(dir)) {
      generating.set(dir, (async () => {
        const stamp = path.join(dir, 'chunks.json');
        const done = await fs.readFile(stamp, 'utf8').catch(() => undefined);
        if (done) return JSON.parse(done);
        await fs.mkdir(dir, { recursive: true });
        await fs.symlink(path.join(await imageDir(image), manifest.disk.url), path.join(dir, 'disk.img')).catch(() => {});
        const chunks = await writeDiskChunks(dir);
        await fs.writeFile(stamp, JSON.stringify(chunks));
        return chunks;
      })());
    }
    manifest.disk.chunks = await generating.get(dir);
    return { manifest, dir };
  }

  return async function diskTestMiddleware(ctx, next) {
    if (ctx.path.startsWith('/test-disk/images/')) return cachedImages(ctx, next);
    const norange = /^\/test-disk\/norange\/([a-z0-9-]+)\/(.+)$/.exec(ctx.path);
    if (norange) {
      const dir = await imageDir(norange[1]);
      const file = path.resolve(dir, decodeURIComponent(norange[2]));
      const info = inside(dir, file) ? await fs.stat(file).catch(() => undefined) : undefined;
      if (!info?.isFile()) return next();
      ctx.status = 200; // whatever the Range header asked for
      ctx.set('Content-Type', 'application/octet-stream');
      ctx.length = info.size;
      ctx.body = ctx.method === 'HEAD' ? undefined : createReadStream(file);
      return;
    }
    const chunked = /^\/test-disk\/chunked\/([a-z0-9-]+)\/(.+)$/.exec(ctx.path);
    if (!chunked) return next();
    const [, image, rest] = chunked;
    const { manifest, dir } = await chunkDir(image);
    if (rest === 'manifest.json') {
      // Everything but the chunks stays where it is; the chunks come from a server without Range.
      const up = (await fs.stat(path.join(imagesDist, image)).catch(() => undefined)) ? `/images/${image}/` : `/test-disk/images/${image}/`;
      for (const key of ['bios', 'vgaBios', 'kernel', 'initrd']) if (manifest[key]) manifest[key] = up + manifest[key];
      if (manifest.snapshot) manifest.snapshot.url = up + manifest.snapshot.url;
      manifest.disk.url = `/test-disk/norange/${image}/${manifest.disk.url}`;
      ctx.set('Cache-Control', 'no-cache');
      ctx.body = manifest;
      return;
    }
    const file = path.resolve(dir, decodeURIComponent(rest));
    if (!inside(dir, file) || !rest.startsWith('disk.chunks/')) return next();
    const info = await fs.stat(file).catch(() => undefined);
    if (!info?.isFile()) return next();
    ctx.set('Content-Type', 'application/octet-stream');
    ctx.length = info.size;
    ctx.body = createReadStream(file);
  };
}

/**
 * wtr plugin: `executeServerCommand('set-storage-quota', { quota })` (bytes; omit to restore), and
 * `executeServerCommand('disk-test-config', { key })`.
 */
export function storageQuotaPlugin() {
  // DevTools overrides last as long as the DevTools session that set them: keep one per page.
  const sessions = new WeakMap();
  return {
    name: 'linux-vm-storage-quota',
    async executeCommand({ command, payload, session }) {
      // Settings of the disk suite that a run can change: LINUX_VM_DISK_CYCLES (reload cycles, default 20).
      // LINUX_VM_DISK_IMAGE: see diskTestImage().
      if (command === 'disk-test-config') {
        if (payload?.key === 'cycles') return Number(process.env.LINUX_VM_DISK_CYCLES || 20);
        if (payload?.key === 'image') return diskTestImage();
        return undefined;
      }
      if (command !== 'set-storage-quota') return undefined;
      const page = session.browser.getPage(session.id);
      if (!sessions.has(page)) sessions.set(page, await page.createCDPSession());
      const origin = new URL(page.url()).origin;
      await sessions.get(page).send('Storage.overrideQuotaForOrigin', { origin, ...(payload?.quota !== undefined && { quotaSize: payload.quota }) });
      return true;
    },
  };
}
