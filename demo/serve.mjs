// `npm start`: builds what is missing (guest images, the bundle), then serves the demo.
import { spawnSync } from 'node:child_process';
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
step('Bundle (rollup)', process.execPath, ['node_modules/rollup/dist/bin/rollup', '-c', '--silent']);

await startDevServer({
  config: { rootDir: root, port, hostname: 'localhost', middleware: [serveImages()] },
  readCliArgs: false,
  readFileConfig: false,
  logStartMessage: false,
});
console.log(`\n<linux-vm> demo: http://localhost:${port}/demo/\n(Ctrl-C to stop)`);
