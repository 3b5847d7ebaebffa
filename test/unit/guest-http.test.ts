// The page ⇄ worker byte streams (src/net/port-stream.ts) and HTTP over them (src/net/http-over-tcp.ts),
// both ends in this page over a real MessageChannel. The guest-facing parts are tested with real guests in
// test/host.test.ts.
import { expect } from '@esm-bundle/chai';
import { VmError } from '../../src/errors.js';
import { fetchOverTcp } from '../../src/net/http-over-tcp.js';
import { streamsOverPort } from '../../src/net/port-stream.js';

function pair(window?: number) {
  const { port1, port2 } = new MessageChannel();
  return [streamsOverPort(port1, undefined, window), streamsOverPort(port2, undefined, window)] as const;
}

function randomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (const reader = readable.getReader(); ; ) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) all.set(chunk, (offset += chunk.length) - chunk.length);
  return all;
}

async function writeAll(writable: WritableStream<Uint8Array>, data: Uint8Array, piece = 10_000): Promise<void> {
  const writer = writable.getWriter();
  for (let i = 0; i < data.length; i += piece) await writer.write(data.slice(i, i + piece));
  await writer.close();
}

const text = (s: string) => new TextEncoder().encode(s);

/** A server end that answers any request with `answer` (bytes or pieces), then closes. */
function serve(server: ReturnType<typeof pair>[1], answer: (string | Uint8Array)[]) {
  const requestBytes = (async () => {
    const reader = server.readable.getReader();
    let seen = '';
    while (!seen.includes('\r\n\r\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const writer = server.writable.getWriter();
    for (const piece of answer) await writer.write(typeof piece === 'string' ? text(piece) : piece);
    await writer.close();
    return seen;
  })();
  return requestBytes;
}

describe('streams over a MessagePort', () => {
  it('carries 1 MiB each way at once, intact, through a small window', async () => {
    const [a, b] = pair(16 * 1024);
    const toB = randomBytes(1 << 20, 1);
    const toA = randomBytes(1 << 20, 2);
    const [, , atB, atA] = await Promise.all([writeAll(a.writable, toB), writeAll(b.writable, toA), readAll(b.readable), readAll(a.readable)]);
    expect(atB).to.deep.equal(toB);
    expect(atA).to.deep.equal(toA);
    await Promise.all([a.closed, b.closed]);
  });

  it('holds the writer back while the reader does not read', async () => {
    const [a, b] = pair(8 * 1024);
    const writer = a.writable.getWriter();
    let written = 0;
    void (async () => {
      for (;;) {
        await writer.write(new Uint8Array(1024));
        written += 1024;
      }
    })().catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(written).to.be.at.most(8 * 1024 + 1024, 'bytes accepted without a reader');
    const reader = b.readable.getReader();
    for (let got = 0; got < 32 * 1024; ) got += (await reader.read()).value!.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(written).to.be.greaterThan(32 * 1024);
    a.abort('test', 'done');
  });

  it('ends both sides with the error when one side aborts', async () => {
    const [a, b] = pair();
    a.abort('connection-reset', 'reset by test');
    const error = await b.closed.then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(error?.code).to.equal('connection-reset');
    expect(error?.message).to.equal('reset by test');
    const read = await b.readable
      .getReader()
      .read()
      .then(
        () => 'read',
        () => 'failed',
      );
    expect(read).to.equal('failed');
  });

  it('fails the stream on a malformed message instead of throwing', async () => {
    const { port1, port2 } = new MessageChannel();
    const streams = streamsOverPort(port1);
    port2.postMessage({ kind: 'credit', bytes: 'lots' });
    const error = await streams.closed.then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(error?.code).to.equal('protocol');
  });
});

describe('HTTP over a guest connection', () => {
  it('sends the request line, Host and body, and reads a Content-Length response', async () => {
    const [client, server] = pair();
    const request = serve(server, ['HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello']);
    const response = await fetchOverTcp(new Request('http://guest:8000/path?q=1', { method: 'POST', body: 'abc' }), client);
    expect(response.status).to.equal(201);
    expect(response.statusText).to.equal('Created');
    expect(response.headers.get('x-test')).to.equal('yes');
    expect(await response.text()).to.equal('hello');
    const head = await request;
    expect(head.startsWith('POST /path?q=1 HTTP/1.1\r\nHost: guest:8000\r\nConnection: close\r\n')).to.equal(true, head);
    expect(head).to.match(/\r\ncontent-length: 3\r\n/i);
  });

  it('decodes a chunked body split at awkward places, after a 100 Continue', async () => {
    const [client, server] = pair();
    const body = randomBytes(70_000, 3);
    const hex = body.length.toString(16);
    const wire = [
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      `${hex}\r`,
      `\n`,
      body.slice(0, 1000),
      body.slice(1000),
      '\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n',
    ];
    void serve(server, wire);
    const response = await fetchOverTcp(new Request('http://guest/'), client);
    const got = new Uint8Array(await response.arrayBuffer());
    expect(got.length).to.equal(body.length + 3);
    expect(got.slice(0, body.length)).to.deep.equal(body);
    expect(new TextDecoder().decode(got.slice(body.length))).to.equal('abc');
    expect(response.headers.has('transfer-encoding')).to.equal(false);
  });

  it('reads a body without length until the guest closes', async () => {
    const [client, server] = pair();
    void serve(server, ['HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>', 'hi</p>']);
    const response = await fetchOverTcp(new Request('http://guest/'), client);
    expect(response.headers.get('content-type')).to.equal('text/html');
    expect(await response.text()).to.equal('<p>hi</p>');
  });

  it('rejects an answer that is not HTTP with http-invalid', async () => {
    for (const garbage of ['SSH-2.0-OpenSSH\r\n\r\n', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n']) {
      const [client, server] = pair();
      void serve(server, [garbage]);
      const error = await fetchOverTcp(new Request('http://guest/'), client)
        .then((r) => r.arrayBuffer())
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error, garbage).to.be.instanceOf(VmError);
      expect((error as VmError).code, garbage).to.equal('http-invalid');
    }
  });

  it('fails the body (as fetch does: TypeError) when the guest sends less than its Content-Length', async () => {
    const [client, server] = pair();
    void serve(server, ['HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort']);
    const response = await fetchOverTcp(new Request('http://guest/'), client);
    const error = await response.arrayBuffer().catch((e: unknown) => e);
    expect(error).to.be.instanceOf(TypeError);
  });

  it('closes early when the guest ends before a complete head', async () => {
    const [client, server] = pair();
    void serve(server, ['HTTP/1.1 200 OK\r\nContent-Le']);
    const error = await fetchOverTcp(new Request('http://guest/'), client).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(VmError);
    expect((error as VmError).code).to.equal('http-invalid');
  });
});
