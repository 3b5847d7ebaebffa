/// <reference lib="webworker" />
/**
 * The network worker: runs our Tailscale node (wasm/tailscale, Go → wasm) for one VM. Started by
 * the page only when the element's `network` is `tailscale`; it downloads the wasm (reporting
 * progress), starts the node on the packet port the page hands over, and relays the node's state,
 * netmap, login URL and errors. The auth key arrives in the `start` message and stays in memory.
 */
import { fetchBytes } from '../worker/fetch-asset.js';
import type { FromNetworkWorker, TailscaleNetMap, TailscaleState, ToNetworkWorker, VmErrorCode } from '../protocol.js';

declare const self: DedicatedWorkerGlobalScope;

/** What wasm_exec.js defines (Go's JS glue) and what our Go main registers. */
interface GoRuntime {
  importObject: WebAssembly.Imports;
  run(instance: WebAssembly.Instance): Promise<void>;
}
interface TailscaleNode {
  login(): void;
  logout(): Promise<void>;
  close(): Promise<void>;
}
declare global {
  // eslint-disable-next-line no-var
  var Go: { new (): GoRuntime } | undefined;
  // eslint-disable-next-line no-var
  var newLinuxVmTailscale: ((config: object) => TailscaleNode | Error) | undefined;
}

const PROGRESS_INTERVAL_MS = 100;
const NODE_ERROR_CODES: ReadonlySet<string> = new Set(['auth-failed', 'control-unreachable', 'control-error', 'exit-node-failed']);

const post = (message: FromNetworkWorker) => self.postMessage(message);
const fail = (code: VmErrorCode, message: string) => post({ type: 'error', error: { code, message } });
let node: TailscaleNode | undefined;
let starting = false;

self.addEventListener('message', (event: MessageEvent<ToNetworkWorker>) => {
  const message = event.data;
  switch (message.type) {
    case 'start':
      if (starting || node) return;
      starting = true;
      void start(message).catch((error: unknown) => fail('network-failed', (error as Error).message ?? String(error)));
      break;
    case 'login':
      node?.login();
      break;
    case 'logout':
      void node?.logout().then(() => post({ type: 'logged-out' }), (error: unknown) => fail('control-error', `logout failed: ${String(error)}`));
      break;
    case 'close':
      void (node ? node.close() : Promise.resolve()).finally(() => post({ type: 'closed' }));
      break;
  }
});

async function start({ wasmUrl, wasmExecUrl, config, port }: Extract<ToNetworkWorker, { type: 'start' }>): Promise<void> {
  // wasm_exec.js is a classic script that only assigns globalThis.Go: importing it as a module works too.
  try {
    await import(/* @vite-ignore */ wasmExecUrl);
  } catch (cause) {
    throw new Error(`could not load Go's wasm_exec.js from ${wasmExecUrl}: ${String(cause)}`);
  }
  if (!globalThis.Go) throw new Error(`${wasmExecUrl} did not define Go`);
  const bytes = await download(wasmUrl);
  const go = new globalThis.Go();
  let instance: WebAssembly.Instance;
  try {
    ({ instance } = await WebAssembly.instantiate(bytes, go.importObject));
  } catch (cause) {
    throw new Error(`the Tailscale wasm could not be instantiated: ${String(cause)}`);
  }
  // main() registers newLinuxVmTailscale before it first blocks, i.e. before run() returns control.
  void go.run(instance).then(() => fail('network-failed', 'the Tailscale node exited'));
  const create = globalThis.newLinuxVmTailscale;
  if (!create) throw new Error('the Tailscale wasm did not register newLinuxVmTailscale');
  const result = create({
    ...config,
    packetPort: port,
    onState: (state: TailscaleState) => post({ type: 'state', state }),
    onNetMap: (netmap: TailscaleNetMap) => post({ type: 'netmap', netmap }),
    onLoginURL: (url: string) => post({ type: 'login-url', url }),
    onError: ({ code, message }: { code: string; message: string }) =>
      fail(NODE_ERROR_CODES.has(code) ? (code as VmErrorCode) : 'network-failed', message),
  });
  if (result instanceof Error) throw result;
  node = result;
}

/** Fetches the wasm with (throttled) progress messages; `total` is 0 when the size is unknown (compressed transfer). */
async function download(url: string): Promise<ArrayBuffer> {
  let lastReport = -Infinity;
  const bytes = await fetchBytes(url, (loaded, total) => {
    if (performance.now() - lastReport < PROGRESS_INTERVAL_MS) return;
    lastReport = performance.now();
    post({ type: 'progress', loaded, total });
  }).catch((error: unknown) => {
    throw new Error(`the Tailscale wasm could not be downloaded: ${(error as Error).message}`);
  });
  post({ type: 'progress', loaded: bytes.byteLength, total: bytes.byteLength });
  return bytes;
}
