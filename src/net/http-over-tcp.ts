/**
 * HTTP/1.1 over one TCP connection into the guest: what the element's `fetch()` and the service
 * worker use to reach a web server inside the VM. One request per connection (`Connection: close`);
 * the response body streams as the guest sends it, with chunked, Content-Length and read-to-close
 * framing. The guest's bytes are untrusted: anything that is not HTTP/1.x becomes a VmError
 * `http-invalid`, never a hang or a crash.
 */
import { VmError } from '../errors.js';

export interface ByteStreams {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** The response head may not be larger than this (a web server's headers are far smaller). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Request headers the connection itself decides. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'upgrade', 'te']);

const encoder = new TextEncoder();

/** Sends `request` over `streams` and returns the guest's response (its body still streaming). */
export async function fetchOverTcp(request: Request, streams: ByteStreams): Promise<Response> {
  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : new Uint8Array(await request.arrayBuffer());
  const writer = streams.writable.getWriter();
  await writer.write(encoder.encode(requestHead(request, body?.byteLength)));
  if (body && body.byteLength > 0) await writer.write(body);
  writer.releaseLock();

  const reader = new BufferedReader(streams.readable.getReader());
  let head: ResponseHead;
  do {
    head = parseHead(await reader.readHead());
  } while (head.status >= 100 && head.status < 200); // 100 Continue and friends precede the real answer
  if (head.status > 599) throw new VmError('http-invalid', `The guest answered with status ${head.status}`);

  const noBody = request.method === 'HEAD' || head.status === 204 || head.status === 304;
  const transferEncoding = head.headers.get('transfer-encoding')?.toLowerCase();
  const contentLength = head.headers.get('content-length');
  let bodyStream: ReadableStream<Uint8Array> | null;
  if (noBody) {
    reader.cancel();
    bodyStream = null;
  } else if (transferEncoding && transferEncoding !== 'identity') {
    if (!transferEncoding.endsWith('chunked')) throw new VmError('http-invalid', `Unsupported transfer encoding ${transferEncoding}`);
    bodyStream = reader.chunkedBody();
  } else if (contentLength !== null) {
    if (!/^\d+$/.test(contentLength.trim())) throw new VmError('http-invalid', `Invalid Content-Length ${contentLength}`);
    bodyStream = reader.lengthBody(Number(contentLength));
  } else {
    bodyStream = reader.bodyUntilClose();
  }

  const headers = new Headers();
  for (const [name, value] of head.headers.entries) {
    try {
      headers.append(name, value);
    } catch {
      // A header the Fetch API refuses (malformed value): left out rather than failing the response.
    }
  }
  headers.delete('transfer-encoding'); // the body is already decoded
  return new Response(bodyStream, { status: head.status, statusText: head.reason, headers });
}

function requestHead(request: Request, bodyLength: number | undefined): string {
  const url = new URL(request.url);
  const lines = [`${request.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close'];
  request.headers.forEach((value, name) => {
    if (!CONNECTION_HEADERS.has(name)) lines.push(`${name}: ${value}`);
  });
  if (bodyLength !== undefined) lines.push(`Content-Length: ${bodyLength}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

interface ResponseHead {
  status: number;
  reason: string;
  headers: { entries: [string, string][]; get(name: string): string | null };
}

function parseHead(text: string): ResponseHead {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!status) throw new VmError('http-invalid', `The guest's answer is not an HTTP/1.x response: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const entries: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new VmError('http-invalid', `Malformed response header ${JSON.stringify(line.slice(0, 80))}`);
    entries.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return {
    status: Number(status[1]),
    reason: (status[2] ?? '').replace(/[^\t\x20-\x7e]/g, ''),
    headers: { entries, get: (name) => entries.find(([n]) => n === name)?.[1] ?? null },
  };
}

/** Reads the connection in pieces: a head up to its blank line, then a body in one of HTTP's framings. */
class BufferedReader {
  private buffer = new Uint8Array(0);
  private ended = false;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The response head without its final blank line, as Latin-1 text. */
  readHead(): Promise<string> {
    return this.readUntil(BLANK_LINE, 'The response head is larger than 64 KiB', 'The guest closed the connection before a complete response head');
  }

  lengthBody(length: number): ReadableStream<Uint8Array> {
    let remaining = length;
    return this.body(async () => {
      if (remaining === 0) return null;
      if (this.buffer.length === 0 && !(await this.fill())) throw new VmError('http-invalid', `The body ended ${remaining} bytes early`);
      return this.take(Math.min(remaining, this.buffer.length), (n) => (remaining -= n));
    });
  }

  bodyUntilClose(): ReadableStream<Uint8Array> {
    return this.body(async () => {
      if (this.buffer.length === 0 && !(await this.fill())) return null;
      return this.take(this.buffer.length);
    });
  }

  chunkedBody(): ReadableStream<Uint8Array> {
    let inChunk = 0;
    let done = false;
    return this.body(async () => {
      if (done) return null;
      if (inChunk === 0) {
        const sizeLine = await this.readLine();
        const size = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(sizeLine.trim());
        if (!size) throw new VmError('http-invalid', `Malformed chunk size ${JSON.stringify(sizeLine.slice(0, 40))}`);
        inChunk = parseInt(size[1]!, 16);
        if (inChunk === 0) {
          while ((await this.readLine()) !== ''); // trailers
          done = true;
          return null;
        }
      }
      if (this.buffer.length === 0 && !(await this.fill())) throw new VmError('http-invalid', 'The chunked body ended early');
      const piece = this.take(Math.min(inChunk, this.buffer.length), (n) => (inChunk -= n));
      if (inChunk === 0 && (await this.readLine()) !== '') throw new VmError('http-invalid', 'A chunk is not followed by CRLF');
      return piece;
    });
  }

  cancel(): void {
    void this.reader.cancel().catch(() => {});
  }

  /** A stream whose pulls call `next` (null: the end); cancelling it closes the connection. */
  private body(next: () => Promise<Uint8Array | null>): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const piece = await next();
          if (piece) {
            controller.enqueue(piece);
          } else {
            controller.close();
            this.cancel();
          }
        },
        cancel: () => this.cancel(),
      },
      { highWaterMark: 0 },
    );
  }

  private take(length: number, account?: (n: number) => void): Uint8Array {
    const piece = this.buffer.slice(0, length);
    this.buffer = this.buffer.subarray(length);
    account?.(length);
    return piece;
  }

  private readLine(): Promise<string> {
    return this.readUntil(CRLF, 'A line of the chunked body is too long', 'The chunked body ended early');
  }

  /** The text before the next `delimiter` (Latin-1), consuming both; at most MAX_HEAD_BYTES are buffered. */
  private async readUntil(delimiter: readonly number[], tooLong: string, endedEarly: string): Promise<string> {
    for (;;) {
      const end = indexOfSequence(this.buffer, delimiter);
      if (end >= 0) {
        const text = latin1(this.buffer.subarray(0, end));
        this.buffer = this.buffer.subarray(end + delimiter.length);
        return text;
      }
      if (this.buffer.length > MAX_HEAD_BYTES) throw new VmError('http-invalid', tooLong);
      if (!(await this.fill())) throw new VmError('http-invalid', endedEarly);
    }
  }

  /** Appends the next piece from the connection; false at its end. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.reader.read();
    if (done || !value) {
      this.ended = true;
      return false;
    }
    const merged = new Uint8Array(this.buffer.length + value.length);
    merged.set(this.buffer);
    merged.set(value, this.buffer.length);
    this.buffer = merged;
    return true;
  }
}

const CRLF = [13, 10];
const BLANK_LINE = [13, 10, 13, 10];

function indexOfSequence(bytes: Uint8Array, sequence: readonly number[]): number {
  search: for (let i = 0; i + sequence.length <= bytes.length; i++) {
    for (let j = 0; j < sequence.length; j++) if (bytes[i + j] !== sequence[j]) continue search;
    return i;
  }
  return -1;
}

function latin1(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}
