// bench/net: the guest on a loopback tailnet (test/tailnet: headscale, DERP over WebSocket, a tsnet peer), in
// headless Chromium: time from network="tailscale" to ip-assigned (wasm download + login), guest<->peer round
// trip (ping) and TCP throughput both ways, and the Tailscale wasm's size raw/gzip/brotli. Prints a table and JSON.
//
//   npm run bench:net [-- --image tiny --mib 4]
import { parseArgs } from 'node:util';
import { buildTailscaleWasm } from '../wasm/tailscale/build.mjs';
import { startTailnet } from '../test/tailnet/start.mjs';
import { bootOnNetwork, buildImagesAndBundle, launchBrowser, startBenchServer } from './lib/setup.mjs';

const { values } = parseArgs({ options: { image: { type: 'string', default: 'tiny' }, mib: { type: 'string', default: '4' } } });
const bytes = Number(values.mib) * 1048576;

const { info } = buildTailscaleWasm({ log: () => {} });
buildImagesAndBundle([values.image]);
const tailnet = await startTailnet({ cors: true, log: () => {} });
const server = await startBenchServer();
const browser = await launchBrowser({ protocolTimeout: 600_000 });
const peer = async (path) => {
  const started = performance.now();
  const response = await fetch(`${tailnet.peerControlURL}/${path}`);
  const body = await response.text();
  if (!response.ok) throw new Error(`peer ${path}: ${body}`);
  return { body: JSON.parse(body), ms: performance.now() - started };
};

let result;
try {
  const { join, guest } = await bootOnNetwork(browser, server.origin, values.image, 'tailscale', {
    controlUrl: tailnet.frontDoorURL,
    authKey: tailnet.authKey,
  });

  const ping = await guest(`ping -c 20 -i 0.2 ${tailnet.peerIP} | tail -1 | sed 's/^/RTT[/; s/$/]/'`, '^RTT\\[(.*)\\]$');
  const [min, avg, max] = (/= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping.value) ?? []).slice(1).map(Number);
  console.error(`ping: ${ping.value}`);

  // peer -> guest: HTTP download into the guest, timed in the page from command to marker.
  await guest('echo "WARM[$(wget -qO- http://' + tailnet.peerIP + '/ | wc -c)]"', '^WARM\\[(\\d+)\\]$');
  const down = await guest(`echo "DOWN[$(wget -qO- http://${tailnet.peerIP}/bytes?n=${bytes} | wc -c)]"`, '^DOWN\\[(\\d+)\\]$');
  if (Number(down.value) !== bytes) throw new Error(`download: ${down.value} of ${bytes} bytes`);
  // guest -> peer: the peer reads from nc in the guest until EOF, timed on the host.
  await guest(`dd if=/dev/zero of=/tmp/up bs=65536 count=${bytes / 65536} 2>/dev/null; (nc -l -p 9001 </tmp/up >/dev/null &); sleep 1; echo "UPREADY[ok]"`, '^UPREADY\\[(ok)\\]$');
  const up = await peer(`receive?addr=${join.ipv4}:9001`);
  if (up.body.received !== bytes) throw new Error(`upload: ${up.body.received} of ${bytes} bytes`);

  const mbps = (n, ms) => Number(((n * 8) / (ms / 1000) / 1e6).toFixed(2));
  result = {
    benchmark: 'net',
    date: new Date().toISOString(),
    image: values.image,
    secondsFromNetworkToIpAssigned: Number((join.msToIpAssigned / 1000).toFixed(2)),
    pingMs: { min, avg, max },
    mibPerTransfer: Number(values.mib),
    peerToGuestMbit: mbps(bytes, down.ms),
    guestToPeerMbit: mbps(bytes, up.ms),
    wasmBytes: { raw: info.sizes.raw, gzip: info.sizes.gzip, brotli: info.sizes.brotli },
  };
} finally {
  await browser.close();
  await server.stop();
  await tailnet.stop();
}

const MB = (n) => (n / 1e6).toFixed(2);
console.log(`\nnetwork="tailscale" -> ip-assigned   ${result.secondsFromNetworkToIpAssigned} s (wasm download from localhost + login)`);
console.log(`ping guest -> peer                   min/avg/max ${result.pingMs.min}/${result.pingMs.avg}/${result.pingMs.max} ms`);
console.log(`TCP peer -> guest (wget)             ${result.peerToGuestMbit} Mbit/s (${result.mibPerTransfer} MiB)`);
console.log(`TCP guest -> peer (nc)               ${result.guestToPeerMbit} Mbit/s (${result.mibPerTransfer} MiB)`);
console.log(`Tailscale wasm                       ${MB(result.wasmBytes.raw)} MB raw, ${MB(result.wasmBytes.gzip)} MB gzip, ${MB(result.wasmBytes.brotli)} MB brotli`);
console.log(JSON.stringify(result, null, 2));
