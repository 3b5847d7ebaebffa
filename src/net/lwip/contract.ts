/**
 * The contract of the lwIP binding (wasm/lwip + src/net/lwip/lwip-stack.ts): a TCP/IP stack that
 * works on bare IPv4 packets (the virtual switch does layer 2). It is the host node of the VM's
 * virtual LAN: the page opens TCP connections into the guest through it, and in relay mode it
 * terminates the guest's flows to any address (catch-all) so they can be carried over a relay.
 *
 * lwIP is not re-entrant: `input()` queues, and packets leave through `output` outside of any
 * lwIP call made by the user of this class.
 */

/** Addresses are dotted-quad strings at this boundary; ports are numbers. */
export interface Endpoint {
  address: string;
  port: number;
}

export interface LwipStackOptions {
  /** The stack's own address, netmask and (optional) gateway on the virtual LAN. */
  address: string;
  netmask: string;
  gateway?: string;
  /** Largest IP packet `output` may be given (default 1500). */
  mtu?: number;
  /**
   * Accept TCP connections and UDP datagrams for any destination address and port, not only the
   * stack's own (relay NAT). Connections arrive through `onAcceptAny`, datagrams through `onDatagramAny`.
   */
  catchAll?: boolean;
  /** An IPv4 packet the stack sends. The buffer is the caller's to keep (a copy). */
  output(packet: Uint8Array): void;
}

/** Why a connection could not be opened or ended early. */
export type TcpErrorCode = 'connection-refused' | 'connection-reset' | 'timeout' | 'out-of-memory' | 'closed';

export class TcpError extends Error {
  constructor(
    readonly code: TcpErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TcpError';
  }
}

/**
 * One TCP connection as a pair of streams with backpressure: the readable side opens lwIP's receive
 * window only as the consumer reads; the writable side resolves writes when lwIP has taken the bytes
 * (send buffer space). Closing the writable sends FIN; the readable ends at the peer's FIN; errors
 * (reset, abort) error both streams with a TcpError. A connection's handle is never confused with a
 * later one that reuses lwIP's slot.
 */
export interface TcpConnection {
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Sends RST and errors both streams. */
  abort(): void;
  /** Settles when the connection is fully gone (after FIN both ways, reset or abort). */
  readonly closed: Promise<void>;
}

export interface UdpDatagram {
  source: Endpoint;
  destination: Endpoint;
  data: Uint8Array;
}

export interface LwipStack {
  /** An IPv4 packet for the stack (from the switch). Never throws; malformed packets are dropped. */
  input(packet: Uint8Array): void;
  /** Opens a TCP connection from the stack's address; rejects with a TcpError. */
  connect(remote: Endpoint): Promise<TcpConnection>;
  /** Accepts connections to the stack's own address on `port`. Returns a function that stops listening. */
  listen(port: number, onConnection: (connection: TcpConnection) => void): () => void;
  /** catchAll only: each guest connection to any destination; `connection.local` is the original destination. */
  onAcceptAny?: (connection: TcpConnection) => void;
  /** catchAll only: each UDP datagram to any destination. */
  onDatagramAny?: (datagram: UdpDatagram) => void;
  /** Sends a UDP datagram with any source (replies on behalf of a relayed destination). */
  sendDatagram(datagram: UdpDatagram): void;
  /** Counters for tests and benchmarks. */
  readonly stats: { packetsIn: number; packetsOut: number; dropped: number; connections: number };
  /** Aborts every connection and frees the instance. */
  dispose(): void;
}

/** Loads the wasm (compiled once per realm) and starts a stack. */
export type LoadLwipStack = (wasm: URL | string | BufferSource, options: LwipStackOptions) => Promise<LwipStack>;
