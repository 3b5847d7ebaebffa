/**
 * The host node of the VM's virtual LAN: an lwIP stack (wasm/lwip) at the switch's own address,
 * through which the page opens TCP connections into the guest (`connect()`, `fetch()` and the
 * service worker build on it). The wasm is fetched the first time something needs the node, never
 * before; until then the guest's packets for the node's address are dropped (TCP retransmits).
 */
import type { LwipStack, TcpConnection } from '../net/lwip/contract.js';
import { TcpError } from '../net/lwip/contract.js';
import { formatIpv4, type Ipv4 } from '../net/packets.js';
import { VmError } from '../errors.js';
import type { VmErrorCode } from '../protocol.js';

export interface HostNodeOptions {
  /** The node's address on the virtual LAN (the switch's own: the guest reaches it on-link or as its router). */
  address: Ipv4;
  /** An IPv4 packet from the node for the guest. */
  toGuest(packet: Uint8Array): void;
}

/** How long opening a connection into the guest may take (the guest may be busy, lwIP retransmits SYNs). */
const CONNECT_TIMEOUT_MS = 20_000;

export class HostNode {
  private stack?: Promise<LwipStack>;
  private loaded?: LwipStack;

  constructor(private readonly options: HostNodeOptions) {}

  get address(): Ipv4 {
    return this.options.address;
  }

  /** A packet from the guest for the node's address. */
  input(packet: Uint8Array): void {
    this.loaded?.input(packet);
  }

  /** Opens a TCP connection to `port` on the guest at `guestAddress`; errors are VmErrors with specific codes. */
  async connect(guestAddress: Ipv4, port: number): Promise<TcpConnection> {
    const stack = await this.load();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TcpError('timeout', `No answer from the guest's port ${port} within ${CONNECT_TIMEOUT_MS / 1000} s`)),
        CONNECT_TIMEOUT_MS,
      );
    });
    const attempt = stack.connect({ address: formatIpv4(guestAddress), port });
    try {
      return await Promise.race([attempt, timeout]);
    } catch (error) {
      // A connection that completes after we gave up must not linger.
      void attempt.then((connection) => connection.abort(), () => {});
      throw toVmError(error, port);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The binding is a chunk of its own and its wasm an asset: neither is fetched before the first connection. */
  private load(): Promise<LwipStack> {
    this.stack ??= import('../net/lwip/lwip-stack.js')
      .then(({ loadLwipStack, lwipWasmUrl }) =>
        loadLwipStack(lwipWasmUrl, {
          address: formatIpv4(this.options.address),
          netmask: '255.255.255.255',
          output: (packet) => this.options.toGuest(packet),
        }),
      )
      .then(
        (stack) => (this.loaded = stack),
        (error: unknown) => {
          this.stack = undefined; // a later call may try again
          throw new VmError('network-failed', `The host node's TCP/IP stack (lwIP wasm) could not be loaded: ${String(error)}`);
        },
      );
    return this.stack;
  }
}

const CODES: Record<string, VmErrorCode> = {
  'connection-refused': 'connection-refused',
  timeout: 'connection-timeout',
  'out-of-memory': 'connection-failed',
  'connection-reset': 'connection-failed',
  closed: 'connection-failed',
};

function toVmError(error: unknown, port: number): VmError {
  if (error instanceof VmError) return error;
  if (error instanceof TcpError) {
    const code = CODES[error.code] ?? 'connection-failed';
    const message = code === 'connection-refused' ? `Nothing listens on the guest's TCP port ${port}` : error.message;
    return new VmError(code, message);
  }
  return new VmError('connection-failed', String(error));
}
