// `npm start`: builds what is missing (guest images, the bundle), then serves the demo.
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { logging, server as wisp } from '@mercuryworkshop/wisp-js/server';
import { startDevServer } from '@web/dev-server';
import { serveImages } from '../images/serve-images.mjs';

const root = new URL('..', import.meta.url).pathname;
const port = Number(process.env.PORT ?? 8080);

function step(title, command, args) {
  console.log(`\n== ${title}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`\n${title} failed (exit ${result.status ?? result.signal}).`);
    process.exit(1);
  }
}

// Images are cached under ~/.cache/linux-vm: the first run takes minutes, later runs seconds.
step('Guest images (tiny, then debian)', process.execPath, ['images/build.mjs', 'all']);
step('Tailscale wasm (Go → wasm, cached)', process.execPath, ['wasm/tailscale/build.mjs', '--quiet']);
step('lwIP wasm (C → wasm, cached)', process.execPath, ['wasm/lwip/build.mjs', '--quiet']);
step('Bundle (rollup)', process.execPath, ['node_modules/rollup/dist/bin/rollup', '-c', '--silent']);

await startDevServer({
  config: { rootDir: root, port, hostname: 'localhost', middleware: [serveImages()] },
  readCliArgs: false,
  readFileConfig: false,
  logStartMessage: false,
});
// A Wisp relay for the demo's "Relay" button (network="relay"), on the next port, for this machine only. Its
// defaults let the guest reach public addresses, not this machine or its private network.
logging.set_level(logging.WARN);
const relay = http.createServer((req, res) => res.writeHead(426).end('a Wisp relay: connect with a WebSocket\n'));
relay.on('upgrade', (req, socket, head) => wisp.routeRequest(req, socket, head));
relay.listen(port + 1, 'localhost');
console.log(`\n<linux-vm> demo: http://localhost:${port}/demo/ (Wisp relay: ws://localhost:${port + 1}/)\n(Ctrl-C to stop)`);
