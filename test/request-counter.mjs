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
    if (ctx.path.startsWith('/wasm/dist/lwip/')) {
      // web-test-runner's own cache middleware, outside ours, marks every file cacheable for a year once we
      // return: keep it from replacing our no-store.
      const set = ctx.response.set.bind(ctx.response);
      ctx.response.set = (field, value) => (String(field).toLowerCase() === 'cache-control' ? undefined : set(field, value));
      set('Cache-Control', 'no-store');
    }
    return next();
  };
}
