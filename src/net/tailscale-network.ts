/**
 * The page side of networking (the element's network slot): for `network="tailscale"` it starts the
 * network worker (src/net/tailscale.worker.ts), which downloads and runs our Tailscale wasm, and a
 * MessageChannel whose ends are the node's packet port and the emulator worker's NIC backend. Nothing
 * here is created, and the wasm is never requested, unless networking is switched on.
 */
import { VmError } from '../errors.js';
import type { FromNetworkWorker, TailscaleConfig, TailscaleNetMap, TailscaleState, ToNetworkWorker } from '../protocol.js';

/** Resolved by the bundler: rollup emits the worker as a chunk and the wasm files as assets. */
const workerUrl = new URL('./tailscale.worker.ts', import.meta.url);
const wasmUrl = new URL('../../wasm/dist/tailscale/tailscale.wasm', import.meta.url);
const wasmExecUrl = new URL('../../wasm/dist/tailscale/wasm_exec.js', import.meta.url);

/** Tailscale's own coordination server: the default control URL. */
export const DEFAULT_CONTROL_URL = 'https://controlplane.tailscale.com';
/** The VM's tailnet name unless the page chooses one (control servers make it unique: linux-vm-1, …). */
export const DEFAULT_HOSTNAME = 'linux-vm';
/** How long `close` may take before the worker is terminated anyway. */
const CLOSE_GRACE_MS = 2000;

/** The element's view of the node: Tailscale's state names, in kebab case, plus `loading` while the wasm downloads. */
export type NetworkState = 'loading' | 'needs-login' | 'needs-machine-auth' | 'starting' | 'running' | 'stopped' | 'in-use-other-user';

export interface NetworkAddress {
  ipv4: string | null;
  ipv6: string | null;
  hostname: string;
}

export interface TailscaleNetworkHandlers {
  onProgress(loaded: number, total: number): void;
  onState(state: NetworkState): void;
  onLoginUrl(url: string): void;
  /** The node's tailnet addresses, whenever they change. */
  onAddress(address: NetworkAddress): void;
  onError(error: VmError): void;
}

export interface TailscaleNetworkOptions {
  controlUrl?: string;
  authKey?: string;
  hostname?: string;
  exitNode?: string;
}

const STATES: Record<TailscaleState, NetworkState | undefined> = {
  NoState: undefined,
  NeedsLogin: 'needs-login',
  NeedsMachineAuth: 'needs-machine-auth',
  Stopped: 'stopped',
  Starting: 'starting',
  Running: 'running',
  InUseOtherUser: 'in-use-other-user',
};

/**
 * One Tailscale node for one VM. `port` is the end to hand to the emulator worker. Its state is
 * `loading` until the node reports one (handlers are only called asynchronously).
 */
export class TailscaleNetwork {
  readonly port: MessagePort;
  private readonly worker: Worker;
  private disposed = false;
  /** The last address reported, and the newest one known (reported once the node is running). */
  private reported?: NetworkAddress;
  private address?: NetworkAddress;
  private running = false;
  /** Without an auth key the node waits for a login request before it offers a login URL: made once, by itself. */
  private interactiveLoginPending: boolean;
  /** logout() calls still waiting for the node's answer: dispose() rejects them. */
  private readonly pendingLogouts = new Set<(error: Error) => void>();

  constructor(options: TailscaleNetworkOptions, private readonly handlers: TailscaleNetworkHandlers) {
    const controlURL = (options.controlUrl || DEFAULT_CONTROL_URL).replace(/\/+$/, '');
    const config: TailscaleConfig = {
      controlURL,
      ...(options.authKey && { authKey: options.authKey }),
      hostname: options.hostname || DEFAULT_HOSTNAME,
      ...(options.exitNode && { exitNode: options.exitNode }),
      // A plain-http control server is a local/test tailnet whose DERP is plain http too.
      insecureDERPOverHTTP: controlURL.startsWith('http:'),
    };
    this.interactiveLoginPending = !options.authKey;
    const channel = new MessageChannel();
    this.port = channel.port2;
    this.worker = new Worker(workerUrl, { type: 'module', name: 'linux-vm network' });
    this.worker.addEventListener('message', (event: MessageEvent<FromNetworkWorker>) => {
      if (!this.disposed) this.onMessage(event.data);
    });
    this.worker.addEventListener('error', (event) => {
      event.preventDefault();
      if (!this.disposed) this.handlers.onError(new VmError('network-failed', event.message || 'the network worker could not be loaded'));
    });
    this.send({ type: 'start', wasmUrl: wasmUrl.href, wasmExecUrl: wasmExecUrl.href, config, port: channel.port1 }, [channel.port1]);
  }

  /** Interactive login (or re-login): the node answers with a login URL (`onLoginUrl`). */
  login(): void {
    this.send({ type: 'login' });
  }

  /** Logs the node out; the control server forgets it at once. Rejects (AbortError) if the network stops first. */
  logout(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.disposed) return reject(stoppedError());
      const settle = (error?: Error) => {
        this.worker.removeEventListener('message', onMessage);
        this.pendingLogouts.delete(settle);
        if (error) reject(error);
        else resolve();
      };
      const onMessage = (event: MessageEvent<FromNetworkWorker>) => {
        if (event.data.type === 'logged-out') settle();
        else if (event.data.type === 'error' && event.data.error.code === 'control-error') {
          settle(new VmError(event.data.error.code, event.data.error.message));
        }
      };
      this.pendingLogouts.add(settle);
      this.worker.addEventListener('message', onMessage);
      this.send({ type: 'logout' });
    });
  }

  /** Shuts the node down (politely, briefly) and terminates its worker. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const settle of this.pendingLogouts) settle(stoppedError());
    this.port.close();
    const worker = this.worker;
    const timer = setTimeout(() => worker.terminate(), CLOSE_GRACE_MS);
    worker.addEventListener('message', (event: MessageEvent<FromNetworkWorker>) => {
      if (event.data.type !== 'closed') return;
      clearTimeout(timer);
      worker.terminate();
    });
    worker.postMessage({ type: 'close' } satisfies ToNetworkWorker);
  }

  private onMessage(message: FromNetworkWorker): void {
    switch (message.type) {
      case 'progress':
        this.handlers.onProgress(message.loaded, message.total);
        break;
      case 'state': {
        const state = STATES[message.state];
        if (!state) break;
        this.running = state === 'running';
        this.handlers.onState(state);
        if (state === 'needs-login' && this.interactiveLoginPending) {
          this.interactiveLoginPending = false;
          this.login();
        }
        this.reportAddress();
        break;
      }
      case 'netmap':
        this.onNetMap(message.netmap);
        break;
      case 'login-url':
        this.handlers.onLoginUrl(message.url);
        break;
      case 'error':
        this.handlers.onError(new VmError(message.error.code, message.error.message));
        break;
    }
  }

  private onNetMap(netmap: TailscaleNetMap): void {
    const addresses = netmap.self.addresses ?? [];
    const address: NetworkAddress = {
      ipv4: addresses.find((a) => !a.includes(':'))?.replace(/\/\d+$/, '') ?? null,
      ipv6: addresses.find((a) => a.includes(':'))?.replace(/\/\d+$/, '') ?? null,
      hostname: (netmap.self.name ?? '').replace(/\.$/, ''),
    };
    if (!address.ipv4 && !address.ipv6) return;
    this.address = address;
    this.reportAddress();
  }

  /**
   * Reports the address once the node runs: only then can the guest, which gets the address by DHCP as soon
   * as it is reported, reach its peers (before, the node may still be connecting to DERP).
   */
  private reportAddress(): void {
    const address = this.address;
    const previous = this.reported;
    if (!this.running || !address) return;
    if (previous && previous.ipv4 === address.ipv4 && previous.ipv6 === address.ipv6 && previous.hostname === address.hostname) return;
    this.reported = address;
    this.handlers.onAddress(address);
  }

  private send(message: ToNetworkWorker, transfer: Transferable[] = []): void {
    if (!this.disposed) this.worker.postMessage(message, transfer);
  }
}

const stoppedError = () => new DOMException('The network was stopped', 'AbortError');
