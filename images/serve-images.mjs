// Serves built guest images (images/dist/<name>/…) at /images/<name>/… with HTTP Range support,
// which v86 needs to stream a disk block by block. A koa middleware for @web/dev-server and
// @web/test-runner (the dev server's own static files ignore Range).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const imagesDist = fileURLToPath(new URL('./dist', import.meta.url));

const contentTypes = { '.json': 'application/json; charset=utf-8' };

export function serveImages({ prefix = '/images/', root = imagesDist } = {}) {
  return async function serveImagesMiddleware(ctx, next) {
    if (!ctx.path.startsWith(prefix) || !['GET', 'HEAD'].includes(ctx.method)) return next();
    const file = resolve(root, decodeURIComponent(ctx.path.slice(prefix.length)));
    if (!file.startsWith(root + sep)) return next();
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      ctx.status = 404;
      ctx.body = 'not found';
      return;
    }
    const extension = file.slice(file.lastIndexOf('.'));
    ctx.set('Content-Type', contentTypes[extension] ?? 'application/octet-stream');
    ctx.set('Accept-Ranges', 'bytes');
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('Last-Modified', info.mtime.toUTCString());
    ctx.set('ETag', `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`);
    // A return visit revalidates (no-cache) and gets 304 Not Modified for an unchanged file.
    ctx.status = 200;
    if (!ctx.get('Range') && ctx.fresh) {
      ctx.status = 304;
      return;
    }

    let start = 0;
    let end = info.size - 1;
    const range = ctx.get('Range');
    // If-Range (RFC 9110 13.1.5): a range of the file as it was; if it changed since, send all of it.
    const ifRange = ctx.get('If-Range');
    if (range && (!ifRange || ifRange === info.mtime.toUTCString())) {
      const match = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (match && (match[1] || match[2])) {
        if (match[1]) {
          start = Number(match[1]);
          if (match[2]) end = Math.min(Number(match[2]), info.size - 1);
        } else {
          start = Math.max(0, info.size - Number(match[2])); // suffix range: the last N bytes
        }
      }
      if (!match || start > end) {
        ctx.status = 416;
        ctx.set('Content-Range', `bytes */${info.size}`);
        return;
      }
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${start}-${end}/${info.size}`);
    } else {
      ctx.status = 200;
    }
    if (ctx.method === 'GET') ctx.body = createReadStream(file, { start, end });
    ctx.length = end - start + 1;
  };
}
