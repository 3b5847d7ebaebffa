// bench/lwip: the lwIP host node's wasm size (raw, gzip) and TCP throughput between two stacks back to back in
// Node (the binding bundled with esbuild, packets carried between the stacks in later tasks). Prints a table and JSON.
//
//   npm run bench:lwip [-- --mib 16 --runs 3]
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { buildLwipWasm } from '../wasm/lwip/build.mjs';
import { loadBinding, readAll, seededRandom, Wire, writeAll } from '../test/node/lwip-harness.mjs';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '16' }, runs: { type: 'string', default: '3' } } });
const bytes = Number(values.mib) * 1048576;
const runs = Number(values.runs);

const { info } = buildLwipWasm({ log: () => {} });
const binding = await loadBinding();
const data = seededRandom(16).bytes(bytes);
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

/** One way, `bytes` from b to a in 64 KiB writes; the time runs from connect to the last byte read. */
async function oneWay() {
  const wire = new Wire();
  const a = await wire.add(binding, '10.0.0.1');
  const b = await wire.add(binding, '10.0.0.2');
  const received = new Promise((resolve) => a.listen(5001, (connection) => resolve(readAll(connection))));
  const started = performance.now();
  const connection = await b.connect({ address: '10.0.0.1', port: 5001 });
  await writeAll(connection, data);
  const got = await received;
  const ms = performance.now() - started;
  if (sha256(got) !== sha256(data)) throw new Error(`received ${got.length} bytes that differ from the ${bytes} sent`);
  const packets = b.stats.packetsOut + a.stats.packetsOut;
  a.dispose();
  b.dispose();
  return { ms, packets };
}

const samples = [];
for (let i = 0; i < runs; i++) samples.push(await oneWay());
const mibps = samples.map((s) => Number((bytes / 1048576 / (s.ms / 1000)).toFixed(1)));
const result = {
  benchmark: 'lwip',
  date: new Date().toISOString(),
  lwip: info.lwip,
  wasmBytes: { raw: info.sizes.raw, gzip: info.sizes.gzip },
  nodeBackToBack: { mibOneWay: Number(values.mib), runs, mibPerSecond: mibps, best: Math.max(...mibps), packets: samples[0].packets },
  // To be filled in by the guest and relay work: guest -> page through the virtual switch, and through a relay.
  guestToPage: null,
  relay: null,
};

const KiB = (n) => (n / 1024).toFixed(1);
console.log(`\nlwIP wasm (${result.lwip})          ${KiB(result.wasmBytes.raw)} KiB raw, ${KiB(result.wasmBytes.gzip)} KiB gzip`);
console.log(`Node back to back, ${values.mib} MiB one way   ${mibps.join(' / ')} MiB/s (best ${result.nodeBackToBack.best})`);
console.log('guest -> page, relay              (not measured yet)');
console.log(JSON.stringify(result, null, 2));
