import { VmError } from '../errors.js';
import type { DiskUsage, FromWorker, StartOptions, ToWorker } from '../protocol.js';

/** Worker messages that answer a request of the client's (handled here, not by the element). */
type Answer = Extract<FromWorker, { type: 'pong' | 'export-disk' | 'disk-usage' | 'upload' | 'download' | 'tcp-connect' | 'request-failed' }>;

/** Page → worker requests that get an answer, without the `id` the client assigns. */
type Request = DistributiveOmit<Extract<ToWorker, { type: 'export-disk' | 'disk-usage' | 'upload' | 'download' | 'tcp-connect' }>, 'id'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Worker messages the client passes on to its owner. */
export type WorkerEvent = Exclude<FromWorker, Answer>;

export interface VmClientHandlers {
  onMessage(message: WorkerEvent): void;
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
  private nextRequestId = 1;
  private readonly requests = new Map<number, { resolve(answer: Answer): void; reject(reason: unknown): void }>();

  constructor(private readonly handlers: VmClientHandlers) {
    this.worker = new Worker(workerUrl, { type: 'module', name: 'linux-vm emulator' });
    this.worker.addEventListener('message', (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      switch (message.type) {
        case 'pong':
          break;
        case 'export-disk':
        case 'disk-usage':
        case 'upload':
        case 'download':
        case 'tcp-connect':
        case 'request-failed':
          this.requests.get(message.id)?.resolve(message);
          this.requests.delete(message.id);
          break;
        default:
          this.handlers.onMessage(message);
      }
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

  /** Connects the guest's NIC to a network backend's packet port (transferred to the worker). */
  attachNetwork(port: MessagePort): void {
    this.send({ type: 'network-attach', port }, [port]);
  }

  /** Joins the origin's virtual LAN `name`; the worker answers with `lan-address` carrying `id`. */
  joinLan(name: string, id: number): void {
    this.send({ type: 'network-lan', name, id });
  }

  detachNetwork(): void {
    this.send({ type: 'network-detach' });
  }

  /** The VM's IPv4 address on the backend's network, which the guest gets by DHCP; null withdraws it. */
  setNetworkAddress(ipv4: string | null): void {
    this.send({ type: 'network-address', ipv4 });
  }

  /** network="relay": the worker carries the guest's flows over the Wisp relay at `relayUrl` (until detachNetwork). */
  startRelay(id: number, relayUrl: string): void {
    this.send({ type: 'relay-start', id, relayUrl });
  }

  /** The merged disk image (base + the user's writes). */
  async exportDisk(): Promise<Blob> {
    return (await this.request({ type: 'export-disk' })).blob;
  }

  async diskUsage(): Promise<DiskUsage> {
    return (await this.request({ type: 'disk-usage' })).usage;
  }

  /** Copies a file into the guest (the Blob is passed to the worker by reference, not copied). */
  async upload(file: Blob, guestPath: string): Promise<void> {
    await this.request({ type: 'upload', file, guestPath });
  }

  async download(guestPath: string): Promise<Blob> {
    return (await this.request({ type: 'download', guestPath })).blob;
  }

  /** Opens a TCP connection to `port` in the guest; the streams over the returned port carry its bytes. */
  async connect(port: number): Promise<MessagePort> {
    const { port1, port2 } = new MessageChannel();
    await this.request({ type: 'tcp-connect', port, channel: port2 }, [port2]);
    return port1;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.worker.terminate();
    for (const { reject } of this.requests.values()) reject(new DOMException('The VM was stopped', 'AbortError'));
    this.requests.clear();
  }

  /** Sends a request and resolves with the worker's answer of the same type (or rejects with its VmError). */
  private request<R extends Request>(request: R, transfer: Transferable[] = []): Promise<Extract<Answer, { type: R['type'] }>> {
    if (this.disposed) return Promise.reject(new DOMException('The VM was stopped', 'AbortError'));
    const id = this.nextRequestId++;
    return new Promise<Answer>((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      this.send({ ...request, id } as ToWorker, transfer);
    }).then((answer) => {
      if (answer.type === 'request-failed') throw new VmError(answer.error.code, answer.error.message);
      return answer as Extract<Answer, { type: R['type'] }>;
    });
  }

  private send(message: ToWorker, transfer: Transferable[] = []): void {
    if (!this.disposed) this.worker.postMessage(message, transfer);
  }
}
