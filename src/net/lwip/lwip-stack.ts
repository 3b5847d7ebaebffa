/**
 * lwIP (wasm/lwip, built by wasm/lwip/build.mjs) as the host node of the VM's virtual LAN: the
 * implementation of contract.ts. Works wherever WebAssembly and web streams do (page, worker, Node).
 *
 * lwIP is not re-entrant and must never call out into code that might call back in. So every call
 * into the wasm goes through `call()`, and lwIP's notifications (the wasm's imports) only record
 * state, wake waiting promises and queue events; the queued events (packets out, new connections,
 * datagrams, stream errors) run once the wasm has returned. Packets given to `input()` are processed
 * in a later task, in batches.
 */
import { checksum, formatIpv4, parseIpv4, parseIpv4Packet, type Ipv4 } from '../packets.js';
import {
  TcpError,
  type Endpoint,
  type LoadLwipStack,
  type LwipStack,
  type LwipStackOptions,
  type TcpConnection,
  type TcpErrorCode,
  type UdpDatagram,
} from './contract.js';

export { TcpError } from './contract.js';
export type * from './contract.js';

/** Resolved by the bundler (rollup copies the wasm as an asset; the dev server serves the tree). */
export const lwipWasmUrl = new URL('../../../wasm/dist/lwip/lwip.wasm', import.meta.url);

/** What wasm/lwip/port/glue.c exports. Addresses are u32 in lwIP's byte order (first octet in the low byte). */
interface LwipExports {
  memory: WebAssembly.Memory;
  lw_init(address: number, netmask: number, gateway: number, mtu: number, catchAll: number): number;
  lw_in_buffer(): number;
  lw_input(length: number): number;
  lw_not_for_us(): number;
  lw_check_timeouts(): void;
  lw_sleeptime(): number;
  lw_tcp_listen(port: number): number;
  lw_tcp_unlisten(id: number): void;
  lw_tcp_connect(address: number, port: number): number;
  lw_tcp_writable(handle: number): number;
  lw_tcp_write(handle: number, length: number): number;
  lw_tcp_recved(handle: number, length: number): void;
  lw_tcp_shutdown(handle: number): number;
  lw_tcp_close(handle: number): void;
  lw_tcp_abort(handle: number): void;
  lw_udp_send(sourceIp: number, sourcePort: number, destinationIp: number, destinationPort: number, length: number): number;
}

/** lwIP's err_t values that the binding tells apart. */
const ERR_MEM = -1;
const ERR_RTE = -4;
const ERR_USE = -8;
const ERR_ABRT = -13;
const ERR_RST = -14;
const ERR_CLSD = -15;

/** The wasm's staging buffer (glue.c's BUFFER_SIZE): the largest packet or datagram handed over at once. */
const BUFFER_SIZE = 65536;
const MAX_UDP_PAYLOAD = 65535 - 20 - 8;
const SLEEP_FOREVER = 0xffffffff;

/** lwIP keeps addresses in network byte order in a little-endian u32: the byte swap of `packets.ts`'s Ipv4. */
function swapBytes(ip: number): number {
  return (((ip & 0xff) << 24) | (((ip >>> 8) & 0xff) << 16) | (((ip >>> 16) & 0xff) << 8) | (ip >>> 24)) >>> 0;
}

function endpointOf(lwipAddress: number, port: number): Endpoint {
  return { address: formatIpv4(swapBytes(lwipAddress)), port };
}

function checkPort(port: unknown, what: string, allowZero = false): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new RangeError(`${what}: not a TCP/UDP port (${allowZero ? 0 : 1}–65535): ${String(port)}`);
  }
  return port;
}

function checkAddress(address: unknown, what: string): Ipv4 {
  if (typeof address !== 'string') throw new TypeError(`${what}: the address must be a dotted-quad string, not ${typeof address}`);
  try {
    return parseIpv4(address);
  } catch {
    throw new TypeError(`${what}: not an IPv4 address: ${JSON.stringify(address)}`);
  }
}

function checkEndpoint(endpoint: Endpoint, what: string, allowZeroPort = false): { ip: number; port: number } {
  if (typeof endpoint !== 'object' || endpoint === null) throw new TypeError(`${what}: expected { address, port }`);
  return { ip: swapBytes(checkAddress(endpoint.address, what)), port: checkPort(endpoint.port, what, allowZeroPort) };
}

/** Reports an error as uncaught (console, window.onerror, Node's uncaughtException) without unwinding our caller. */
function report(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** Runs user code outside of our bookkeeping: an exception is reported, not thrown into lwIP's event loop. */
function callUser<T>(fn: ((value: T) => void) | undefined, value: T): void {
  if (!fn) return;
  try {
    fn(value);
  } catch (error) {
    report(error);
  }
}

type Task = () => void;
const runSoon: (task: Task) => void = (() => {
  // A macrotask, so that two stacks feeding each other do not starve timers and message handlers.
  const setImmediate = (globalThis as { setImmediate?: (task: Task) => unknown }).setImmediate;
  if (setImmediate) return (task: Task) => void setImmediate(task);
  const channel = new MessageChannel();
  const tasks: Task[] = [];
  channel.port1.onmessage = () => tasks.shift()?.();
  return (task: Task) => {
    tasks.push(task);
    channel.port2.postMessage(null);
  };
})();

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

class Connection implements TcpConnection {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<void>;
  private failure?: TcpError;
  /** The peer's FIN has arrived. */
  private remoteEnded = false;
  private txShut = false;
  private readCancelled = false;
  private done = false;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private wakeReader?: () => void;
  private wakeWriter?: () => void;
  private readController!: ReadableStreamDefaultController<Uint8Array>;
  private writeController!: WritableStreamDefaultController;
  private resolveClosed!: () => void;

  constructor(
    private readonly stack: Stack,
    readonly handle: number,
    readonly remote: Endpoint,
    readonly local: Endpoint,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // highWaterMark 0: nothing is pulled (and no window opened) before the consumer asks.
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (this.readController = controller),
        pull: (controller) => this.pull(controller),
        cancel: () => this.cancelRead(),
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => void (this.writeController = controller),
      write: (chunk) => this.write(chunk),
      close: () => this.closeWrite(),
      abort: () => this.abort(),
    });
  }

  abort(): void {
    if (this.done) return;
    this.stack.call((lwip) => lwip.lw_tcp_abort(this.handle));
    this.fail(new TcpError('closed', `the connection to ${this.remote.address}:${this.remote.port} was aborted`));
  }

  /** lwIP's notifications (called from inside the wasm: record and wake only). */
  received(data: Uint8Array): void {
    if (this.readCancelled) {
      this.stack.later(() => this.stack.recved(this.handle, data.length));
      return;
    }
    this.chunks.push(data);
    this.buffered += data.length;
    this.wakeReader?.();
  }

  finReceived(): void {
    this.remoteEnded = true;
    this.wakeReader?.();
    // With our FIN already sent, glue.c has handed the pcb back to lwIP.
    if (this.txShut) this.finish();
  }

  sendSpace(): void {
    this.wakeWriter?.();
  }

  /** The pcb is gone inside lwIP. */
  lost(error: TcpError | undefined): void {
    if (error) {
      this.failure ??= error;
      this.wakeReader?.();
      this.wakeWriter?.();
      this.stack.later(() => this.fail(error));
    } else {
      this.finReceived();
      this.finish();
    }
  }

  fail(error: TcpError): void {
    if (this.done) return;
    this.failure ??= error;
    this.readController.error(error);
    this.writeController.error(error);
    this.wakeReader?.();
    this.wakeWriter?.();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.stack.waitingForMemory.delete(this);
    this.stack.forget(this.handle);
    this.resolveClosed();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (!this.chunks.length && !this.remoteEnded && !this.failure) {
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
      this.wakeReader = undefined;
    }
    if (this.failure) return; // the stream is errored (or about to be) with it
    if (this.chunks.length) {
      const data = concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
      controller.enqueue(data);
      // The consumer took it: only now may the peer send more.
      this.stack.recved(this.handle, data.length);
      return;
    }
    controller.close();
  }

  private cancelRead(): void {
    this.readCancelled = true;
    const pending = this.buffered;
    this.chunks = [];
    this.buffered = 0;
    if (pending) this.stack.recved(this.handle, pending);
    if (this.txShut && !this.done) {
      this.stack.call((lwip) => lwip.lw_tcp_close(this.handle));
      this.finish();
    }
  }

  private async write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('TcpConnection.writable takes Uint8Array chunks');
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) throw this.failure;
      const taken = this.stack.write(this.handle, chunk.subarray(offset));
      if (taken === ERR_MEM) this.stack.waitingForMemory.add(this);
      else if (taken < 0) throw this.failure ?? new TcpError('closed', 'the connection is closed');
      else offset += taken;
      if (offset < chunk.length) {
        // The send buffer or the heap is full: on_sent (acknowledged data, here or on any connection for
        // the heap) or, as a fallback, on_poll wakes us.
        await new Promise<void>((resolve) => (this.wakeWriter = resolve));
        this.wakeWriter = undefined;
      }
    }
  }

  private closeWrite(): void {
    if (this.failure) throw this.failure;
    this.txShut = true;
    if (this.remoteEnded || this.readCancelled) {
      this.stack.call((lwip) => lwip.lw_tcp_close(this.handle));
      this.finish();
    } else {
      this.stack.call((lwip) => lwip.lw_tcp_shutdown(this.handle));
    }
  }
}

interface PendingConnect {
  remote: Endpoint;
  resolve(connection: TcpConnection): void;
  reject(error: TcpError): void;
}

class Stack implements LwipStack {
  onAcceptAny?: (connection: TcpConnection) => void;
  onDatagramAny?: (datagram: UdpDatagram) => void;
  private readonly lwip: LwipExports;
  private readonly inBuffer: number;
  private readonly connections = new Map<number, Connection>();
  private readonly connecting = new Map<number, PendingConnect>();
  private readonly listeners = new Map<number, (connection: TcpConnection) => void>();
  /** Writers that met a full heap (not their own full send buffer). */
  readonly waitingForMemory = new Set<Connection>();
  private readonly counters = { packetsIn: 0, packetsOut: 0, dropped: 0 };
  private events: Task[] = [];
  private inputs: Uint8Array[] = [];
  private inLwip = false;
  private dispatching = false;
  private drainScheduled = false;
  private timer?: ReturnType<typeof setTimeout>;
  private timerDue = Infinity;
  private disposed = false;

  constructor(
    module: WebAssembly.Module,
    private readonly options: LwipStackOptions,
  ) {
    const random = new Uint32Array(64);
    let randomLeft = 0;
    const bytes = (pointer: number, length: number) => new Uint8Array(this.lwip.memory.buffer, pointer, length).slice();
    const env = {
      now: () => Math.floor(performance.now()) >>> 0,
      random: () => {
        if (randomLeft === 0) randomLeft = crypto.getRandomValues(random).length;
        return random[--randomLeft]!;
      },
      output: (pointer: number, length: number) => {
        const packet = bytes(pointer, length);
        this.later(() => {
          this.counters.packetsOut++;
          callUser(this.options.output, packet);
        });
      },
      tcp_accepted: (listener: number, handle: number, localIp: number, localPort: number, remoteIp: number, remotePort: number) => {
        const onConnection = listener === 0 ? this.onAcceptAny : this.listeners.get(listener);
        if (!onConnection || this.disposed) return 0;
        const connection = new Connection(this, handle, endpointOf(remoteIp, remotePort), endpointOf(localIp, localPort));
        this.connections.set(handle, connection);
        this.later(() => callUser(onConnection, connection));
        return 1;
      },
      tcp_connected: (handle: number, localIp: number, localPort: number) => {
        const pending = this.connecting.get(handle);
        if (!pending) return;
        this.connecting.delete(handle);
        const connection = new Connection(this, handle, pending.remote, endpointOf(localIp, localPort));
        this.connections.set(handle, connection);
        this.later(() => pending.resolve(connection));
      },
      tcp_recv: (handle: number, pointer: number, length: number) => {
        const connection = this.connections.get(handle);
        if (length === 0) connection?.finReceived();
        else connection?.received(bytes(pointer, length));
      },
      tcp_sent: (handle: number, length: number) => {
        this.connections.get(handle)?.sendSpace();
        // Acknowledged data leaves lwIP's heap, which every connection's unsent data shares.
        if (length > 0 && this.waitingForMemory.size) {
          for (const connection of this.waitingForMemory) connection.sendSpace();
          this.waitingForMemory.clear();
        }
      },
      tcp_error: (handle: number, err: number) => {
        const pending = this.connecting.get(handle);
        if (pending) {
          this.connecting.delete(handle);
          const to = `${pending.remote.address}:${pending.remote.port}`;
          const error =
            err === ERR_RST ? new TcpError('connection-refused', `${to} refused the connection`)
            : err === ERR_ABRT ? new TcpError('timeout', `${to} did not answer (connection timed out)`)
            : tcpError(err, `connecting to ${to}`);
          this.later(() => pending.reject(error));
          return;
        }
        const connection = this.connections.get(handle);
        if (!connection) return;
        const to = `${connection.remote.address}:${connection.remote.port}`;
        connection.lost(
          err === ERR_CLSD ? undefined
          : err === ERR_RST ? new TcpError('connection-reset', `${to} reset the connection`)
          : err === ERR_ABRT ? new TcpError('timeout', `${to} stopped answering (connection timed out)`)
          : tcpError(err, `the connection to ${to}`),
        );
      },
      udp_recv: (sourceIp: number, sourcePort: number, destinationIp: number, destinationPort: number, pointer: number, length: number) => {
        const datagram: UdpDatagram = {
          source: endpointOf(sourceIp, sourcePort),
          destination: endpointOf(destinationIp, destinationPort),
          data: bytes(pointer, length),
        };
        this.later(() => callUser(this.onDatagramAny, datagram));
      },
    };
    const instance = new WebAssembly.Instance(module, { env });
    this.lwip = instance.exports as unknown as LwipExports;
    this.inBuffer = this.lwip.lw_in_buffer();
  }

  /** Configures lwIP; separate from the constructor so that errors name the bad option. */
  start(): void {
    const { address, netmask, gateway, mtu = 1500, catchAll = false, output } = this.options;
    if (typeof output !== 'function') throw new TypeError('LwipStackOptions.output must be a function');
    const ip = swapBytes(checkAddress(address, 'LwipStackOptions.address'));
    const mask = swapBytes(checkAddress(netmask, 'LwipStackOptions.netmask'));
    const gw = gateway === undefined ? 0 : swapBytes(checkAddress(gateway, 'LwipStackOptions.gateway'));
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > BUFFER_SIZE - 1) {
      throw new RangeError(`LwipStackOptions.mtu must be an integer from 576 to ${BUFFER_SIZE - 1}: ${mtu}`);
    }
    const err = this.call((lwip) => lwip.lw_init(ip, mask, gw, mtu, catchAll ? 1 : 0));
    if (err !== 0) throw new Error(`lwIP could not start (error ${err})`);
  }

  get stats() {
    return { ...this.counters, dropped: this.counters.dropped + this.lwip.lw_not_for_us(), connections: this.connections.size };
  }

  input(packet: Uint8Array): void {
    if (this.disposed) return;
    const parsed = packet instanceof Uint8Array ? parseIpv4Packet(packet) : undefined;
    // lwIP checks all of this too; dropping here keeps malformed packets out of the queue and counted.
    if (!parsed || parsed.packet.length > BUFFER_SIZE || checksum(parsed.packet, 0, parsed.headerLength) !== 0) {
      this.counters.dropped++;
      return;
    }
    this.inputs.push(parsed.packet.slice());
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      runSoon(() => this.drain());
    }
  }

  connect(remote: Endpoint): Promise<TcpConnection> {
    if (this.disposed) return Promise.reject(new TcpError('closed', 'the lwIP stack is disposed'));
    let target: { ip: number; port: number };
    try {
      target = checkEndpoint(remote, 'connect');
    } catch (error) {
      return Promise.reject(error);
    }
    const to = { address: remote.address, port: remote.port };
    return new Promise((resolve, reject) => {
      const handle = this.call((lwip) => lwip.lw_tcp_connect(target.ip, target.port));
      if (handle > 0) this.connecting.set(handle, { remote: to, resolve, reject });
      else if (handle === ERR_MEM) reject(new TcpError('out-of-memory', `lwIP has no free connection for ${to.address}:${to.port}`));
      else if (handle === ERR_RTE) reject(new TcpError('connection-refused', `no route to ${to.address}`));
      else reject(tcpError(handle, `connecting to ${to.address}:${to.port}`));
    });
  }

  listen(port: number, onConnection: (connection: TcpConnection) => void): () => void {
    if (this.disposed) throw new Error('the lwIP stack is disposed');
    checkPort(port, 'listen');
    if (typeof onConnection !== 'function') throw new TypeError('listen: onConnection must be a function');
    const id = this.call((lwip) => lwip.lw_tcp_listen(port));
    if (id === ERR_USE) throw new Error(`listen: port ${port} is already in use`);
    if (id === ERR_MEM) throw new Error(`listen: lwIP has no room for another listener (port ${port})`);
    if (id < 0) throw new Error(`listen: lwIP error ${id} on port ${port}`);
    this.listeners.set(id, onConnection);
    return () => {
      if (this.listeners.get(id) !== onConnection) return;
      this.listeners.delete(id);
      if (!this.disposed) this.call((lwip) => lwip.lw_tcp_unlisten(id));
    };
  }

  sendDatagram(datagram: UdpDatagram): void {
    if (this.disposed) throw new Error('the lwIP stack is disposed');
    if (typeof datagram !== 'object' || datagram === null) throw new TypeError('sendDatagram: expected { source, destination, data }');
    const source = checkEndpoint(datagram.source, 'sendDatagram source');
    const destination = checkEndpoint(datagram.destination, 'sendDatagram destination');
    const { data } = datagram;
    if (!(data instanceof Uint8Array)) throw new TypeError('sendDatagram: data must be a Uint8Array');
    if (data.length > MAX_UDP_PAYLOAD) throw new RangeError(`sendDatagram: ${data.length} bytes do not fit a UDP datagram (${MAX_UDP_PAYLOAD} at most)`);
    const err = this.call((lwip) => {
      new Uint8Array(lwip.memory.buffer, this.inBuffer, data.length).set(data);
      return lwip.lw_udp_send(source.ip, source.port, destination.ip, destination.port, data.length);
    });
    // Like a full NIC queue: the datagram is lost, and counted.
    if (err !== 0) this.counters.dropped++;
  }

  dispose(): void {
    if (this.disposed) return;
    const closed = new TcpError('closed', 'the lwIP stack was disposed');
    for (const connection of [...this.connections.values()]) connection.abort();
    for (const [handle, pending] of this.connecting) {
      this.call((lwip) => lwip.lw_tcp_abort(handle));
      pending.reject(closed);
    }
    this.connecting.clear();
    this.listeners.clear();
    this.inputs = [];
    this.disposed = true;
    clearTimeout(this.timer);
  }

  /** Runs `fn` inside lwIP, then everything lwIP asked for meanwhile. */
  call<T>(fn: (lwip: LwipExports) => T): T {
    if (this.inLwip) throw new Error('lwIP was re-entered (a bug in lwip-stack.ts)');
    this.inLwip = true;
    try {
      return fn(this.lwip);
    } finally {
      this.inLwip = false;
      this.dispatch();
    }
  }

  later(task: Task): void {
    this.events.push(task);
  }

  recved(handle: number, length: number): void {
    if (!this.disposed) this.call((lwip) => lwip.lw_tcp_recved(handle, length));
  }

  /** Hands lwIP as much of `data` as its send buffer takes now; ERR_MEM when the heap is full, other < 0 when the connection is gone. */
  write(handle: number, data: Uint8Array): number {
    if (this.disposed) return -1;
    return this.call((lwip) => {
      const room = lwip.lw_tcp_writable(handle);
      if (room <= 0) return room;
      const length = Math.min(room, data.length);
      new Uint8Array(lwip.memory.buffer, this.inBuffer, length).set(data.subarray(0, length));
      return lwip.lw_tcp_write(handle, length);
    });
  }

  forget(handle: number): void {
    this.connections.delete(handle);
  }

  private drain(): void {
    this.drainScheduled = false;
    if (this.disposed) return;
    const batch = this.inputs;
    this.inputs = [];
    this.call((lwip) => {
      const view = new Uint8Array(lwip.memory.buffer, this.inBuffer, BUFFER_SIZE);
      for (const packet of batch) {
        view.set(packet);
        try {
          if (lwip.lw_input(packet.length) === 0) this.counters.packetsIn++;
          else this.counters.dropped++;
        } catch (trap) {
          // A trap inside lwIP is a bug: report it, and keep the stack going for the packets after it.
          this.counters.dropped++;
          report(trap);
        }
      }
    });
  }

  private dispatch(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      while (this.events.length) {
        const batch = this.events;
        this.events = [];
        for (const task of batch) task();
      }
    } finally {
      this.dispatching = false;
    }
    if (!this.disposed) this.armTimer();
  }

  /** lwIP's timers (retransmission, delayed ACK, TIME-WAIT) run only when one is due. */
  private armTimer(): void {
    const sleep = this.lwip.lw_sleeptime();
    const due = performance.now() + sleep;
    if (sleep !== SLEEP_FOREVER && due < this.timerDue) {
      clearTimeout(this.timer);
      this.timerDue = due;
      this.timer = setTimeout(() => {
        this.timerDue = Infinity;
        this.timer = undefined;
        if (!this.disposed) this.call((lwip) => lwip.lw_check_timeouts());
      }, sleep);
    }
    // In Node, like a socket: open connections keep the process alive (their progress may need a timer,
    // e.g. a retransmission), an idle stack does not (lwIP's reassembly timer ticks every second).
    const timer = this.timer as { ref?: () => void; unref?: () => void } | undefined;
    if (this.connections.size || this.connecting.size) timer?.ref?.();
    else timer?.unref?.();
  }
}

function tcpError(err: number, what: string): TcpError {
  const code: TcpErrorCode = err === ERR_MEM ? 'out-of-memory' : err === ERR_RST ? 'connection-reset' : 'closed';
  return new TcpError(code, `${what}: lwIP error ${err}`);
}

const modules = new Map<string, Promise<WebAssembly.Module>>();

async function fetchModule(url: URL): Promise<WebAssembly.Module> {
  if (url.protocol === 'file:') {
    // Node (tests, benchmarks): fetch() cannot read files. getBuiltinModule avoids an import a bundler would follow.
    const node = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const fs = node?.getBuiltinModule?.('node:fs/promises') as { readFile(url: URL): Promise<Uint8Array<ArrayBuffer>> } | undefined;
    if (!fs) throw new Error(`cannot read ${url.href} here (no fetch for file: URLs)`);
    return WebAssembly.compile(await fs.readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the lwIP wasm could not be downloaded: ${url.href} answered ${response.status}`);
  if (response.headers.get('content-type')?.startsWith('application/wasm')) return WebAssembly.compileStreaming(response);
  return WebAssembly.compile(await response.arrayBuffer());
}

/** Compiled once per realm and URL; a failure is not cached. */
function compile(wasm: URL | string | BufferSource): Promise<WebAssembly.Module> {
  if (typeof wasm !== 'string' && !(wasm instanceof URL)) return WebAssembly.compile(wasm);
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const url = new URL(wasm, base);
  let module = modules.get(url.href);
  if (!module) {
    module = fetchModule(url);
    modules.set(url.href, module);
    module.catch(() => modules.delete(url.href));
  }
  return module;
}

export const loadLwipStack: LoadLwipStack = async (wasm, options) => {
  const stack = new Stack(await compile(wasm), options);
  stack.start();
  return stack;
};
