// Runs in a module worker for lwip-stack.test.ts: two stacks (one with catch-all) wired back to back.
import { loadLwipStack, lwipWasmUrl, type LwipStack, type TcpConnection } from '../../src/net/lwip/lwip-stack.js';

const stacks = new Map<string, LwipStack>();
const wire = (packet: Uint8Array) => {
  const target = stacks.get(packet.subarray(16, 20).join('.')) ?? stacks.get('10.0.0.1');
  setTimeout(() => target?.input(packet));
};

async function hash(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readAll(connection: TcpConnection): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of connection.readable as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((offset, c) => (out.set(c, offset), offset + c.length), 0);
  return out;
}

async function run() {
  const relay = await loadLwipStack(lwipWasmUrl, { address: '10.0.0.1', netmask: '255.255.255.0', catchAll: true, output: wire });
  const client = await loadLwipStack(lwipWasmUrl, { address: '10.0.0.2', netmask: '255.255.255.0', gateway: '10.0.0.1', output: wire });
  stacks.set('10.0.0.1', relay);
  stacks.set('10.0.0.2', client);
  const data = new Uint8Array(512 * 1024);
  for (let offset = 0; offset < data.length; offset += 65536) crypto.getRandomValues(data.subarray(offset, offset + 65536));
  const accepted = new Promise<TcpConnection>((resolve) => (relay.onAcceptAny = resolve));
  const connection = await client.connect({ address: '203.0.113.7', port: 8443 });
  const relayed = await accepted;
  const writer = connection.writable.getWriter();
  const received = readAll(relayed);
  for (let offset = 0; offset < data.length; offset += 32768) await writer.write(data.subarray(offset, offset + 32768));
  await writer.close();
  const got = await received;
  await relayed.writable.getWriter().close();
  await connection.closed;
  return { ok: true, sentHash: await hash(data), receivedHash: await hash(got), local: relayed.local };
}

run().then(
  (result) => postMessage(result),
  (error: Error) => postMessage({ ok: false, error: `${error.name}: ${error.message}` }),
);
