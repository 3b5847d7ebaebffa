/**
 * Carries a TCP connection into the guest (lwIP's streams, in the emulator worker) over a
 * MessagePort to the page, keeping backpressure end to end: the page's reader opens the guest's
 * TCP window, the guest's window slows the page's writer.
 */
import type { TcpConnection } from '../net/lwip/contract.js';
import { streamsOverPort } from '../net/port-stream.js';

export function bridgeConnection(connection: TcpConnection, channel: MessagePort): void {
  const page = streamsOverPort(channel);
  // A reset or abort on either side ends the other: pipeTo passes errors (with their codes) both ways.
  connection.readable.pipeTo(page.writable).catch(() => {});
  page.readable.pipeTo(connection.writable).catch(() => {});
  page.closed.catch(() => connection.abort());
}
