// web-test-runner middleware for the `relay` group (and the Wisp client's unit tests): the loopback world
// of servers.mjs, started on first use and stopped when the runner exits, and a few endpoints for the tests.
//
//   GET /__relay/info            {wispURL, hostIP, httpPort, page, udpEchoPort, dnsPort, webName}  (starts the servers once)
//   GET /__relay/bytes?n=N       {sha256} of what the HTTP server sends for /bytes?n=N
//   GET /__relay/drop            cuts the relay's WebSocket connections: {dropped}
import { createHash } from 'node:crypto';
import { WEB_NAME, pseudoRandomBytes, startRelayTestServers } from './servers.mjs';

export function relayMiddleware() {
  let servers;
  process.once('exit', () => servers?.then((s) => s.stop()).catch(() => {}));

  return async (ctx, next) => {
    if (!ctx.path.startsWith('/__relay/')) return next();
    const route = ctx.path.slice('/__relay/'.length);
    if (route === 'bytes') {
      ctx.body = { sha256: createHash('sha256').update(pseudoRandomBytes(Number(ctx.query.n))).digest('hex') };
      return;
    }
    servers ??= startRelayTestServers();
    let s;
    try {
      s = await servers;
    } catch (error) {
      servers = undefined;
      ctx.status = 500;
      ctx.body = `the relay test servers did not start: ${error.message}`;
      return;
    }
    if (route === 'info') ctx.body = { wispURL: s.wispURL, hostIP: s.hostIP, httpPort: s.httpPort, page: s.page, udpEchoPort: s.udpEchoPort, dnsPort: s.dnsPort, webName: WEB_NAME };
    else if (route === 'drop') ctx.body = { dropped: s.dropRelayConnections() };
    else ctx.status = 404;
  };
}
