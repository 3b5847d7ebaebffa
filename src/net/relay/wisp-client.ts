/**
 * A small client of the Wisp protocol (v1 framing, with the v2 handshake that current servers
 * expect): many TCP and UDP streams multiplexed over one WebSocket. Written for workers (only
 * WebSocket and streams are used).
 *
 * Frames are `type u8 | stream id u32le | payload`:
 *   CONNECT  stream type u8 (1 TCP, 2 UDP) | port u16le | hostname (UTF-8)
 *   DATA     bytes (one datagram each on UDP streams)
 *   CONTINUE buffer remaining u32le: how many more DATA packets the server takes on a TCP stream
 *   CLOSE    reason u8
 *   INFO     (v2) major u8 | minor u8 | extensions (id u8 | length u32le | payload)*
 *
 * Flow control in the protocol only goes one way: the server grants credits for our DATA, but cannot
 * be asked to slow down. So past `receiveBufferLimit` bytes waiting for the streams' readers, this
 * client stops reading the WebSocket, which holds the server back where the browser has
 * WebSocketStream (all streams pause together, until the readers catch up); elsewhere the data waits
 * in memory.
 */
import { type PacketSocket, openPacketSocket } from './packet-socket.js';

const PACKET_CONNECT = 0x01;
const PACKET_DATA = 0x02;
const PACKET_CONTINUE = 0x03;
const PACKET_CLOSE = 0x04;
const PACKET_INFO = 0x05;
const STREAM_TCP = 0x01;
const STREAM_UDP = 0x02;
const EXTENSION_UDP = 0x01;
const HEADER_BYTES = 5;
/** How much of a TCP stream's data may wait for its reader before the stream counts as full. */
const RECEIVE_HIGH_WATER = 256 * 1024;
/**
 * How much data may wait for the streams' readers in all before reading from the relay pauses. Generous:
 * pausing stalls every stream, and some servers handle a slow client badly (wisp-js 0.5 drops what it has
 * queued for a stream when the destination closes meanwhile, and the stream never ends).
 */
const RECEIVE_BUFFER_LIMIT = 64 * 1024 * 1024;

/** Close reasons of the protocol (what a server reports; we send `voluntary`, `networkError` or `clientError`). */
export const WispCloseReason = {
  unknown: 0x01,
  voluntary: 0x02,
  networkError: 0x03,
  incompatibleExtensions: 0x04,
  invalidInfo: 0x41,
  unreachable: 0x42,
  noResponse: 0x43,
  refused: 0x44,
  transferTimeout: 0x47,
  blocked: 0x48,
  throttled: 0x49,
  clientError: 0x81,
} as const;

const REASON_NAMES = new Map<number, string>(Object.entries(WispCloseReason).map(([name, code]) => [code, name]));

/** A stream the server closed for a reason other than `voluntary`, or a connection that failed. */
export class WispError extends Error {
  override name = 'WispError';
  constructor(
    /** A WispCloseReason code, or 0 for the connection itself (WebSocket failure, broken handshake). */
    readonly reason: number,
    message: string,
  ) {
    super(message);
  }
}

export function describeCloseReason(reason: number): string {
  return `${REASON_NAMES.get(reason) ?? 'reason'} (0x${reason.toString(16).padStart(2, '0')})`;
}

export interface WispConnectOptions {
  /** How long the WebSocket and the handshake may take (default 10 s). */
  timeoutMs?: number;
  /** Bytes that may wait for the streams' readers before reading from the relay pauses (default 64 MiB). */
  receiveBufferLimit?: number;
}

export interface WispStats {
  streamsOpened: number;
  bytesSent: number;
  bytesReceived: number;
}

/**
 * One TCP stream: `writable` sends (waiting for the server's credits), `readable` receives. Wisp has
 * no half-close: closing `writable` only stops writing; the stream ends when the server closes it
 * (readable ends, or errors with a WispError for any reason but `voluntary`) or on `close()`.
 */
export interface WispTcpStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Sends CLOSE (once) and ends both sides. */
  close(reason?: number): void;
  /** Settles with the reason the stream ended with. */
  readonly closed: Promise<number>;
}

/** One UDP "stream": a flow to one destination; each DATA is one datagram. */
export interface WispUdpStream {
  send(datagram: Uint8Array): void;
  onDatagram?: (datagram: Uint8Array) => void;
  close(reason?: number): void;
  readonly closed: Promise<number>;
}

interface StreamState {
  /** Bytes received for the stream that its reader has not taken yet. */
  queued(): number;
  onData(data: Uint8Array): void;
  onCredits(credits: number): void;
  /** The server closed the stream, or the connection went away. */
  onClosed(reason: number): void;
}

export class WispConnection {
  readonly stats: WispStats = { streamsOpened: 0, bytesSent: 0, bytesReceived: 0 };
  /** Called once when the WebSocket closes or fails after the handshake (not after `close()`). */
  onLost?: (error: WispError) => void;
  private readonly streams = new Map<number, StreamState>();
  private nextStreamId = 1;
  private open = true;
  /** Set while reading from the relay waits for the streams' readers to catch up. */
  private resumeReading?: () => void;

  private constructor(
    private readonly socket: PacketSocket,
    /** The credits every new TCP stream starts with (the server's CONTINUE on stream 0). */
    private readonly initialCredits: number,
    /** The protocol version the server spoke (1 or 2). */
    readonly version: number,
    private readonly receiveBufferLimit: number,
  ) {
    void this.readLoop();
  }

  /** Opens a WebSocket to a Wisp server and completes the handshake; rejects with a WispError (reason 0). */
  static async connect(url: string, { timeoutMs = 10_000, receiveBufferLimit = RECEIVE_BUFFER_LIMIT }: WispConnectOptions = {}): Promise<WispConnection> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WispError(0, `no Wisp handshake from ${url} within ${timeoutMs} ms`)), timeoutMs);
    });
    let socket: PacketSocket | undefined;
    try {
      // The subprotocol asks for v2 (servers that know no subprotocols ignore it; v1 servers still work).
      const opening = openPacketSocket(url, ['wisp-v2']);
      opening.then((s) => (socket = s)).catch(() => {}); // closed below if the timeout wins
      await Promise.race([opening, timeout]);
      let version = 1;
      for (;;) {
        const packet = await Promise.race([socket!.receive(), timeout]);
        if (packet === null) throw new WispError(0, `the relay at ${url} closed the connection during the handshake: ${socket!.closeReason}`);
        if (packet.length < HEADER_BYTES) throw new WispError(0, `${url} does not speak Wisp (unexpected message)`);
        const type = packet[0];
        if (type === PACKET_INFO && version === 1) {
          // v2 server: it waits for our INFO. We ask for the UDP extension, nothing else.
          version = packet[HEADER_BYTES] ?? 2;
          socket!.send(frame(PACKET_INFO, 0, Uint8Array.of(2, 0, EXTENSION_UDP, 0, 0, 0, 0)));
        } else if (type === PACKET_CONTINUE && readU32(packet, 1) === 0 && packet.length >= HEADER_BYTES + 4) {
          return new WispConnection(socket!, readU32(packet, HEADER_BYTES), version, receiveBufferLimit);
        } else {
          throw new WispError(0, `${url} does not speak Wisp (packet type ${type} before the handshake ended)`);
        }
      }
    } catch (error) {
      socket?.close();
      if (error instanceof WispError) throw error;
      throw new WispError(0, (error as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Opens a TCP stream to host:port (the server resolves names). Data may be written at once. */
  openTcp(host: string, port: number): WispTcpStream {
    const id = this.connectStream(STREAM_TCP, host, port);
    let credits = this.initialCredits;
    let creditWaiter: (() => void) | undefined;
    let ended = false;
    let readController!: ReadableStreamDefaultController<Uint8Array>;
    let settle!: (reason: number) => void;
    const closed = new Promise<number>((resolve) => (settle = resolve));

    const end = (reason: number, error?: WispError) => {
      if (ended) return;
      ended = true;
      this.streams.delete(id);
      this.maybeResumeReading();
      try {
        if (error) readController.error(error);
        else readController.close();
      } catch {
        // the reader cancelled already
      }
      creditWaiter?.();
      settle(reason);
    };

    this.streams.set(id, {
      queued: () => (ended ? 0 : RECEIVE_HIGH_WATER - (readController.desiredSize ?? RECEIVE_HIGH_WATER)),
      onData: (data) => {
        try {
          readController.enqueue(data);
        } catch {
          // the reader cancelled: the data has nowhere to go
        }
      },
      onCredits: (value) => {
        credits = value;
        if (credits > 0) creditWaiter?.();
      },
      onClosed: (reason) =>
        end(reason, reason === WispCloseReason.voluntary ? undefined : new WispError(reason, `the relay closed the stream to ${host}:${port}: ${describeCloseReason(reason)}`)),
    });

    const close = (reason: number = WispCloseReason.voluntary) => {
      if (ended) return;
      this.send(frame(PACKET_CLOSE, id, Uint8Array.of(reason)));
      end(reason);
    };

    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          readController = controller;
        },
        // The reader caught up: reading from the relay may go on if it had paused for this stream.
        pull: () => this.maybeResumeReading(),
        cancel: () => close(WispCloseReason.voluntary),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: RECEIVE_HIGH_WATER }),
    );
    const writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        while (credits <= 0 && !ended) await new Promise<void>((resolve) => (creditWaiter = resolve));
        creditWaiter = undefined;
        if (ended) throw new WispError(WispCloseReason.networkError, `the stream to ${host}:${port} is closed`);
        credits--;
        this.stats.bytesSent += chunk.length;
        this.send(frame(PACKET_DATA, id, chunk));
      },
      // No half-close in Wisp: the stream stays open for the server's answer.
      close: () => {},
      abort: () => close(WispCloseReason.networkError),
    });
    return { readable, writable, close, closed };
  }

  /** Opens a UDP stream to host:port; datagrams arrive through `onDatagram`. */
  openUdp(host: string, port: number): WispUdpStream {
    const id = this.connectStream(STREAM_UDP, host, port);
    let ended = false;
    let settle!: (reason: number) => void;
    const closed = new Promise<number>((resolve) => (settle = resolve));
    const end = (reason: number) => {
      if (ended) return;
      ended = true;
      this.streams.delete(id);
      settle(reason);
    };
    const stream: WispUdpStream = {
      send: (datagram) => {
        if (ended) return;
        this.stats.bytesSent += datagram.length;
        this.send(frame(PACKET_DATA, id, datagram));
      },
      close: (reason = WispCloseReason.voluntary) => {
        if (ended) return;
        this.send(frame(PACKET_CLOSE, id, Uint8Array.of(reason)));
        end(reason);
      },
      closed,
    };
    this.streams.set(id, {
      queued: () => 0, // handed on at once
      onData: (data) => stream.onDatagram?.(data),
      onCredits: () => {}, // UDP streams are not flow-controlled
      onClosed: end,
    });
    return stream;
  }

  /** Closes every stream and the WebSocket. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.socket.close();
    this.endAllStreams(WispCloseReason.networkError);
  }

  private connectStream(type: number, host: string, port: number): number {
    const id = this.nextStreamId++;
    if (this.nextStreamId > 0xffffffff) this.nextStreamId = 1;
    const name = new TextEncoder().encode(host);
    const payload = new Uint8Array(3 + name.length);
    payload[0] = type;
    payload[1] = port & 0xff;
    payload[2] = port >>> 8;
    payload.set(name, 3);
    this.stats.streamsOpened++;
    this.send(frame(PACKET_CONNECT, id, payload));
    return id;
  }

  private onPacket(packet: Uint8Array): void {
    if (packet.length < HEADER_BYTES) return; // malformed: ignored
    const id = readU32(packet, 1);
    const stream = this.streams.get(id);
    const payload = packet.subarray(HEADER_BYTES);
    switch (packet[0]) {
      case PACKET_DATA:
        this.stats.bytesReceived += payload.length;
        stream?.onData(payload);
        break;
      case PACKET_CONTINUE:
        if (payload.length >= 4) stream?.onCredits(readU32(payload, 0));
        break;
      case PACKET_CLOSE:
        stream?.onClosed(payload[0] ?? WispCloseReason.unknown);
        break;
      // INFO after the handshake, or types we do not know: ignored.
    }
  }

  private send(packet: Uint8Array): void {
    if (this.open) this.socket.send(packet);
  }

  /**
   * Takes packets from the relay as long as the streams' readers keep up: past `receiveBufferLimit` bytes
   * waiting for them, it stops reading, which (with WebSocketStream) holds the relay back.
   */
  private async readLoop(): Promise<void> {
    while (this.open) {
      if (this.socket.backpressure && this.queuedBytes() > this.receiveBufferLimit) {
        await new Promise<void>((resume) => (this.resumeReading = resume));
        continue;
      }
      const packet = await this.socket.receive();
      if (!this.open) return;
      if (packet === null) return this.lost(new WispError(0, this.socket.closeReason));
      this.onPacket(packet);
    }
  }

  private queuedBytes(): number {
    let total = 0;
    for (const stream of this.streams.values()) total += stream.queued();
    return total;
  }

  private maybeResumeReading(): void {
    if (!this.resumeReading || this.queuedBytes() > this.receiveBufferLimit) return;
    const resume = this.resumeReading;
    this.resumeReading = undefined;
    resume();
  }

  private lost(error: WispError): void {
    if (!this.open) return;
    this.open = false;
    this.endAllStreams(WispCloseReason.networkError);
    this.onLost?.(error);
  }

  private endAllStreams(reason: number): void {
    for (const stream of [...this.streams.values()]) stream.onClosed(reason);
    this.streams.clear();
  }
}

function frame(type: number, streamId: number, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(HEADER_BYTES + payload.length);
  packet[0] = type;
  new DataView(packet.buffer).setUint32(1, streamId, true);
  packet.set(payload, HEADER_BYTES);
  return packet;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
}
