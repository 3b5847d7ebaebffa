// web-test-runner middleware for the `network` group: a loopback tailnet (start.mjs) started on first
// use and killed when the runner exits, and a few endpoints the browser tests call.
//
//   GET /__tailnet/info               {controlURL, authKey, peerIP, peerName}  (starts the tailnet once)
//   GET /__tailnet/peer/<path>?…      forwarded to the peer's control API (fetch, send, receive; see peer/main.go)
//   GET /__tailnet/register?key=K     approves an interactive login (headscale nodes register; K from the login URL)
//   GET /__tailnet/wasm-requests      how many requests for /wasm/dist/tailscale/* this server has answered
//
// The pre-auth key is a throw-away key of this loopback tailnet (ephemeral, 2 h); it is never logged.
import http from 'node:http';
import { startTailnet } from './start.mjs';

export function tailnetMiddleware() {
  let tailnet;
  let wasmRequests = 0;
  // start.mjs kills the tailnet's processes when this process exits.

  return async (ctx, next) => {
    if (ctx.path.startsWith('/wasm/dist/tailscale/')) wasmRequests++;
    if (!ctx.path.startsWith('/__tailnet/')) return next();
    const route = ctx.path.slice('/__tailnet/'.length);
    if (route === 'wasm-requests') {
      ctx.body = { count: wasmRequests };
      return;
    }
    tailnet ??= startTailnet({ cors: true });
    let t;
    try {
      t = await tailnet;
    } catch (error) {
      tailnet = undefined;
      ctx.status = 500;
      ctx.body = `the test tailnet did not start: ${error.message}`;
      return;
    }
    if (route === 'info') {
      ctx.body = { controlURL: t.frontDoorURL, authKey: t.authKey, peerIP: t.peerIP, peerName: t.peerName };
    } else if (route === 'register') {
      const key = String(ctx.query.key ?? '');
      try {
        ctx.body = JSON.parse(t.headscale('nodes', 'register', '--user', 'linux-vm-test', '--key', key));
      } catch (error) {
        ctx.status = 400;
        ctx.body = error.message;
      }
    } else if (route.startsWith('peer/')) {
      const { status, body } = await get(`${t.peerControlURL}/${route.slice(5)}${ctx.search}`);
      ctx.status = status;
      ctx.body = body;
    } else {
      ctx.status = 404;
    }
  };
}

function get(url) {
  return new Promise((resolve) => {
    http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', (error) => resolve({ status: 502, body: `peer control API: ${error.message}` }));
  });
}
