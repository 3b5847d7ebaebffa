// The lwIP binding in Node: stacks wired back to back through an asynchronous wire.
//   node --test test/node/   (needs wasm/dist/lwip/lwip.wasm: node wasm/lwip/build.mjs)
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { destinationOf, loadBinding, readAll, seededRandom, Wire, writeAll } from './lwip-harness.mjs';

let binding;
before(async () => {
  binding = await loadBinding();
});

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Resolves with the next connection `listen` accepts. */
function acceptOne(stack, port) {
  return new Promise((resolve) => {
    const stop = stack.listen(port, (connection) => {
      stop();
      resolve(connection);
    });
  });
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

/** Echoes one short message over a fresh connection: the stacks still work. */
async function assertWorks(client, server, serverAddress, port) {
  const stop = server.listen(port, async (connection) => {
    const got = await readAll(connection);
    await writeAll(connection, got);
  });
  const connection = await client.connect({ address: serverAddress, port });
  const message = new TextEncoder().encode(`still working on ${port}`);
  const [echo] = await Promise.all([readAll(connection), writeAll(connection, message)]);
  assert.deepEqual(echo, message);
  stop();
}

describe('lwIP stack (Node, back to back)', { timeout: 60_000 }, () => {
  test('1 MiB each way at once arrives intact (SHA-256)', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const random = seededRandom(1);
    const fromA = random.bytes(1 << 20);
    const fromB = random.bytes(1 << 20);
    const accepted = acceptOne(a, 8080);
    const client = await b.connect({ address: '10.0.0.1', port: 8080 });
    const server = await accepted;
    assert.deepEqual(server.remote, client.local);
    assert.deepEqual(server.local, { address: '10.0.0.1', port: 8080 });
    const [atServer, atClient] = await Promise.all([
      readAll(server), readAll(client), writeAll(server, fromA, 50_000), writeAll(client, fromB, 70_000),
    ]);
    assert.equal(sha256(atServer), sha256(fromB));
    assert.equal(sha256(atClient), sha256(fromA));
    await Promise.all([server.closed, client.closed]);
    assert.equal(a.stats.connections, 0);
    assert.equal(b.stats.connections, 0);
    assert.ok(a.stats.packetsIn > 700 && a.stats.packetsOut > 700, JSON.stringify(a.stats));
    a.dispose();
    b.dispose();
  });

  test('100 connections at once, 256 KiB echoed on each, all intact and without stalls', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    a.listen(7, async (connection) => writeAll(connection, await readAll(connection), 10_000));
    const payload = seededRandom(6).bytes(256 * 1024);
    const started = performance.now();
    const echoes = await Promise.all(Array.from({ length: 100 }, async () => {
      const connection = await b.connect({ address: '10.0.0.1', port: 7 });
      const [echo] = await Promise.all([readAll(connection), writeAll(connection, payload, 30_000)]);
      return sha256(echo);
    }));
    assert.deepEqual(new Set(echoes), new Set([sha256(payload)]));
    // 50 MiB through both stacks; stalls (writers or ACKs waiting for lwIP's timers) made this take seconds.
    assert.ok(performance.now() - started < 10_000, `took ${Math.round(performance.now() - started)} ms`);
    a.dispose();
    b.dispose();
  });

  test('a port nobody listens on refuses; listen twice is an error; unlisten stops accepting', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const refused = await rejection(b.connect({ address: '10.0.0.1', port: 81 }));
    assert.equal(refused.name, 'TcpError');
    assert.equal(refused.code, 'connection-refused');
    const stop = a.listen(81, () => {});
    assert.throws(() => a.listen(81, () => {}), /port 81 is already in use/);
    stop();
    assert.equal((await rejection(b.connect({ address: '10.0.0.1', port: 81 }))).code, 'connection-refused');
    a.dispose();
    b.dispose();
  });

  test('graceful close: each side ends the other\'s readable, then `closed` settles', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const accepted = acceptOne(a, 22);
    const client = await b.connect({ address: '10.0.0.1', port: 22 });
    const server = await accepted;
    await server.writable.getWriter().close();
    const reader = client.readable.getReader();
    assert.deepEqual(await reader.read(), { done: true, value: undefined });
    // Half-closed: the client may still send.
    const message = new TextEncoder().encode('after the server\'s FIN');
    await writeAll(client, message);
    assert.deepEqual(await readAll(server), message);
    await Promise.all([client.closed, server.closed]);
    assert.equal(a.stats.connections + b.stats.connections, 0);
    await assertWorks(b, a, '10.0.0.1', 22);
    a.dispose();
    b.dispose();
  });

  test('closing after the peer\'s FIN with data still unread is a clean close, not a reset', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const accepted = acceptOne(a, 25);
    const client = await b.connect({ address: '10.0.0.1', port: 25 });
    const server = await accepted;
    const response = seededRandom(5).bytes(20_000);
    await writeAll(server, response);
    await sleep(50); // the data and the FIN are with the client, unread
    const request = new TextEncoder().encode('sent after the FIN arrived');
    await writeAll(client, request);
    assert.deepEqual(await readAll(server), request);
    assert.deepEqual(await readAll(client), response);
    await Promise.all([client.closed, server.closed]);
    a.dispose();
    b.dispose();
  });

  test('abort resets: the peer\'s streams error with connection-reset, ours with closed', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const accepted = acceptOne(a, 23);
    const client = await b.connect({ address: '10.0.0.1', port: 23 });
    const server = await accepted;
    const serverRead = server.readable.getReader().read();
    client.abort();
    const reset = await rejection(serverRead);
    assert.equal(reset.code, 'connection-reset');
    assert.equal((await rejection(server.writable.getWriter().write(new Uint8Array(1)))).code, 'connection-reset');
    assert.equal((await rejection(client.readable.getReader().read())).code, 'closed');
    await Promise.all([client.closed, server.closed]);
    await assertWorks(b, a, '10.0.0.1', 24);
    a.dispose();
    b.dispose();
  });

  test('backpressure: an unread connection holds at most a window plus a send buffer', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const accepted = acceptOne(a, 9000);
    const client = await b.connect({ address: '10.0.0.1', port: 9000 });
    const server = await accepted;
    const data = seededRandom(2).bytes(1 << 20);
    let taken = 0;
    const writer = client.writable.getWriter();
    const writing = (async () => {
      for (let offset = 0; offset < data.length; offset += 4096) {
        await writer.write(data.subarray(offset, offset + 4096));
        taken += 4096;
      }
      await writer.close();
    })();
    await sleep(300);
    // lwIP's receive window (64240) + send buffer (32120) + one chunk in flight through the stream.
    assert.ok(taken > 0 && taken <= 64240 + 32120 + 4096, `the writer got ${taken} bytes ahead of the reader`);
    const got = await readAll(server);
    await writing;
    assert.equal(sha256(got), sha256(data));
    await server.writable.getWriter().close();
    await Promise.all([client.closed, server.closed]);
    a.dispose();
    b.dispose();
  });

  test('catch-all: a connection and a datagram to arbitrary endpoints, answered from them', async () => {
    const wire = new Wire();
    const guest = await wire.add(binding, '10.0.2.15', { gateway: '10.0.2.2', catchAll: true });
    const relay = await wire.add(binding, '10.0.2.2', { catchAll: true });
    wire.defaultRoute = relay; // the guest's gateway
    const fromRelay = [];
    wire.tap = (packet) => {
      if (destinationOf(packet) === '10.0.2.15') fromRelay.push(`${packet[12]}.${packet[13]}.${packet[14]}.${packet[15]}`);
    };
    const acceptedAny = new Promise((resolve) => (relay.onAcceptAny = resolve));
    const client = await guest.connect({ address: '93.184.216.34', port: 443 });
    const relayed = await acceptedAny;
    assert.deepEqual(relayed.local, { address: '93.184.216.34', port: 443 });
    assert.deepEqual(relayed.remote, client.local);
    assert.deepEqual(client.remote, { address: '93.184.216.34', port: 443 });
    const request = new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n');
    const response = new TextEncoder().encode('HTTP/1.0 200 OK\r\n\r\nrelayed');
    const [atRelay, atGuest] = await Promise.all([readAll(relayed), readAll(client), writeAll(client, request), writeAll(relayed, response)]);
    assert.deepEqual(atRelay, request);
    assert.deepEqual(atGuest, response);
    assert.ok(fromRelay.length > 0 && fromRelay.every((source) => source === '93.184.216.34'), fromRelay.join());

    const datagramAtRelay = new Promise((resolve) => (relay.onDatagramAny = resolve));
    guest.sendDatagram({
      source: { address: '10.0.2.15', port: 5353 },
      destination: { address: '8.8.8.8', port: 53 },
      data: new TextEncoder().encode('query'),
    });
    const query = await datagramAtRelay;
    assert.deepEqual(query.source, { address: '10.0.2.15', port: 5353 });
    assert.deepEqual(query.destination, { address: '8.8.8.8', port: 53 });
    assert.equal(new TextDecoder().decode(query.data), 'query');
    const datagramAtGuest = new Promise((resolve) => (guest.onDatagramAny = resolve));
    relay.sendDatagram({ source: query.destination, destination: query.source, data: new TextEncoder().encode('answer') });
    const answer = await datagramAtGuest;
    assert.deepEqual(answer.source, { address: '8.8.8.8', port: 53 });
    assert.deepEqual(answer.destination, { address: '10.0.2.15', port: 5353 });
    assert.equal(new TextDecoder().decode(answer.data), 'answer');
    // Larger than the MTU: fragmented by the relay, reassembled by the guest.
    const large = seededRandom(4).bytes(4000);
    const largeAtGuest = new Promise((resolve) => (guest.onDatagramAny = resolve));
    relay.sendDatagram({ source: { address: '1.1.1.1', port: 443 }, destination: query.source, data: large });
    assert.deepEqual((await largeAtGuest).data, large);
    await Promise.all([relayed.closed, client.closed]);
    guest.dispose();
    relay.dispose();
  });

  test('without catchAll, packets for other addresses are dropped and counted', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    wire.defaultRoute = a;
    const error = await Promise.race([b.connect({ address: '10.0.0.99', port: 80 }), sleep(500, 'pending')]);
    assert.equal(error, 'pending'); // the SYN went nowhere: lwIP retransmits, as with a silent host
    assert.ok(a.stats.dropped >= 1, JSON.stringify(a.stats));
    a.dispose();
    b.dispose();
  });

  test('answers ping (ICMP echo) on its own address', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const replies = [];
    wire.tap = (packet) => replies.push(packet);
    const request = new Uint8Array(20 + 8 + 4);
    request.set([0x45, 0, 0, request.length, 0, 1, 0, 0, 64, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1]);
    request.set([8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4], 20);
    fixLengthsAndChecksums(request, true);
    a.input(request);
    await sleep(50);
    assert.equal(replies.length, 1);
    const [reply] = replies;
    assert.equal(destinationOf(reply), '10.0.0.9');
    assert.equal(reply[20], 0); // echo reply
    assert.deepEqual(reply.subarray(24), request.subarray(24));
    a.dispose();
  });

  test('random, truncated and corrupted packets never throw, and the stacks work after', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const relay = await wire.add(binding, '10.0.0.3', { catchAll: true });
    relay.onAcceptAny = (connection) => connection.abort();
    relay.onDatagramAny = () => {};
    // Real packets to start from: a short exchange, captured.
    const captured = [];
    wire.tap = (packet) => captured.push(packet);
    await assertWorks(b, a, '10.0.0.1', 7);
    wire.tap = null;
    const random = seededRandom(3);
    const targets = [a, relay];
    let count = 0;
    const feed = (packet) => {
      for (const stack of targets) assert.doesNotThrow(() => stack.input(packet));
      count++;
    };
    for (let i = 0; i < 1000; i++) feed(random.bytes(random.int(80)));
    for (let i = 0; i < 1500; i++) {
      const original = captured[random.int(captured.length)];
      const packet = original.slice(0, 20 + random.int(original.length));
      packet[16 + random.int(4)] = [1, 3][random.int(2)]; // to a, or to anyone (the relay)
      for (let flips = random.int(6); flips > 0; flips--) packet[20 + random.int(packet.length - 20)] = random.int(256);
      if (random() < 0.5) packet[9] = [1, 6, 17][random.int(3)];
      fixLengthsAndChecksums(packet, random() < 0.9);
      feed(packet);
    }
    for (let i = 0; i < 500; i++) {
      const packet = captured[random.int(captured.length)].slice(0, random.int(60));
      feed(packet);
    }
    feed(new Uint8Array(0));
    for (const bad of [null, undefined, 'packet', [69, 0, 0, 20], new Uint16Array(20)]) {
      for (const stack of targets) assert.doesNotThrow(() => stack.input(bad));
    }
    assert.equal(count, 3001);
    await sleep(100);
    // Most malformed packets stop at the binding's checks, the repaired ones reach lwIP's TCP/UDP/ICMP input.
    assert.ok(a.stats.dropped > 500 && a.stats.packetsIn > 1000, JSON.stringify(a.stats));
    await assertWorks(b, a, '10.0.0.1', 8);
    await assertWorks(a, relay, '10.0.0.3', 9);
    a.dispose();
    b.dispose();
    relay.dispose();
  });

  test('memory exhaustion: refusals are clean, and connections succeed again after closing some', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    const b = await wire.add(binding, '10.0.0.2');
    const c = await wire.add(binding, '10.0.0.3');
    const d = await wire.add(binding, '10.0.0.4');
    const accepted = { b: [], d: [] };
    b.listen(80, (connection) => accepted.b.push(connection));
    d.listen(80, (connection) => accepted.d.push(connection));
    const openUntilRefused = async (from, to, limit) => {
      const open = [];
      for (let i = 0; i < limit; i++) {
        try {
          open.push(await from.connect({ address: to, port: 80 }));
        } catch (error) {
          return { open, error };
        }
      }
      return { open, error: null };
    };
    // c takes 100 of b's 128 connection slots; a gets the rest, then b refuses with RST.
    const fromC = await openUntilRefused(c, '10.0.0.2', 100);
    assert.equal(fromC.error, null);
    const fromA = await openUntilRefused(a, '10.0.0.2', 200);
    assert.equal(fromA.error?.code, 'connection-refused', String(fromA.error));
    assert.equal(fromA.open.length, 28);
    // Now a's own slots run out: 28 + 100 = 128, and the next connect fails locally.
    const toD = await openUntilRefused(a, '10.0.0.4', 200);
    assert.equal(toD.error?.code, 'out-of-memory', String(toD.error));
    assert.equal(toD.open.length, 100);
    assert.equal(a.stats.connections, 128);
    // Close ten of a's connections to b, both ways.
    await sleep(50);
    const closing = fromA.open.slice(0, 10);
    for (const connection of closing) {
      const peer = accepted.b.find((x) => x.remote.port === connection.local.port);
      await Promise.all([connection.writable.getWriter().close(), peer.writable.getWriter().close()]);
    }
    await Promise.all(closing.map((connection) => connection.closed));
    const again = await openUntilRefused(a, '10.0.0.2', 5);
    assert.equal(again.error, null, String(again.error));
    const message = new TextEncoder().encode('after exhaustion');
    await writeAll(again.open[0], message);
    await sleep(50);
    const peer = accepted.b.find((x) => x.remote.port === again.open[0].local.port);
    assert.deepEqual(await readAll(peer), message);
    for (const stack of [a, b, c, d]) stack.dispose();
  });

  test('bad arguments are clear errors', async () => {
    const wire = new Wire();
    const a = await wire.add(binding, '10.0.0.1');
    assert.ok((await rejection(a.connect({ address: '10.0.0.300', port: 80 }))) instanceof TypeError);
    assert.ok((await rejection(a.connect({ address: '10.0.0.2', port: 70000 }))) instanceof RangeError);
    assert.throws(() => a.listen(0, () => {}), RangeError);
    assert.throws(() => a.sendDatagram({ source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 }, data: new Uint8Array(70000) }), RangeError);
    assert.throws(() => a.sendDatagram({ source: { address: 'x', port: 1 }, destination: { address: '10.0.0.2', port: 2 }, data: new Uint8Array(1) }), TypeError);
    await assert.rejects(wire.add(binding, '10.0.0.5', { netmask: 'wide' }), /netmask: not an IPv4 address/);
    await assert.rejects(wire.add(binding, '10.0.0.6', { mtu: 100 }), /mtu/);
    await assert.rejects(binding.loadLwipStack(new URL('file:///nonexistent/lwip.wasm'), { address: '10.0.0.7', netmask: '255.0.0.0', output() {} }), /ENOENT/);
    a.dispose();
    await assert.rejects(a.connect({ address: '10.0.0.2', port: 80 }), { code: 'closed' });
  });
});

/** After mutation: IPv4 total length and checksums made valid again (`transport` false leaves TCP/UDP's wrong). */
function fixLengthsAndChecksums(packet, transport) {
  packet[0] = 0x45;
  packet[2] = packet.length >> 8;
  packet[3] = packet.length & 0xff;
  packet[6] = 0; // no fragments
  packet[7] = 0;
  packet[10] = 0;
  packet[11] = 0;
  const ipSum = sum16(packet, 0, 20, 0);
  packet[10] = ipSum >> 8;
  packet[11] = ipSum & 0xff;
  const protocol = packet[9];
  const offset = protocol === 6 ? 16 : protocol === 17 ? 6 : protocol === 1 ? 2 : -1;
  if (!transport || offset < 0 || packet.length < 20 + offset + 2) return;
  if (protocol === 17) {
    packet[24] = (packet.length - 20) >> 8;
    packet[25] = (packet.length - 20) & 0xff;
  }
  packet[20 + offset] = 0;
  packet[21 + offset] = 0;
  const pseudo = protocol === 1 ? 0 : sumPseudo(packet, protocol);
  const value = sum16(packet, 20, packet.length, pseudo);
  packet[20 + offset] = value >> 8;
  packet[21 + offset] = value & 0xff;
}

function sumPseudo(packet, protocol) {
  let total = 0;
  for (let i = 12; i < 20; i += 2) total += (packet[i] << 8) | packet[i + 1];
  return total + protocol + (packet.length - 20);
}

function sum16(bytes, start, end, initial) {
  let total = initial;
  for (let i = start; i + 1 < end; i += 2) total += (bytes[i] << 8) | bytes[i + 1];
  if ((end - start) % 2) total += bytes[end - 1] << 8;
  while (total > 0xffff) total = (total & 0xffff) + (total >>> 16);
  return ~total & 0xffff;
}
