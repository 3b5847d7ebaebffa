// What the relay test's servers (servers.mjs, through wtr-relay.mjs) tell the browser tests.
import { getJson } from '../helpers.js';

export interface RelayInfo {
  /** The Wisp server. */
  wispURL: string;
  /** The machine's non-loopback IPv4 address, where the HTTP, DNS and UDP echo servers listen too. */
  hostIP: string;
  httpPort: number;
  /** GET /page's body. */
  page: string;
  udpEchoPort: number;
  dnsPort: number;
  /** The HTTP server's name (the test DNS server's only name; the Wisp server resolves through it). */
  webName: string;
}

/** Starts the servers on first use. */
export const relayInfo = () => getJson<RelayInfo>('/__relay/info');
