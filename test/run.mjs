// `npm test`: guest images, Tailscale wasm, lwIP wasm, test tailnet binaries (all cached) → bundle, types and
// custom-elements.json → type check → Node tests (node --test test/node/) → browser tests in Chromium. Ends with the
// line "N passed, N failed", counting both the Node and the browser tests.
// Extra arguments go to web-test-runner, e.g. `npm test -- --group tiny`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => join(root, 'node_modules', '.bin', name);

function step(title, command, args, env = {}) {
  console.log(`\n== ${title}`);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  console.log(`== ${title}: ${result.status === 0 ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return result.status === 0;
}

function finish(passed, failed) {
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

const preparation = [
  ['Guest images', process.execPath, ['images/build.mjs', 'all']],
  // Go builds, cached under ~/.cache/linux-vm/{wasm,tailnet}/ by input hash: the bundle ships the wasm, and
  // the network tests run a loopback tailnet (headscale + a tsnet peer).
  ['Tailscale wasm (Go → wasm)', process.execPath, ['wasm/tailscale/build.mjs']],
  // C, cached under ~/.cache/linux-vm/lwip/ by input hash: the host node of the VM's virtual LAN.
  ['lwIP wasm (C → wasm)', process.execPath, ['wasm/lwip/build.mjs']],
  ['Test tailnet binaries (headscale, tsnet peer)', process.execPath, ['test/tailnet/start.mjs', '--build-only']],
  ['Build (bundle, types, custom-elements.json)', 'npm', ['run', 'build', '--silent']],
  ['Type check of the tests', bin('tsc'), ['-p', 'test/tsconfig.json', '--noEmit']],
];
for (const [title, command, args] of preparation) {
  if (!step(title, command, args)) finish(0, 1);
}

const summaryDir = mkdtempSync(join(tmpdir(), 'linux-vm-test-'));
const summaryFile = join(summaryDir, 'summary.json');

// Node tests: spec output on the console, TAP into a file for the counts.
const nodeTap = join(summaryDir, 'node.tap');
const nodeOk = step('Node tests (node --test test/node/)', process.execPath, [
  '--test', '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${nodeTap}`, 'test/node/',
]);
const nodeTotals = { passed: 0, failed: 0 };
try {
  const tap = readFileSync(nodeTap, 'utf8');
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? NaN);
  nodeTotals.passed = count('pass');
  nodeTotals.failed = count('fail') + count('cancelled');
  if (Number.isNaN(nodeTotals.passed + nodeTotals.failed)) throw new Error('no totals in the TAP output');
} catch {
  Object.assign(nodeTotals, { passed: 0, failed: 1 }); // the runner died before reporting
}
if (!nodeOk && nodeTotals.failed === 0) nodeTotals.failed = 1;

const ok = step('Browser tests (web-test-runner, Chromium)', bin('web-test-runner'), process.argv.slice(2), {
  LINUX_VM_TEST_SUMMARY: summaryFile,
});
let totals = { passed: 0, failed: 0 };
try {
  totals = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch {
  totals.failed++; // the runner died before reporting
}
rmSync(summaryDir, { recursive: true, force: true });
finish(totals.passed + nodeTotals.passed, totals.failed + (ok || totals.failed > 0 ? 0 : 1) + nodeTotals.failed);
