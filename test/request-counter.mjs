// Counts the test server's requests for the wasm files, so a test can check that wasm is fetched only when
// needed (a worker's fetches never appear in the page's resource timing). lwIP's wasm is served uncacheable, so
// that every load in the one browser of a test run is a request here (the Tailscale wasm, 27 MB, stays cacheable).
//   GET /__requests?prefix=/wasm/dist/lwip/   how many requests for paths under that prefix were answered
export function requestCounter() {
  const counts = new Map();
  return async (ctx, next) => {
    if (ctx.path === '/__requests') {
      const prefix = String(ctx.query.prefix ?? '');
      let count = 0;
      for (const [path, n] of counts) if (path.startsWith(prefix)) count += n;
      ctx.body = { count };
      return;
    }
    if (ctx.path.startsWith('/wasm/')) counts.set(ctx.path, (counts.get(ctx.path) ?? 0) + 1);
    await next();
    if (ctx.path.startsWith('/wasm/dist/lwip/')) ctx.set('Cache-Control', 'no-store');
  };
}
