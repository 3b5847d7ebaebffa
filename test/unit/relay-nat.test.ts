// The relay NAT between a scripted stand-in for lwIP (the contract's TcpConnection streams and datagram hooks)
// and the real Wisp server on loopback (test/relay/servers.mjs): what reaches the relay, what comes back.
// The whole path with real lwIP and a real guest is test/relay.test.ts.
import { expect } from '@esm-bundle/chai';
import type { Endpoint, LwipStack, TcpConnection, UdpDatagram } from '../../src/net/lwip/contract.js';
import { RelayNat } from '../../src/net/relay/relay-nat.js';
import { WispConnection } from '../../src/net/relay/wisp-client.js';
import { type RelayInfo, relayInfo } from '../relay/relay-info.js';

const GUEST: Endpoint = { address: '10.0.2.15', port: 40000 };
const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** The parts of LwipStack the NAT uses, with guest-side handles for each accepted connection. */
class ScriptedStack {
  onAcceptAny?: (connection: TcpConnection) => void;
  onDatagramAny?: (datagram: UdpDatagram) => void;
  readonly sent: UdpDatagram[] = [];
  sendDatagram(datagram: UdpDatagram): void {
    this.sent.push(datagram);
  }

  /** A guest connection to `destination`: returns what the guest writes into and reads from. */
  connect(destination: Endpoint) {
    const toNat = new TransformStream<Uint8Array, Uint8Array>();
    const fromNat = new TransformStream<Uint8Array, Uint8Array>();
    let aborted = false;
    let settle!: () => void;
    const closed = new Promise<void>((resolve) => (settle = resolve));
    const connection: TcpConnection = {
      local: destination,
      remote: GUEST,
      readable: toNat.readable,
      writable: fromNat.writable,
      abort: () => {
        aborted = true;
        settle();
      },
      closed,
    };
    this.onAcceptAny!(connection);
    return { writer: toNat.writable.getWriter(), readable: fromNat.readable, isAborted: () => aborted, close: settle };
  }
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<string> {
  let text = '';
  for await (const chunk of readable as unknown as AsyncIterable<Uint8Array>) text += decode(chunk);
  return text;
}

function dnsQuery(name: string): Uint8Array {
  const labels = name.split('.').flatMap((l) => [l.length, ...encode(l)]);
  return Uint8Array.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
}

describe('RelayNat', () => {
  let info: RelayInfo;
  let relay: WispConnection;
  let stack: ScriptedStack;
  let nat: RelayNat;

  before(async () => {
    info = await relayInfo();
    relay = await WispConnection.connect(info.wispURL);
  });
  beforeEach(() => {
    stack = new ScriptedStack();
    nat = new RelayNat({
      stack: stack as unknown as LwipStack,
      relay: () => relay,
      dnsAddress: '10.0.2.3',
      localNetwork: { address: '10.0.2.2', netmask: '255.255.255.0' },
      udpIdleMs: 300,
    });
  });
  afterEach(() => nat.dispose());
  after(() => relay?.close());

  /** Asks the NAT's resolver for `name` as the guest would; returns the address in the answer. */
  function resolve(name: string): string {
    const query = dnsQuery(name);
    stack.onDatagramAny!({ source: GUEST, destination: { address: '10.0.2.3', port: 53 }, data: query });
    const answer = stack.sent.pop()!;
    expect(answer.source).to.deep.equal({ address: '10.0.2.3', port: 53 });
    expect(answer.destination).to.deep.equal(GUEST);
    return Array.from(answer.data.subarray(query.length + 12, query.length + 16)).join('.');
  }

  it('answers DNS at the resolver address and relays a TCP connection to the fake address by name', async () => {
    const address = resolve(info.webName);
    expect(address).to.match(/^198\.1[89]\./);
    const guest = stack.connect({ address, port: info.httpPort });
    await guest.writer.write(encode(`GET /page HTTP/1.0\r\nHost: ${info.webName}\r\n\r\n`));
    const answer = await readAll(guest.readable);
    expect(answer).to.match(/^HTTP\/1\.1 200/);
    expect(answer.endsWith(info.page)).to.equal(true);
    expect(nat.stats).to.include({ tcpFlows: 1, dnsQueries: 1 });
  });

  it('keeps the stream open after the guest’s FIN (no half-close in Wisp) so the answer still arrives', async () => {
    const guest = stack.connect({ address: info.hostIP, port: info.httpPort });
    await guest.writer.write(encode('GET /page HTTP/1.0\r\n\r\n'));
    await guest.writer.close();
    expect(await readAll(guest.readable)).to.include(info.page);
  });

  it('resets the guest’s connection when the relay cannot connect, and refuses unknown fake addresses', async () => {
    const refused = stack.connect({ address: info.hostIP, port: 9 });
    const error = await readAll(refused.readable).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(Error);
    await new Promise((r) => setTimeout(r, 0)); // the pipe's rejection handler runs after the reader saw the error
    expect(refused.isAborted()).to.equal(true);
    const unknown = stack.connect({ address: '198.18.200.1', port: 80 });
    expect(unknown.isAborted()).to.equal(true);
    expect(nat.stats.refused).to.equal(1);
  });

  it('relays UDP per flow, answers from the original destination, and closes idle flows', async () => {
    const destination = { address: info.hostIP, port: info.udpEchoPort };
    stack.onDatagramAny!({ source: GUEST, destination, data: encode('ping') });
    stack.onDatagramAny!({ source: GUEST, destination, data: encode('pong') });
    for (let i = 0; i < 100 && stack.sent.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stack.sent.map((d) => decode(d.data)).sort()).to.deep.equal(['echo:ping', 'echo:pong']);
    expect(stack.sent[0]!.source).to.deep.equal(destination);
    expect(stack.sent[0]!.destination).to.deep.equal(GUEST);
    expect(nat.stats.udpFlows).to.equal(1);
    await new Promise((r) => setTimeout(r, 500)); // past udpIdleMs
    stack.onDatagramAny!({ source: GUEST, destination, data: encode('again') });
    expect(nat.stats.udpFlows).to.equal(2, 'a new flow after the idle one was closed');
  });

  it('never relays flows to the virtual LAN (the resolver over TCP, the router, other 10.0.2.x)', () => {
    for (const address of ['10.0.2.3', '10.0.2.2', '10.0.2.99']) {
      expect(stack.connect({ address, port: 53 }).isAborted(), address).to.equal(true);
    }
    stack.onDatagramAny!({ source: GUEST, destination: { address: '10.0.2.99', port: 53 }, data: encode('x') });
    expect(nat.stats).to.include({ refused: 4, tcpFlows: 0, udpFlows: 0 });
  });

  it('refuses new flows while there is no relay', () => {
    const offline = new RelayNat({ stack: stack as unknown as LwipStack, relay: () => undefined, dnsAddress: '10.0.2.3' });
    const guest = stack.connect({ address: info.hostIP, port: info.httpPort });
    expect(guest.isAborted()).to.equal(true);
    stack.onDatagramAny!({ source: GUEST, destination: { address: info.hostIP, port: 7 }, data: encode('x') });
    expect(offline.stats.refused).to.equal(2);
    offline.dispose();
  });
});
