// bench/relay: network="relay" in headless Chromium through a real Wisp server on loopback (test/relay/servers.mjs):
// time from network="relay" to ip-assigned, then HTTP downloads and uploads between the guest and a local HTTP
// server (by name: fake-IP DNS, the relay resolves it), timed in the page from command to marker (wget down, nc up). Prints a table
// and JSON.
//
//   npm run bench:relay [-- --image tiny --mib 4]
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { startRelayTestServers, WEB_NAME } from '../test/relay/servers.mjs';
import { bootOnNetwork, buildImagesAndBundle, launchBrowser, root, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({ options: { image: { type: 'string', default: 'tiny' }, mib: { type: 'string', default: '4' } } });
const bytes = Number(values.mib) * 1048576;

buildImagesAndBundle([values.image]);
const servers = await startRelayTestServers();
const server = await startBenchServer();
const browser = await launchBrowser({ protocolTimeout: 600_000 });
const url = (path) => `http://${WEB_NAME}:${servers.httpPort}${path}`;

let result;
try {
  const { join, guest } = await bootOnNetwork(browser, server.origin, values.image, 'relay', { relayUrl: servers.wispURL });

  // What the path costs without the relay: ping lwIP (the router), and the guest's own pipe throughput.
  const ping = await guest('ping -c 10 -i 0.2 10.0.2.2 | tail -1 | sed \'s/^/RTT[/; s/$/]/\'', '^RTT\\[(.*)\\]$');
  const [min, avg, max] = (/= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping.value) ?? []).slice(1).map(Number);
  const pipe = await guest(`echo "PIPE[$(dd if=/dev/zero bs=65536 count=${bytes / 65536} 2>/dev/null | wc -c)]"`, '^PIPE\\[(\\d+)\\]$');

  // The first request also pays for the guest's DNS lookup and the relay's; later ones only for the latter.
  const first = await guest(`echo "WARM[$(wget -qO- ${url('/page')} | wc -c)]"`, '^WARM\\[(\\d+)\\]$');
  const small = await guest(`echo "SMALL[$(wget -qO- ${url('/page')} | wc -c)]"`, '^SMALL\\[(\\d+)\\]$');
  const down = await guest(`echo "DOWN[$(wget -qO- '${url(`/bytes?n=${bytes}`)}' | wc -c)]"`, '^DOWN\\[(\\d+)\\]$');
  if (Number(down.value) !== bytes) throw new Error(`download: ${down.value} of ${bytes} bytes`);
  // busybox wget --post-file stops at the first NUL: the POST is written by hand and sent with nc.
  await guest(`dd if=/dev/zero of=/tmp/up bs=65536 count=${bytes / 65536} 2>/dev/null; echo "UPREADY[ok]"`, '^UPREADY\\[(ok)\\]$');
  const post = `printf 'POST /sink HTTP/1.0\\r\\nContent-Length: ${bytes}\\r\\n\\r\\n'; cat /tmp/up`;
  const up = await guest(`echo "UP[$({ ${post}; } | nc ${WEB_NAME} ${servers.httpPort} | tail -1 | cut -d' ' -f2)]"`, '^UP\\[(\\d+)\\]$');
  if (Number(up.value) !== bytes) throw new Error(`upload: ${up.value} of ${bytes} bytes`);

  const wasm = readFileSync(`${root}wasm/dist/lwip/lwip.wasm`);
  const mibps = (n, ms) => Number((n / 1048576 / (ms / 1000)).toFixed(2));
  result = {
    benchmark: 'relay',
    date: new Date().toISOString(),
    image: values.image,
    secondsFromNetworkToIpAssigned: Number((join.msToIpAssigned / 1000).toFixed(2)),
    routerPingMs: { min, avg, max },
    guestPipeMiBps: mibps(bytes, pipe.ms),
    firstRequestMs: Math.round(first.ms),
    requestMs: Math.round(small.ms),
    mibPerTransfer: Number(values.mib),
    downloadMiBps: mibps(bytes, down.ms),
    uploadMiBps: mibps(bytes, up.ms),
    lwipWasmBytes: { raw: wasm.length, gzip: gzipSync(wasm).length },
  };
} finally {
  await browser.close();
  await server.stop();
  await servers.stop();
}

console.log(`\nnetwork="relay" -> ip-assigned         ${result.secondsFromNetworkToIpAssigned} s (lwIP wasm from localhost + Wisp handshake)`);
console.log(`ping guest -> lwIP (10.0.2.2)         min/avg/max ${result.routerPingMs.min}/${result.routerPingMs.avg}/${result.routerPingMs.max} ms`);
console.log(`guest pipe, no network (dd | wc)      ${result.guestPipeMiBps} MiB/s`);
console.log(`first HTTP request by name (+ DNS)    ${result.firstRequestMs} ms (typed command to output)`);
console.log(`next HTTP request                     ${result.requestMs} ms`);
console.log(`download server -> guest (wget)       ${result.downloadMiBps} MiB/s (${result.mibPerTransfer} MiB)`);
console.log(`upload guest -> server (nc POST)      ${result.uploadMiBps} MiB/s (${result.mibPerTransfer} MiB)`);
console.log(`lwIP wasm                             ${result.lwipWasmBytes.raw} B raw, ${result.lwipWasmBytes.gzip} B gzip`);
console.log(JSON.stringify(result, null, 2));
