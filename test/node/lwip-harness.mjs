// Shared by test/node/lwip.test.mjs and bench/lwip.mjs: the TypeScript binding bundled for Node with
// esbuild, and a small IPv4 "wire" that carries packets between stacks asynchronously.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const wasmUrl = pathToFileURL(join(root, 'wasm/dist/lwip/lwip.wasm'));

/** Bundles src/net/lwip/lwip-stack.ts and imports it. */
export async function loadBinding() {
  if (!existsSync(wasmUrl)) throw new Error(`${fileURLToPath(wasmUrl)} is missing: run node wasm/lwip/build.mjs`);
  const dir = mkdtempSync(join(tmpdir(), 'lwip-binding-'));
  try {
    const outfile = join(dir, 'lwip-stack.mjs');
    await build({
      entryPoints: [join(root, 'src/net/lwip/lwip-stack.ts')],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile,
      logLevel: 'error',
    });
    return await import(pathToFileURL(outfile).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The destination address of an IPv4 packet as a dotted quad. */
export function destinationOf(packet) {
  return packet.length >= 20 ? `${packet[16]}.${packet[17]}.${packet[18]}.${packet[19]}` : '';
}

/**
 * A wire between stacks: a packet goes to the stack that owns its destination address, else to the
 * `defaultRoute` stack (a relay's catch-all), always in a later task (lwIP is never fed from inside
 * another stack's call). `tap` sees every packet.
 */
export class Wire {
  constructor() {
    this.stacks = new Map();
    this.defaultRoute = null;
    this.tap = null;
  }

  output(packet) {
    this.tap?.(packet);
    const target = this.stacks.get(destinationOf(packet)) ?? this.defaultRoute;
    if (target) setImmediate(() => target.input(packet));
  }

  async add(binding, address, options = {}) {
    const stack = await binding.loadLwipStack(wasmUrl, {
      address,
      netmask: '255.255.255.0',
      output: (packet) => this.output(packet),
      ...options,
    });
    this.stacks.set(address, stack);
    return stack;
  }
}

/** A deterministic byte generator (mulberry32), so failures can be replayed. */
export function seededRandom(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.bytes = (length) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
    return out;
  };
  next.int = (below) => Math.floor(next() * below);
  return next;
}

/** Writes `data` in `chunkSize` pieces, then closes the writable side. */
export async function writeAll(connection, data, chunkSize = 64 * 1024) {
  const writer = connection.writable.getWriter();
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    await writer.write(data.subarray(offset, offset + chunkSize));
  }
  await writer.close();
}

/** Reads until the peer's FIN; returns everything as one array. */
export async function readAll(connection) {
  const chunks = [];
  let length = 0;
  for await (const chunk of connection.readable) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
