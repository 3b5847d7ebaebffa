// The Wisp client against a real Wisp server on loopback (test/relay/servers.mjs, started by wtr-relay.mjs).
import { expect } from '@esm-bundle/chai';
import { parseRelayUrl } from '../../src/net/relay/relay-url.js';
import { WispCloseReason, WispConnection, WispError } from '../../src/net/relay/wisp-client.js';
import { type RelayInfo, relayInfo } from '../relay/relay-info.js';
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) (out.set(chunk, at), (at += chunk.length));
  return out;
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of readable as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
  return concat(chunks);
}

/** Reads one HTTP answer with a Content-Length (the connection may stay open). */
async function readHttpAnswer(readable: ReadableStream<Uint8Array>): Promise<{ header: string; body: Uint8Array }> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let header: string | undefined;
  let length = Infinity;
  while (size < length) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (header === undefined) {
      const start = concat(chunks);
      const end = text(start.subarray(0, 4096)).indexOf('\r\n\r\n');
      if (end < 0) continue;
      header = text(start.subarray(0, end));
      chunks.splice(0, chunks.length, start.slice(end + 4));
      size = start.length - end - 4;
      length = Number(/content-length: (\d+)/i.exec(header)?.[1] ?? Infinity);
    }
  }
  reader.releaseLock();
  return { header: header ?? '', body: concat(chunks) };
}

async function httpGet(connection: WispConnection, host: string, port: number, path: string): Promise<Uint8Array> {
  const stream = connection.openTcp(host, port);
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
  writer.releaseLock();
  return readAll(stream.readable);
}

describe('WispConnection', () => {
  let relay: RelayInfo;
  let connection: WispConnection;
  before(async () => {
    relay = await relayInfo();
    connection = await WispConnection.connect(relay.wispURL);
  });
  after(() => connection?.close());

  it('completes the v2 handshake (the server sends INFO first when asked for wisp-v2)', () => {
    expect(connection.version).to.equal(2);
  });

  it('fetches a page over a TCP stream, by IP and by a name the relay resolves', async () => {
    for (const host of ['127.0.0.1', relay.webName]) {
      const answer = text(await httpGet(connection, host, relay.httpPort, '/page'));
      expect(answer.startsWith('HTTP/1.1 200'), answer).to.equal(true);
      expect(answer.endsWith(`\r\n\r\n${relay.page}`)).to.equal(true);
    }
  });

  it('receives 4 MiB intact (more than the credits, which only bound what we send)', async () => {
    const n = 4 * 1024 * 1024;
    const answer = await httpGet(connection, '127.0.0.1', relay.httpPort, `/bytes?n=${n}`);
    const header = text(answer.subarray(0, 400)).split('\r\n\r\n')[0]!;
    const body = answer.subarray(header.length + 4);
    expect(body.length).to.equal(n);
    const expected = /x-sha256: ([0-9a-f]{64})/i.exec(header)![1];
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body.slice())), (b) => b.toString(16).padStart(2, '0')).join('');
    expect(digest).to.equal(expected);
  });

  it('holds the relay back while a reader lags (WebSocketStream): reading pauses near the limit, then all 48 MiB arrive intact', async function () {
    this.timeout(120_000);
    expect('WebSocketStream' in globalThis, 'Chromium has WebSocketStream').to.equal(true);
    const limit = 4 * 1024 * 1024;
    const lagging = await WispConnection.connect(relay.wispURL, { receiveBufferLimit: limit });
    try {
      const n = 48 * 1024 * 1024;
      const stream = lagging.openTcp('127.0.0.1', relay.httpPort);
      const writer = stream.writable.getWriter();
      // HTTP/1.1: the server keeps its end open after the answer (see RECEIVE_BUFFER_LIMIT on why that matters).
      await writer.write(new TextEncoder().encode(`GET /bytes?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`));
      // Nobody reads: what arrives stops near the limit instead of the whole 48 MiB (the server needs a few
      // seconds to make the bytes, so wait for the first MiBs, then give it time to overshoot).
      for (let i = 0; i < 300 && lagging.stats.bytesReceived < limit; i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 2000));
      const waiting = lagging.stats.bytesReceived;
      expect(waiting).to.be.within(limit, limit + 2 * 1024 * 1024);
      const { header, body } = await readHttpAnswer(stream.readable);
      expect(body.length).to.equal(n);
      const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body.slice())), (b) => b.toString(16).padStart(2, '0')).join('');
      expect(digest).to.equal(/x-sha256: ([0-9a-f]{64})/i.exec(header)![1]);
      stream.close();
      // Reading went on after the pause: the connection still carries new streams.
      expect(text(await httpGet(lagging, '127.0.0.1', relay.httpPort, '/page'))).to.include(relay.page);
    } finally {
      lagging.close();
    }
  });

  it('sends more DATA packets than the initial credits, waiting for CONTINUE', async () => {
    const stream = connection.openTcp('127.0.0.1', relay.httpPort);
    const writer = stream.writable.getWriter();
    // A request whose body is 600 packets: the server answers only once it has read all of it.
    const body = 600 * 1024;
    await writer.write(new TextEncoder().encode(`POST /sink HTTP/1.0\r\nHost: x\r\nContent-Length: ${body}\r\n\r\n`));
    for (let i = 0; i < 600; i++) await writer.write(new Uint8Array(1024));
    writer.releaseLock();
    const answer = text(await readAll(stream.readable));
    expect(answer).to.include(`received ${body} `);
  });

  it('carries UDP datagrams both ways', async () => {
    const stream = connection.openUdp('127.0.0.1', relay.udpEchoPort);
    const replies: string[] = [];
    const got = new Promise<void>((resolve) => {
      stream.onDatagram = (d) => {
        replies.push(text(d));
        if (replies.length === 2) resolve();
      };
    });
    stream.send(new TextEncoder().encode('one'));
    stream.send(new TextEncoder().encode('two'));
    await got;
    expect(replies.sort()).to.deep.equal(['echo:one', 'echo:two']);
    stream.close();
    expect(await stream.closed).to.equal(WispCloseReason.voluntary);
  });

  it('errors the readable with the server’s reason when a name cannot be resolved or a port refuses', async () => {
    for (const [host, port] of [['no-such-name.relay.test', relay.httpPort], ['127.0.0.1', 9]] as const) {
      const stream = connection.openTcp(host, port);
      const error = await readAll(stream.readable).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `${host}:${port}`).to.be.instanceOf(WispError);
      expect((error as WispError).reason).not.to.equal(WispCloseReason.voluntary);
    }
    // The connection survives failed streams.
    expect(text(await httpGet(connection, '127.0.0.1', relay.httpPort, '/page'))).to.include(relay.page);
  });

  it('rejects with a WispError when nothing listens, or the server does not speak Wisp', async () => {
    const nothing = await WispConnection.connect('ws://127.0.0.1:9/').catch((e: unknown) => e);
    expect(nothing).to.be.instanceOf(WispError);
    expect((nothing as Error).message).to.include('127.0.0.1:9');
    // The test server's own origin answers WebSockets for its live reload, but not with Wisp.
    const notWisp = await WispConnection.connect(`ws://${location.host}/`, { timeoutMs: 3000 }).catch((e: unknown) => e);
    expect(notWisp).to.be.instanceOf(WispError);
  });
});

describe('parseRelayUrl', () => {
  it('accepts ws: and wss: URLs and rejects anything else with relay-url-invalid', () => {
    expect(parseRelayUrl('ws://127.0.0.1:5001/wisp/', 'http://a/')).to.equal('ws://127.0.0.1:5001/wisp/');
    expect(parseRelayUrl(' wss://relay.example ', 'http://a/')).to.equal('wss://relay.example/');
    for (const bad of ['', '   ', 'http://relay.example/', 'relative/path', 'ws://[bad']) {
      expect(() => parseRelayUrl(bad, 'http://a/'), bad).to.throw().with.property('code', 'relay-url-invalid');
    }
  });
});
