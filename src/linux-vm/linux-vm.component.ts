import { LitElement, html, type PropertyValues } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import type { Terminal } from '@xterm/xterm';
import xtermStyles from '@xterm/xterm/css/xterm.css' with { type: 'css' };
import { VmClient, type WorkerEvent } from '../client/vm-client.js';
import { VmError } from '../errors.js';
import { TailscaleNetwork, type NetworkState } from '../net/tailscale-network.js';
import { fetchOverTcp } from '../net/http-over-tcp.js';
import { streamsOverPort, type PortStreams } from '../net/port-stream.js';
import { parseRelayUrl } from '../net/relay/relay-url.js';
import { MAX_TRANSFER_BYTES, type DiskUsage, type VmState } from '../protocol.js';
import type { LinuxVmEventMap } from './events.js';
import { linuxVmStyles } from './linux-vm.styles.js';
import { TerminalView } from './terminal-view.js';
import { registerNamedVm } from './guest-http-service.js';

/** Ids of LAN joins, unique in the page. */
let nextLanJoin = 1;

/** States in which a VM exists (a worker is alive for it). */
const RUNNING_STATES: ReadonlySet<VmState> = new Set(['loading', 'booting', 'ready']);

/**
 * Runs a real x86 Linux guest (v86 in a Web Worker) with a terminal on its console.
 *
 * @tag linux-vm
 * @summary A booted Linux in a web page: emulator in a worker, xterm.js terminal in the shadow DOM.
 *
 * @event {CustomEvent<{phase: string, loaded: number, total: number, note?: string}>} progress - While the VM starts:
 *   the phase (`manifest`, `bios`, `vga-bios`, `snapshot`, `kernel`, `initrd`, `disk`, `boot`), bytes loaded/total
 *   (0 when unknown), and a `note` when the VM takes a detour (e.g. why it cold-boots instead of restoring its snapshot).
 *   Phase `disk` also fires while the guest runs, whenever disk blocks are downloaded: `loaded` is the bytes of the
 *   disk image fetched so far (blocks cached in IndexedDB by an earlier visit are not fetched again), `total` 0.
 * @event {CustomEvent<{}>} ready - The guest's first shell prompt appeared: the console accepts commands.
 * @event {CustomEvent<{code: string, message: string}>} error - Starting or running the VM failed; `code` is
 *   machine-readable (e.g. `manifest-not-found`, `manifest-invalid`, `kernel-not-found`, `boot-timeout`; for the disk:
 *   `disk-range-unsupported`, `disk-size-mismatch`, `disk-corrupt`, `disk-locked`, `overlay-mismatch`). Usually the
 *   VM has stopped (state `error`); with `storage-full` and `disk-write-failed` it keeps running (its newest writes
 *   stay in memory only, and the guest's fsync fails until space is freed).
 *   Composed but not bubbling, like `<img>`'s error: a bubbling `error` would reach `window.onerror` handlers.
 * @event {CustomEvent<{}>} stopped - The VM was stopped (by `stop()`, by removing the element, or by
 *   switching `image`).
 * @event {CustomEvent<{state: string}>} network-state - The network's state changed. `network="tailscale"`:
 *   `loading` (the wasm downloads; `progress` events with phase `network` report it), `needs-login`,
 *   `needs-machine-auth`, `starting`, `running`, `stopped`, `in-use-other-user`. With `network="lan"`: `starting`
 *   while the VM claims an address, `running` once it has one. With `network="relay"`: `loading` (the lwIP wasm),
 *   `starting` (connecting to the relay, also when reconnecting after losing it), `running`, `stopped` (gave up: the
 *   relay was unreachable at start, or lwIP failed to load). `none` when networking is switched off.
 * @event {CustomEvent<{url: string}>} login-required - Interactive login (no `auth-key`, or after `login()`): open
 *   `url` for the user; the node continues once they have approved it.
 * @event {CustomEvent<{ipv4: string | null, ipv6: string | null, hostname: string}>} ip-assigned - The VM's tailnet
 *   addresses and MagicDNS name (again whenever they change). The guest gets `ipv4` by DHCP, with a default route
 *   through the tailnet, DNS 100.100.100.100 and MTU 1280. With `network="lan"`: the VM's address on the LAN
 *   (`ipv6` null, `hostname` empty), which the guest gets by DHCP as a /16 with router 10.88.0.1, no DNS, MTU 1500.
 *   With `network="relay"`: `ipv4` is 10.0.2.15 (router 10.0.2.2, DNS 10.0.2.3, MTU 1500), `ipv6` null, `hostname`
 *   empty; fired once the relay answered. Network errors (codes `auth-failed`, `control-unreachable`,
 *   `control-error`, `exit-node-failed`, `network-failed`, `lan-full`, `relay-url-invalid`, `relay-unreachable`)
 *   arrive as `error` events and leave the VM running.
 *
 * @csspart terminal - The container of the xterm.js terminal.
 */
@customElement('linux-vm')
export class LinuxVm extends LitElement {
  static override styles = [xtermStyles, linuxVmStyles];
  static override shadowRootOptions = { ...LitElement.shadowRootOptions, delegatesFocus: true };

  /** URL of the guest image's manifest (JSON); relative URLs resolve against the document. */
  @property({ reflect: true }) image = '';

  /** Guest memory in MiB. Defaults to the manifest's `memoryMiB`. */
  @property({ type: Number }) memory?: number;

  /**
   * When the VM starts: `eager` as soon as the element is connected with an `image`, `lazy` when it
   * first scrolls into view, `manual` only when `start()` is called.
   */
  @property({ reflect: true }) loading: 'eager' | 'lazy' | 'manual' = 'eager';

  /** Seconds to wait for the guest's first shell prompt before failing with `boot-timeout`. */
  @property({ type: Number, attribute: 'boot-timeout' }) bootTimeout = 300;

  /**
   * Where the guest's disk writes are kept (images with a disk): the name of a copy-on-write overlay in
   * IndexedDB that survives reloads (default, when empty: one overlay per disk image URL), or `none` for a
   * throw-away session whose writes live in memory. One tab at a time may use an overlay (`disk-locked`
   * otherwise); an overlay made for another build of the image is never applied (`overlay-mismatch`).
   * Writes reach IndexedDB when the guest flushes (`sync`, fsync: committed before the guest sees the flush
   * complete) and otherwise in batches within ~2 s; unflushed writes of the last moments are lost on reload.
   */
  @property({ reflect: true }) persist = '';

  /**
   * The guest's network: `none` (default; no network code or wasm is loaded), `tailscale` (the VM joins a
   * tailnet as its own node, through Tailscale's DERP relays over WebSockets; the Tailscale wasm, ~4–6 MB
   * compressed, is downloaded when the VM starts), `lan` (the VM joins a virtual LAN shared by the VMs in all
   * tabs of this origin with the same `lan` name, subnet 10.88.0.0/16, each with an address of its own; nothing
   * leaves the browser) or `relay` (the guest's TCP and UDP connections, DNS included, are carried over the Wisp
   * relay at `relay-url`; a small lwIP wasm is downloaded). Changing it while the VM runs switches the network on,
   * off or over.
   */
  @property({ reflect: true }) network: 'none' | 'tailscale' | 'lan' | 'relay' = 'none';

  /** With `network="lan"`: the LAN's name (default `default`). VMs only reach VMs on a LAN of the same name. */
  @property({ reflect: true }) lan = '';

  /**
   * `network="relay"`: the WebSocket URL (`ws:` or `wss:`) of a Wisp server that opens the guest's connections
   * for it. Anyone who can use the relay can reach what the relay can reach: run your own, or one you trust.
   */
  @property({ attribute: 'relay-url' }) relayUrl = '';

  /**
   * A Tailscale auth key (e.g. a pre-auth key from the admin console or `headscale preauthkeys create`); without
   * one, `login-required` offers interactive login. Kept in memory only: never logged, stored or reflected to the
   * attribute. Prefer setting the property (`vm.authKey = key`) to the `auth-key` attribute, which stays readable in
   * the DOM.
   */
  @property({ attribute: 'auth-key' }) authKey = '';

  /** The tailnet's control server (default: Tailscale's, https://controlplane.tailscale.com; e.g. a headscale URL). */
  @property({ attribute: 'control-url' }) controlUrl = '';

  /** The VM's name on the tailnet (default `linux-vm`; the control server may add a suffix to keep names unique). */
  @property() hostname = '';

  /** Route the guest's internet traffic through this exit node: its tailnet IP or name. */
  @property({ attribute: 'exit-node' }) exitNode = '';

  /**
   * The VM's name for linux-vm's service worker (dist/linux-vm-sw.js, registered by the page): while the VM
   * runs, `<service worker scope>linux-vm/<name>/<port>/<path>` in any tab of this origin is served by the
   * guest's web server on `<port>` (through `fetch()`). Empty: not reachable that way.
   */
  @property({ reflect: true }) name = '';

  private _state: VmState = 'idle';
  private _networkState: NetworkState | 'none' = 'none';
  private client?: VmClient;
  private net?: TailscaleNetwork;
  /** The LAN join the worker was last asked for (its `lan-address` answers carry this id); 0: none. */
  private lanJoin = 0;
  /** The id of the running relay-start (network="relay"), so late messages of an earlier relay are ignored. */
  private relayId?: number;
  private nextRelayId = 1;
  private view?: TerminalView;
  private startAttempt?: { promise: Promise<void>; resolve(): void; reject(reason: unknown): void };
  private visibilityObserver?: IntersectionObserver;
  private resetDiskOnStart = false;
  /** Connections into the guest (connect()); they end when the VM stops. */
  private readonly sockets = new Set<PortStreams>();
  private unregisterName?: () => void;
  private readonly internals = this.attachInternals();

  /** Where the VM is in its life: `idle | loading | booting | ready | stopped | error`. */
  get state(): VmState {
    return this._state;
  }

  /** The network's state (see the `network-state` event); `none` while networking is off. */
  get networkState(): NetworkState | 'none' {
    return this._networkState;
  }

  /** The xterm.js terminal showing the guest console (for advanced use: themes, addons, reading the buffer). */
  get terminal(): Terminal | undefined {
    return this.view?.terminal;
  }

  /**
   * Starts the VM on `image`. Resolves when the guest's shell prompt appears; rejects with a `VmError`
   * (which also fires `error`) or, if `stop()` comes first, an `AbortError`. Calling it while the VM is
   * starting or running returns the same promise.
   */
  start(): Promise<void> {
    if (this.startAttempt && RUNNING_STATES.has(this._state)) return this.startAttempt.promise;
    this.stopClient();
    const attempt = deferred();
    this.startAttempt = attempt;
    if (!this.image) {
      this.fail(new VmError('no-image', 'Set the `image` attribute to the URL of an image manifest before starting'));
      return attempt.promise;
    }
    this.setState('loading');
    void this.launch(attempt);
    return attempt.promise;
  }

  /** Stops the VM and terminates its worker. Fires `stopped` if a VM was starting or running. */
  stop(): void {
    const wasRunning = RUNNING_STATES.has(this._state);
    this.stopClient();
    if (!wasRunning) return;
    this.setState('stopped');
    this.takeStartAttempt()?.reject(new DOMException('The VM was stopped before it was ready', 'AbortError'));
    this.emit('stopped', {});
  }

  /**
   * Discards the disk overlay (every change the guest made to its disk) and boots the image afresh.
   * Resolves like `start()`.
   */
  reset(): Promise<void> {
    this.stop();
    this.resetDiskOnStart = true;
    return this.start();
  }

  /**
   * The guest's whole disk as it is now (the base image with the user's changes), e.g. to save it as a
   * file. Built as a stream, so the image is never held in memory whole. Needs a running VM.
   */
  exportDisk(): Promise<Blob> {
    if (!this.client) return Promise.reject(new DOMException(`No VM is running (state ${this._state})`, 'InvalidStateError'));
    return this.client.exportDisk();
  }

  /** Bytes the disk keeps in the browser: the overlay, the cached base blocks, the origin's usage and quota. */
  storageUsage(): Promise<DiskUsage> {
    if (!this.client) return Promise.reject(new DOMException(`No VM is running (state ${this._state})`, 'InvalidStateError'));
    return this.client.diskUsage();
  }

  /**
   * Starts an interactive Tailscale login (or a re-login as another user): a `login-required` event follows with
   * the URL to open. Needs `network="tailscale"` and a running VM.
   */
  login(): void {
    if (!this.net) throw new DOMException(`No network is running (network="${this.network}", state ${this._state})`, 'InvalidStateError');
    this.net.login();
  }

  /** Logs the VM's node out of the tailnet (it disappears from it at once); `login()` joins again. */
  logout(): Promise<void> {
    if (!this.net) return Promise.reject(new DOMException(`No network is running (network="${this.network}")`, 'InvalidStateError'));
    this.client?.setNetworkAddress(null);
    return this.net.logout();
  }

  /**
   * Copies a file into the running guest at `guestPath` (absolute; created or replaced, never left half
   * written; made durable with `sync` before this resolves). The file travels through a 9p share and a small
   * agent in the guest, not through the terminal. Rejects with a `VmError`: `path-invalid`, `path-not-found`
   * (no such directory), `path-is-directory`, `file-too-large` (over 128 MiB), `vm-not-ready`,
   * `transfer-unavailable` (an image without the agent) or `transfer-failed` (e.g. the guest's disk is full).
   */
  async upload(file: Blob, guestPath: string): Promise<void> {
    if (!isBlob(file)) throw new TypeError('upload() needs a Blob or File');
    checkGuestPath(guestPath);
    if (file.size > MAX_TRANSFER_BYTES) {
      throw new VmError('file-too-large', `${file.size} bytes is more than the transfer limit of ${MAX_TRANSFER_BYTES} bytes`);
    }
    await this.readyClient().upload(file, guestPath);
  }

  /**
   * The guest file at `guestPath` (absolute) as a Blob. Rejects with a `VmError`: `path-invalid`,
   * `path-not-found`, `path-is-directory`, `file-too-large` (over 128 MiB), `vm-not-ready`,
   * `transfer-unavailable` or `transfer-failed` (e.g. not a regular file).
   */
  async download(guestPath: string): Promise<Blob> {
    checkGuestPath(guestPath);
    return this.readyClient().download(guestPath);
  }

  /**
   * Opens a TCP connection to `port` in the guest (a web server, `nc -l`, …) from the VM's host node, an lwIP
   * stack in wasm that is downloaded on first use (~13 KB gzip). Works whatever `network` is: without a network
   * the first connection gives the guest a host-only link (its DHCP client takes it within seconds). Write
   * Uint8Arrays to `writable` (closing it sends FIN), read the guest's bytes from `readable`; both apply
   * backpressure to the guest's TCP window. `closed` settles when both directions are done; `abort()` resets the
   * connection. Rejects with a `VmError`: `port-invalid`, `vm-not-ready`, `guest-unreachable` (the guest did not
   * configure eth0 in time), `connection-refused` (nothing
   * listens), `connection-timeout`, `connection-failed` or `network-failed` (the wasm could not be loaded).
   * When the VM stops, open connections fail with `connection-failed`.
   */
  async connect(port: number): Promise<GuestSocket> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new VmError('port-invalid', `${String(port)} is not a TCP port (1–65535)`);
    const client = this.readyClient('Connecting into the guest');
    const streams = streamsOverPort(await client.connect(port), (code, message) =>
      new VmError(code === 'connection-refused' || code === 'connection-timeout' ? code : 'connection-failed', message),
    );
    if (this.client !== client) {
      streams.abort('closed', 'The VM was stopped');
      throw new VmError('connection-failed', 'The VM was stopped');
    }
    this.sockets.add(streams);
    void streams.closed.finally(() => this.sockets.delete(streams)).catch(() => {});
    return {
      readable: streams.readable,
      writable: streams.writable,
      closed: streams.closed,
      abort: () => streams.abort('aborted', 'The page aborted the connection'),
    };
  }

  /**
   * Fetches from a web server in the guest, like the page's `fetch()`: the URL's port picks the guest's TCP port
   * (80 if none), its path and query go in the request line, its host in the `Host` header (so
   * `vm.fetch('http://localhost:8000/')` asks port 8000). Plain HTTP/1.1, one connection per request; the body
   * streams as the guest sends it. Rejects like `connect()`, with `http-invalid` for an answer that is not HTTP,
   * and with a TypeError for a URL that is not `http:`.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== 'http:') throw new TypeError(`fetch() into the guest speaks plain HTTP, not ${url.protocol}`);
    const socket = await this.connect(url.port ? Number(url.port) : 80);
    try {
      return await fetchOverTcp(request, socket);
    } catch (error) {
      socket.abort();
      throw error;
    }
  }

  private readyClient(what = 'File transfer'): VmClient {
    if (!this.client || this._state !== 'ready') {
      throw new VmError('vm-not-ready', `${what} needs a running guest at its shell prompt (state ${this._state})`);
    }
    return this.client;
  }

  /** Sends text to the guest console as if typed (queued until the first prompt if the guest is booting). */
  type(text: string): void {
    if (!this.client) throw new DOMException(`Cannot type into a VM that is ${this._state}`, 'InvalidStateError');
    this.client.input(new TextEncoder().encode(text));
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.hasUpdated) {
      this.view ??= this.createTerminalView();
      if (this.name) this.unregisterName ??= registerNamedVm(this);
      this.autoStart();
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.visibilityObserver?.disconnect();
    this.visibilityObserver = undefined;
    // Moving the element within the document disconnects and reconnects it in one task: keep the VM then.
    // Removal releases everything: the VM, its worker, and the terminal's window-level listeners.
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.unregisterName?.();
      this.unregisterName = undefined;
      this.stop();
      this.view?.dispose();
      this.view = undefined;
    });
  }

  protected override render() {
    return html`<div part="terminal"></div>`;
  }

  protected override firstUpdated(): void {
    this.view = this.createTerminalView();
  }

  private createTerminalView(): TerminalView {
    const container = this.renderRoot.querySelector<HTMLElement>('[part="terminal"]')!;
    container.replaceChildren(); // a disposed terminal leaves its DOM behind
    return new TerminalView(container, {
      onInput: (data) => this.client?.input(data),
      onResize: (cols, rows) => this.client?.resize(cols, rows),
    });
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('image') && changed.get('image') !== undefined && RUNNING_STATES.has(this._state)) {
      // A new image replaces the running guest.
      this.stop();
      void this.start().catch(() => {}); // failures are reported through the `error` event
    } else if (changed.has('image') || changed.has('loading')) {
      this.autoStart();
    }
    // Only the properties of the network in use restart it (a new relay-url leaves a tailnet node alone).
    const settings =
      this.network === 'relay'
        ? (['relayUrl'] as const)
        : this.network === 'lan'
          ? (['lan'] as const)
          : (['authKey', 'controlUrl', 'hostname', 'exitNode'] as const);
    const networkChanged = (['network', ...settings] as const).some((name) => changed.has(name) && changed.get(name) !== undefined);
    if (networkChanged && this.client) this.startNetwork(this.client);
    if (changed.has('name')) {
      this.unregisterName?.();
      this.unregisterName = this.name ? registerNamedVm(this) : undefined;
    }
  }

  /** (Re)starts the network slot for `client`'s VM as the properties say; with `none`, only stops it. */
  private startNetwork(client: VmClient): void {
    this.stopNetwork();
    if (this.network === 'lan') return this.joinLan(client);
    if (this.network === 'relay') return this.startRelay(client);
    if (this.network !== 'tailscale') return;
    const net: TailscaleNetwork = new TailscaleNetwork(
      { controlUrl: this.controlUrl, authKey: this.authKey, hostname: this.hostname, exitNode: this.exitNode },
      {
        onProgress: (loaded, total) => this.net === net && this.emit('progress', { phase: 'network', loaded, total }),
        onState: (state) => this.net === net && this.setNetworkState(state),
        onLoginUrl: (url) => this.net === net && this.emit('login-required', { url }),
        onAddress: (address) => {
          if (this.net !== net) return;
          client.setNetworkAddress(address.ipv4);
          this.emit('ip-assigned', address);
        },
        onError: (error) => this.net === net && this.emit('error', error.toJSON(), { bubbles: false }),
      },
    );
    this.net = net;
    this.setNetworkState('loading');
    client.attachNetwork(net.port);
  }

  /** The worker joins the LAN and picks the VM's address itself; the state is `starting` until it has one. */
  private joinLan(client: VmClient): void {
    this.lanJoin = nextLanJoin++;
    this.setNetworkState('starting');
    client.joinLan(this.lan, this.lanJoin);
  }

  /** network="relay": the emulator worker loads lwIP and connects to the relay itself. */
  private startRelay(client: VmClient): void {
    let relayUrl: string;
    try {
      relayUrl = parseRelayUrl(this.relayUrl, document.baseURI);
    } catch (error) {
      // Reported after this update, like the worker's errors, so listeners added right after start() hear it.
      queueMicrotask(() => this.emit('error', (error as VmError).toJSON(), { bubbles: false }));
      return;
    }
    this.relayId = this.nextRelayId++;
    this.setNetworkState('loading');
    client.startRelay(this.relayId, relayUrl);
  }

  private stopNetwork(): void {
    if (!this.net && !this.lanJoin && this.relayId === undefined) return;
    this.net?.dispose();
    this.net = undefined;
    this.lanJoin = 0;
    this.relayId = undefined;
    this.client?.detachNetwork();
    this.setNetworkState('none');
  }

  private setNetworkState(state: NetworkState | 'none'): void {
    if (state === this._networkState) return;
    this._networkState = state;
    this.emit('network-state', { state });
  }

  private autoStart(): void {
    if (!this.image || RUNNING_STATES.has(this._state)) return;
    if (this.loading === 'eager') {
      void this.start().catch(() => {});
    } else if (this.loading === 'lazy' && !this.visibilityObserver) {
      this.visibilityObserver = new IntersectionObserver((entries) => {
        if (!entries.some((e) => e.isIntersecting)) return;
        this.visibilityObserver?.disconnect();
        this.visibilityObserver = undefined;
        if (!RUNNING_STATES.has(this._state)) void this.start().catch(() => {});
      });
      this.visibilityObserver.observe(this);
    }
  }

  private async launch(attempt: NonNullable<typeof this.startAttempt>): Promise<void> {
    await this.updateComplete; // the terminal exists after the first render
    if (this.startAttempt !== attempt) return; // stopped or restarted meanwhile
    this.view?.fit();
    const client: VmClient = new VmClient({
      onMessage: (message) => {
        if (this.client === client) this.onWorkerMessage(message);
      },
    });
    this.client = client;
    this.startNetwork(client);
    client.start({
      manifestUrl: new URL(this.image, document.baseURI).href,
      memoryMiB: this.memory,
      cols: this.view?.cols ?? 80,
      rows: this.view?.rows ?? 24,
      bootTimeoutSeconds: this.bootTimeout,
      persist: this.persist || undefined,
      resetDisk: this.resetDiskOnStart,
    });
    this.resetDiskOnStart = false;
  }

  private onWorkerMessage(message: WorkerEvent): void {
    switch (message.type) {
      case 'output':
        this.view?.write(message.data);
        break;
      case 'lan-address':
        if (message.id !== this.lanJoin) break; // an answer for a LAN left since
        this.setNetworkState('running');
        this.emit('ip-assigned', { ipv4: message.ipv4, ipv6: null, hostname: '' });
        break;
      case 'progress':
        this.emit('progress', { phase: message.phase, loaded: message.loaded, total: message.total, note: message.note });
        break;
      case 'state':
        this.setState(message.state);
        if (message.state === 'ready') {
          this.startAttempt?.resolve();
          this.emit('ready', {});
        }
        break;
      case 'relay-state':
        if (message.id === this.relayId) this.setNetworkState(message.state);
        break;
      case 'relay-address':
        if (message.id === this.relayId) this.emit('ip-assigned', { ipv4: message.ipv4, ipv6: null, hostname: '' });
        break;
      case 'error':
        if (message.recoverable) this.emit('error', message.error, { bubbles: false });
        else this.fail(new VmError(message.error.code, message.error.message));
        break;
    }
  }

  private fail(error: VmError): void {
    this.stopClient();
    this.setState('error');
    this.takeStartAttempt()?.reject(error);
    this.emit('error', { code: error.code, message: error.message }, { bubbles: false });
  }

  /** Ends the current start attempt: its promise settles once, and a pending launch() sees it is stale. */
  private takeStartAttempt() {
    const attempt = this.startAttempt;
    this.startAttempt = undefined;
    return attempt;
  }

  private stopClient(): void {
    this.stopNetwork();
    this.client?.dispose();
    this.client = undefined;
    for (const socket of this.sockets) socket.abort('closed', 'The VM was stopped');
    this.sockets.clear();
  }

  private setState(state: VmState): void {
    this._state = state;
    // Lets pages style by state: linux-vm:state(ready) { … }
    this.internals.states.clear();
    this.internals.states.add(state);
  }

  private emit<K extends keyof LinuxVmEventMap>(
    type: K,
    detail: LinuxVmEventMap[K]['detail'],
    { bubbles = true } = {},
  ): void {
    this.dispatchEvent(vmEvent(type, detail, bubbles));
  }
}

export interface LinuxVm {
  addEventListener<K extends keyof LinuxVmEventMap>(
    type: K,
    listener: (this: LinuxVm, event: LinuxVmEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof LinuxVmEventMap>(
    type: K,
    listener: (this: LinuxVm, event: LinuxVmEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'linux-vm': LinuxVm;
  }
}

// Outside the class so the manifest analyzer reads the @event JSDoc rather than guessing from this call.
function vmEvent(type: string, detail: unknown, bubbles: boolean): CustomEvent {
  return new CustomEvent(type, { detail, bubbles, composed: true });
}

/** A Blob or File, also one from another window (an iframe's), where `instanceof Blob` is false. */
function isBlob(value: unknown): value is Blob {
  return value instanceof Blob || ['[object Blob]', '[object File]'].includes(Object.prototype.toString.call(value));
}

function checkGuestPath(path: unknown): asserts path is string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[\n\0]/.test(path) || path.length > 4096) {
    throw new VmError('path-invalid', `The guest path must be absolute, without newlines or NUL: ${JSON.stringify(path)}`);
  }
}

function deferred() {
  let resolve!: () => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a rejection nobody awaits is reported through `error`, not as unhandled
  return { promise, resolve, reject };
}

/** A TCP connection into the guest (`connect()`). */
export interface GuestSocket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when both directions have ended cleanly; rejects with the VmError that ended the connection. */
  readonly closed: Promise<void>;
  /** Resets the connection. */
  abort(): void;
}
