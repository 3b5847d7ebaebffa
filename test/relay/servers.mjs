// The world behind a test relay, all on loopback: a real Wisp server (@mercuryworkshop/wisp-js, allowed to
// reach loopback), an HTTP server with random content, a DNS server that gives the HTTP server a name
// (the Wisp server resolves through it), and a UDP echo server. Used by wtr-relay.mjs and bench/relay.mjs.
//
// HTTP:  GET /page    a random text page (a new one per start)
//        GET /bytes?n=N&seed=S   N pseudo-random bytes (the same N and S give the same bytes); header x-sha256
//        POST /sink          reads the whole body, answers "received N SHA256"
// DNS:   web.relay.test A → 127.0.0.1 (AAAA: no records); any other name: NXDOMAIN
// UDP:   echoes each datagram, prefixed with "echo:"
// The HTTP, DNS and UDP echo servers listen on 127.0.0.1 (what the name resolves to) and on the machine's first
// non-loopback IPv4 address (`hostIP`): the guest reaches that one by IP, since its own 127.0.0.1 is its own.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import dnsPacket from 'dns-packet';
import { server as wisp, logging } from '@mercuryworkshop/wisp-js/server';

export const WEB_NAME = 'web.relay.test';

/** Deterministic bytes (a SHA-256 counter stream) so that a test can know the hash without holding the data. */
export function pseudoRandomBytes(n, seed = 'relay') {
  const out = Buffer.alloc(n);
  for (let offset = 0, block = 0; offset < n; block++) {
    const digest = createHash('sha256').update(`${seed}:${block}`).digest();
    offset += digest.copy(out, offset, 0, Math.min(digest.length, n - offset));
  }
  return out;
}

const listen = (server, ...args) =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', resolve);
    server.listen(...args);
  });

/** The machine's first non-internal IPv4 address. */
function hostAddress() {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!address) throw new Error('the relay tests need a non-loopback IPv4 address on this machine');
  return address;
}

function startHttp() {
  const page = `relay test page ${randomBytes(16).toString('hex')}\n`;
  const handler = (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/page') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(page) });
      res.end(page);
    } else if (url.pathname === '/bytes') {
      const n = Math.min(Number(url.searchParams.get('n') ?? 0), 256 * 1024 * 1024);
      const body = pseudoRandomBytes(n, url.searchParams.get('seed') ?? 'relay');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n, 'x-sha256': createHash('sha256').update(body).digest('hex') });
      res.end(body);
    } else if (url.pathname === '/sink') {
      const hash = createHash('sha256');
      let received = 0;
      req.on('data', (chunk) => ((received += chunk.length), hash.update(chunk)));
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`received ${received} ${hash.digest('hex')}\n`));
    } else {
      res.writeHead(404).end('not found\n');
    }
  };
  return { servers: [http.createServer(handler), http.createServer(handler)], page };
}

function startEcho() {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, from) => socket.send(Buffer.concat([Buffer.from('echo:'), message]), from.port, from.address));
  return socket;
}

function startDns(socket) {
  socket.on('message', (message, from) => {
    let query;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    const known = question && question.name.toLowerCase() === WEB_NAME;
    const answers = known && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: '127.0.0.1' }] : [];
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions,
      answers,
    });
    socket.send(reply, from.port, from.address);
  });
}

/**
 * Starts everything on free ports. Resolves to { wispURL, hostIP, httpPort, page, udpEchoPort, dnsPort,
 * dropRelayConnections(), stop() }; dropRelayConnections() cuts every client's WebSocket (a relay going away).
 */
export async function startRelayTestServers() {
  const hostIP = hostAddress();
  const { servers: webServers, page } = startHttp();
  const [web, webOnHost] = webServers;
  await listen(web, 0, '127.0.0.1');
  await listen(webOnHost, web.address().port, hostIP);

  const dns = dgram.createSocket('udp4');
  startDns(dns);
  await new Promise((resolve) => dns.bind(0, '127.0.0.1', resolve));
  const dnsOnHost = dgram.createSocket('udp4');
  startDns(dnsOnHost);
  await new Promise((resolve) => dnsOnHost.bind(dns.address().port, hostIP, resolve));

  const echo = startEcho();
  await new Promise((resolve) => echo.bind(0, '127.0.0.1', resolve));
  const echoOnHost = startEcho();
  await new Promise((resolve) => echoOnHost.bind(echo.address().port, hostIP, resolve));

  // The relay may reach loopback (our servers) and resolves names through our DNS server only.
  Object.assign(wisp.options, {
    allow_loopback_ips: true,
    allow_private_ips: true,
    dns_method: 'resolve',
    dns_servers: [`127.0.0.1:${dns.address().port}`],
    dns_result_order: 'ipv4first',
  });
  logging.set_level(logging.WARN);
  const relay = http.createServer((req, res) => res.writeHead(426).end('a Wisp relay: connect with a WebSocket\n'));
  const relaySockets = new Set();
  relay.on('upgrade', (req, socket, head) => {
    relaySockets.add(socket);
    socket.on('close', () => relaySockets.delete(socket));
    wisp.routeRequest(req, socket, head);
  });
  await listen(relay, 0, '127.0.0.1');

  const sockets = new Set();
  for (const server of [web, webOnHost, relay]) server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  return {
    wispURL: `ws://127.0.0.1:${relay.address().port}/`,
    hostIP,
    httpPort: web.address().port,
    page,
    udpEchoPort: echo.address().port,
    dnsPort: dns.address().port,
    dropRelayConnections() {
      const count = relaySockets.size;
      for (const socket of relaySockets) socket.destroy();
      return count;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([web, webOnHost, relay].map((s) => new Promise((resolve) => s.close(resolve))));
      for (const socket of [dns, dnsOnHost, echo, echoOnHost]) socket.close();
    },
  };
}
