/**
 * A WebSocket as a pull-based channel of binary messages, for the Wisp client. Where the browser has
 * WebSocketStream (Chromium), a message is only read from the network when asked for, so a reader that
 * stops asking slows the relay down (TCP backpressure on the WebSocket); with a plain WebSocket,
 * messages pile up in memory until asked for.
 */

export interface PacketSocket {
  send(packet: Uint8Array): void;
  /** The next message (an empty array for a text message); null once the socket has closed. */
  receive(): Promise<Uint8Array | null>;
  close(): void;
  /** Why the socket closed (for messages), once `receive()` has returned null. */
  readonly closeReason: string;
  /** True when not calling `receive()` holds the sender back. */
  readonly backpressure: boolean;
}

/** Chromium's WebSocketStream, not yet in TypeScript's DOM library. */
interface WebSocketStreamLike {
  readonly opened: Promise<{ readable: ReadableStream<ArrayBuffer | string>; writable: WritableStream<Uint8Array> }>;
  readonly closed: Promise<{ closeCode?: number; reason?: string }>;
  close(info?: { closeCode?: number; reason?: string }): void;
}
type WebSocketStreamConstructor = new (url: string, options?: { protocols?: string[] }) => WebSocketStreamLike;

/** Opens a WebSocket; rejects with an Error that says why when it cannot be opened. */
export function openPacketSocket(url: string, protocols: string[]): Promise<PacketSocket> {
  const Stream = (globalThis as { WebSocketStream?: WebSocketStreamConstructor }).WebSocketStream;
  return Stream ? openStream(Stream, url, protocols) : openWebSocket(url, protocols);
}

async function openStream(Stream: WebSocketStreamConstructor, url: string, protocols: string[]): Promise<PacketSocket> {
  const socket = new Stream(url, { protocols });
  let opened;
  try {
    opened = await socket.opened;
  } catch {
    throw new Error(`cannot connect to ${url}`);
  }
  const reader = opened.readable.getReader();
  const writer = opened.writable.getWriter();
  let closeReason = '';
  void socket.closed.then(
    (info) => (closeReason = `the relay closed the connection (WebSocket code ${info.closeCode ?? 'none'}${info.reason ? `: ${info.reason}` : ''})`),
    () => (closeReason ||= 'the connection to the relay failed'),
  );
  return {
    backpressure: true,
    get closeReason() {
      return closeReason || 'the connection to the relay failed';
    },
    // Writes are queued by the writer in order; a failed one shows up as the end of `receive()`.
    send: (packet) => void writer.write(packet).catch(() => {}),
    receive: async () => {
      try {
        const { value, done } = await reader.read();
        if (done) return null;
        return value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(0);
      } catch {
        return null;
      }
    },
    close: () => {
      try {
        socket.close({ closeCode: 1000 });
      } catch {
        // already closed
      }
    },
  };
}

function openWebSocket(url: string, protocols: string[]): Promise<PacketSocket> {
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, protocols);
    } catch (error) {
      reject(new Error(`cannot open a WebSocket to ${url}: ${(error as Error).message}`));
      return;
    }
    socket.binaryType = 'arraybuffer';
    const queue: Uint8Array[] = [];
    let waiting: ((packet: Uint8Array | null) => void) | undefined;
    let closeReason = '';
    const deliver = (packet: Uint8Array | null) => {
      if (waiting) {
        const wake = waiting;
        waiting = undefined;
        wake(packet);
      } else if (packet) {
        queue.push(packet);
      }
    };
    socket.onopen = () =>
      resolve({
        backpressure: false,
        get closeReason() {
          return closeReason;
        },
        send: (packet) => {
          if (socket.readyState === WebSocket.OPEN) socket.send(packet);
        },
        receive: () => {
          if (queue.length > 0) return Promise.resolve(queue.shift()!);
          if (closeReason) return Promise.resolve(null);
          return new Promise((wake) => (waiting = wake));
        },
        close: () => socket.close(1000),
      });
    socket.onmessage = (event: MessageEvent<unknown>) => deliver(event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : new Uint8Array(0));
    socket.onerror = () => {
      closeReason ||= 'the connection to the relay failed';
      reject(new Error(`cannot connect to ${url}`)); // no effect once open
    };
    socket.onclose = (event) => {
      closeReason ||= `the relay closed the connection (WebSocket code ${event.code}${event.reason ? `: ${event.reason}` : ''})`;
      reject(new Error(`cannot connect to ${url}`));
      deliver(null);
    };
  });
}
