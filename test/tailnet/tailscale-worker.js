// A dedicated (classic) worker that runs the Tailscale wasm, as the element's network worker will.
// Page → worker: {type: 'start', wasmURL, config, port} (config without callbacks; port = packet port),
//                {type: 'logout'}, {type: 'close'}.
// Worker → page: {type: 'loaded', ms}, {type: 'state', state}, {type: 'netmap', netmap},
//                {type: 'login-url', url}, {type: 'error', code, message}, {type: 'log', line}, {type: 'closed'}.
/* global Go, newLinuxVmTailscale */
let node = null;

self.onmessage = async (e) => {
  const msg = e.data;
  try {
    if (msg.type === 'start') {
      importScripts(new URL('wasm_exec.js', msg.wasmURL).href);
      const go = new Go();
      const t0 = performance.now();
      const { instance } = await WebAssembly.instantiateStreaming(fetch(msg.wasmURL), go.importObject);
      go.run(instance); // runs main() until it blocks, which registers newLinuxVmTailscale
      self.postMessage({ type: 'loaded', ms: performance.now() - t0 });
      const result = newLinuxVmTailscale({
        ...msg.config,
        packetPort: msg.port,
        onState: (state) => self.postMessage({ type: 'state', state }),
        onNetMap: (netmap) => self.postMessage({ type: 'netmap', netmap }),
        onLoginURL: (url) => self.postMessage({ type: 'login-url', url }),
        onError: (err) => self.postMessage({ type: 'error', code: err.code, message: err.message }),
        onLog: msg.config.verbose ? (line) => self.postMessage({ type: 'log', line }) : () => {},
      });
      if (result instanceof Error) throw result;
      node = result;
    } else if (msg.type === 'logout') {
      await node?.logout();
    } else if (msg.type === 'close') {
      await node?.close();
      self.postMessage({ type: 'closed' });
    }
  } catch (err) {
    self.postMessage({ type: 'error', code: 'worker-failed', message: String(err?.message ?? err) });
  }
};
