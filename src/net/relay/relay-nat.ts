/**
 * The relay NAT: lwIP in catch-all mode terminates every TCP connection and UDP flow the guest
 * starts, to any address, and each is carried over a Wisp relay as a stream to the original
 * destination. Addresses the fake DNS handed out are replaced by the names they stand for, so the
 * relay resolves them. DNS queries to the resolver's address are answered here.
 *
 *   guest ──TCP──▶ lwIP (connection.local = where the guest meant to go) ══ Wisp TCP stream ══▶ host:port
 *   guest ──UDP──▶ lwIP (onDatagramAny)  ══ one Wisp UDP stream per flow, closed when idle ══▶ host:port
 */
import type { Endpoint, LwipStack, TcpConnection, UdpDatagram } from '../lwip/contract.js';
import { parseIpv4 } from '../packets.js';
import { FakeDns, isFakeAddress } from './fake-dns.js';
import { WispCloseReason, type WispTcpStream, type WispUdpStream } from './wisp-client.js';

/** What the NAT needs of a relay (a WispConnection). */
export interface Relay {
  openTcp(host: string, port: number): WispTcpStream;
  openUdp(host: string, port: number): WispUdpStream;
}

export interface RelayNatOptions {
  stack: LwipStack;
  /** The relay, or undefined while there is none (new flows are refused then). */
  relay(): Relay | undefined;
  /** The address the guest's resolver is at (from its DHCP lease); UDP port 53 there is answered locally. */
  dnsAddress: string;
  /**
   * The virtual LAN (e.g. 10.0.2.0/24): flows to it are refused, never relayed, since nothing on the relay's
   * side is meant by those addresses (and a relay's own network may well use the same ones).
   */
  localNetwork?: { address: string; netmask: string };
  /** A UDP flow with no datagram either way for this long is closed (default 60 s). */
  udpIdleMs?: number;
}

export interface RelayNatStats {
  tcpFlows: number;
  udpFlows: number;
  dnsQueries: number;
  refused: number;
}

const DNS_PORT = 53;

interface UdpFlow {
  stream: WispUdpStream;
  timer: ReturnType<typeof setTimeout>;
}

export class RelayNat {
  readonly stats: RelayNatStats = { tcpFlows: 0, udpFlows: 0, dnsQueries: 0, refused: 0 };
  readonly dns = new FakeDns();
  private readonly udpFlows = new Map<string, UdpFlow>();
  private readonly tcpStreams = new Set<WispTcpStream>();
  private readonly udpIdleMs: number;
  private readonly isLocal: (address: string) => boolean;
  private disposed = false;

  constructor(private readonly options: RelayNatOptions) {
    this.udpIdleMs = options.udpIdleMs ?? 60_000;
    const local = options.localNetwork;
    if (local) {
      const mask = parseIpv4(local.netmask);
      const network = (parseIpv4(local.address) & mask) >>> 0;
      this.isLocal = (address) => ((parseIpv4(address) & mask) >>> 0) === network;
    } else {
      this.isLocal = () => false;
    }
    options.stack.onAcceptAny = (connection) => this.onTcp(connection);
    options.stack.onDatagramAny = (datagram) => this.onDatagram(datagram);
  }

  /** Ends every relayed flow (the stack stays; the caller disposes it). */
  dispose(): void {
    this.disposed = true;
    this.options.stack.onAcceptAny = undefined;
    this.options.stack.onDatagramAny = undefined;
    for (const stream of this.tcpStreams) stream.close(WispCloseReason.voluntary);
    this.tcpStreams.clear();
    for (const flow of this.udpFlows.values()) this.endUdpFlow(flow);
    this.udpFlows.clear();
  }

  /**
   * Where a flow to `address` goes: the name behind a fake address, the address itself otherwise.
   * A fake address the resolver never gave out (or forgot), or one on the virtual LAN, goes nowhere.
   */
  private destination(address: string): string | undefined {
    if (this.isLocal(address)) return undefined;
    if (!isFakeAddress(address)) return address;
    return this.dns.nameFor(address);
  }

  private onTcp(connection: TcpConnection): void {
    const relay = this.options.relay();
    const host = this.destination(connection.local.address);
    if (this.disposed || !relay || host === undefined) {
      this.stats.refused++;
      connection.abort();
      return;
    }
    this.stats.tcpFlows++;
    const stream = relay.openTcp(host, connection.local.port);
    this.tcpStreams.add(stream);
    // Guest → relay: ends quietly at the guest's FIN (Wisp has no half-close; the answer may still come).
    // Relay → guest: lwIP takes bytes as the guest's window allows; the relay's end becomes our FIN.
    // Any error on either side resets the guest's connection and closes the stream.
    const fail = () => {
      connection.abort();
      stream.close(WispCloseReason.networkError);
    };
    connection.readable.pipeTo(stream.writable).catch(fail);
    stream.readable.pipeTo(connection.writable).catch(fail);
    void connection.closed
      .catch(() => {})
      .then(() => {
        stream.close(WispCloseReason.voluntary);
        this.tcpStreams.delete(stream);
      });
    void stream.closed.then(() => this.tcpStreams.delete(stream));
  }

  private onDatagram(datagram: UdpDatagram): void {
    const { source, destination } = datagram;
    if (destination.address === this.options.dnsAddress && destination.port === DNS_PORT) {
      this.stats.dnsQueries++;
      const answer = this.dns.answer(datagram.data);
      if (answer) this.options.stack.sendDatagram({ source: destination, destination: source, data: answer });
      return;
    }
    const key = `${source.address}:${source.port}>${destination.address}:${destination.port}`;
    let flow = this.udpFlows.get(key);
    if (!flow) {
      const opened = this.openUdpFlow(key, source, destination);
      if (!opened) {
        this.stats.refused++;
        return;
      }
      flow = opened;
    }
    this.touch(key, flow);
    flow.stream.send(datagram.data);
  }

  private openUdpFlow(key: string, guest: Endpoint, destination: Endpoint): UdpFlow | undefined {
    const relay = this.options.relay();
    const host = this.destination(destination.address);
    if (this.disposed || !relay || host === undefined) return undefined;
    this.stats.udpFlows++;
    const stream = relay.openUdp(host, destination.port);
    const flow: UdpFlow = { stream, timer: setTimeout(() => {}, 0) };
    // Replies come from where the guest sent to, so its socket accepts them.
    stream.onDatagram = (data) => {
      this.touch(key, flow);
      this.options.stack.sendDatagram({ source: destination, destination: guest, data: data.slice() });
    };
    void stream.closed.then(() => {
      if (this.udpFlows.get(key) !== flow) return;
      clearTimeout(flow.timer);
      this.udpFlows.delete(key);
    });
    this.udpFlows.set(key, flow);
    return flow;
  }

  private touch(key: string, flow: UdpFlow): void {
    clearTimeout(flow.timer);
    flow.timer = setTimeout(() => {
      this.udpFlows.delete(key);
      this.endUdpFlow(flow);
    }, this.udpIdleMs);
  }

  private endUdpFlow(flow: UdpFlow): void {
    clearTimeout(flow.timer);
    flow.stream.close(WispCloseReason.voluntary);
  }
}
