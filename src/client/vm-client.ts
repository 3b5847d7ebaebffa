import { VmError } from '../errors.js';
import type { FromWorker, StartOptions, ToWorker } from '../protocol.js';

export interface VmClientHandlers {
  onMessage(message: Exclude<FromWorker, { type: 'pong' }>): void;
}

/** Resolved by the bundler: rollup emits the worker as its own chunk, the dev server serves it from source. */
const workerUrl = new URL('../worker/emulator.worker.ts', import.meta.url);
/** v86's wasm, resolved the same way (rollup copies it next to the bundle). */
const v86WasmUrl = new URL('../../node_modules/v86/build/v86.wasm', import.meta.url);

/**
 * Page side of the emulator protocol: owns one emulator worker. Disposing it terminates
 * the worker (and with it the guest) at once.
 */
export class VmClient {
  private readonly worker: Worker;
  private disposed = false;

  constructor(private readonly handlers: VmClientHandlers) {
    this.worker = new Worker(workerUrl, { type: 'module', name: 'linux-vm emulator' });
    this.worker.addEventListener('message', (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type !== 'pong') this.handlers.onMessage(message);
    });
    // Fired when the worker script cannot be loaded or throws at top level.
    this.worker.addEventListener('error', (event) => {
      event.preventDefault();
      const reason = event.message || 'the emulator worker could not be loaded';
      this.handlers.onMessage({ type: 'error', error: new VmError('worker-failed', reason).toJSON() });
    });
  }

  start(options: Omit<StartOptions, 'v86WasmUrl'>): void {
    this.send({ type: 'start', options: { ...options, v86WasmUrl: v86WasmUrl.href } });
  }

  input(data: Uint8Array): void {
    this.send({ type: 'input', data }, [data.buffer]);
  }

  resize(cols: number, rows: number): void {
    this.send({ type: 'resize', cols, rows });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.worker.terminate();
  }

  private send(message: ToWorker, transfer: Transferable[] = []): void {
    if (!this.disposed) this.worker.postMessage(message, transfer);
  }
}
