/**
 * A duplex byte stream carried over a MessagePort, with flow control: a side sends at most `window`
 * bytes that the other side's reader has not yet taken, so a slow reader slows the writer down all
 * the way back to the guest's TCP window. The page and the emulator worker each hold one end of a
 * connection into the guest this way (transferable streams are not available in every browser).
 *
 * Messages from the port are input from another realm: anything malformed ends the stream with an
 * error instead of throwing.
 */

/** What travels over the port. */
type PortMessage =
  | { kind: 'data'; bytes: ArrayBuffer }
  /** The reader took this many bytes: the writer may send that much more. */
  | { kind: 'credit'; bytes: number }
  /** The writer closed: no more data follows (TCP's FIN). */
  | { kind: 'end' }
  /** Either side gave up: both directions end with this error (TCP's RST). */
  | { kind: 'error'; code: string; message: string };

/** Unacknowledged bytes in flight per direction. */
const DEFAULT_WINDOW = 256 * 1024;

/** How the stream reports an `error` message as an exception (so callers get their own error class). */
export type ErrorFactory = (code: string, message: string) => Error;

export interface PortStreams {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when both directions have ended cleanly; rejects with the error that ended them. */
  readonly closed: Promise<void>;
  /** Ends both directions at once and tells the other side (`code`: why). */
  abort(code: string, message: string): void;
}

export function streamsOverPort(
  port: MessagePort,
  makeError: ErrorFactory = (code, message) => Object.assign(new Error(message), { code }),
  window = DEFAULT_WINDOW,
): PortStreams {
  const received: Uint8Array[] = [];
  let receivedEnd = false;
  let sentEnd = false;
  let failure: Error | undefined;
  /** Bytes we may still send. */
  let credit = window;
  let wakeReader: (() => void) | undefined;
  let wakeWriter: (() => void) | undefined;
  let readableController!: ReadableStreamDefaultController<Uint8Array>;
  let writableController!: WritableStreamDefaultController;
  let settle!: { resolve(): void; reject(error: Error): void };
  const closed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  closed.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection

  const send = (message: PortMessage, transfer: Transferable[] = []) => {
    try {
      port.postMessage(message, transfer);
    } catch {
      // The other side is gone; our own state already says how the stream ended.
    }
  };
  const finishIfDone = () => {
    if (receivedEnd && sentEnd && received.length === 0 && !failure) {
      settle.resolve();
      port.close();
    }
  };
  const fail = (error: Error, tellPeer?: { code: string; message: string }) => {
    if (failure) return;
    failure = error;
    if (tellPeer) send({ kind: 'error', ...tellPeer });
    received.length = 0;
    try {
      readableController.error(error);
    } catch {
      // already closed
    }
    try {
      writableController.error(error);
    } catch {
      // already closed
    }
    wakeReader?.();
    wakeWriter?.();
    settle.reject(error);
    port.onmessage = null;
    port.close();
  };

  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        readableController = controller;
      },
      async pull(controller) {
        while (received.length === 0 && !receivedEnd && !failure) {
          await new Promise<void>((resolve) => (wakeReader = resolve));
          wakeReader = undefined;
        }
        if (failure) return;
        const chunk = received.shift();
        if (chunk) {
          controller.enqueue(chunk);
          send({ kind: 'credit', bytes: chunk.byteLength });
        } else {
          controller.close();
        }
        finishIfDone();
      },
      cancel() {
        // The reader is not interested any more: the connection as a whole ends.
        fail(makeError('closed', 'The reader cancelled the stream'), { code: 'closed', message: 'The peer stopped reading' });
      },
    },
    { highWaterMark: 0 },
  );

  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      writableController = controller;
    },
    async write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw new TypeError('Write Uint8Array chunks');
      let offset = 0;
      while (offset < chunk.byteLength) {
        while (credit <= 0 && !failure) {
          await new Promise<void>((resolve) => (wakeWriter = resolve));
          wakeWriter = undefined;
        }
        if (failure) throw failure;
        const piece = chunk.slice(offset, offset + credit);
        credit -= piece.byteLength;
        offset += piece.byteLength;
        send({ kind: 'data', bytes: piece.buffer }, [piece.buffer]);
      }
    },
    close() {
      sentEnd = true;
      send({ kind: 'end' });
      finishIfDone();
    },
    abort(reason: unknown) {
      // A pipe aborts us with its source's error (e.g. a TcpError): keep its code for the other side.
      const code = typeof (reason as { code?: unknown })?.code === 'string' ? (reason as { code: string }).code : 'aborted';
      const message = reason instanceof Error ? reason.message : String(reason);
      fail(makeError(code, message), { code, message });
    },
  });

  port.onmessage = (event: MessageEvent<unknown>) => {
    const message = event.data as Partial<PortMessage> | null;
    if (failure || !message || typeof message !== 'object') return;
    switch (message.kind) {
      case 'data':
        if (!(message.bytes instanceof ArrayBuffer) || receivedEnd) return fail(makeError('protocol', 'Malformed stream data'));
        if (message.bytes.byteLength > 0) received.push(new Uint8Array(message.bytes));
        return wakeReader?.();
      case 'credit':
        if (typeof message.bytes !== 'number' || !(message.bytes >= 0)) return fail(makeError('protocol', 'Malformed stream credit'));
        credit += message.bytes;
        return wakeWriter?.();
      case 'end':
        receivedEnd = true;
        wakeReader?.();
        return finishIfDone();
      case 'error':
        return fail(makeError(String(message.code), String(message.message)));
      default:
        return fail(makeError('protocol', 'Unknown stream message'));
    }
  };

  return {
    readable,
    writable,
    closed,
    abort: (code, message) => fail(makeError(code, message), { code, message }),
  };
}
