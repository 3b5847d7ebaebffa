import { expect } from '@esm-bundle/chai';
import { type DhcpLease } from '../../src/net/dhcp-server.js';
import {
  BROADCAST_MAC,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  buildArp,
  buildEthernet,
  buildUdpPacket,
  formatIpv4,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseIpv4Packet,
} from '../../src/net/packets.js';
import { VirtualSwitch } from '../../src/net/virtual-switch.js';
import { dhcpMessage, dhcpReply, guestMac } from './net-frames.js';

const switchMac = new Uint8Array([0x02, 0x6c, 0x76, 0x6d, 0x00, 0x01]);
const gateway = parseIpv4('100.100.100.1');
const lease: DhcpLease = {
  address: parseIpv4('100.101.102.103'),
  netmask: parseIpv4('255.192.0.0'),
  router: gateway,
  dns: [parseIpv4('100.100.100.100')],
  mtu: 1280,
  leaseSeconds: 600,
};

function makeSwitch() {
  const toGuest: Uint8Array[] = [];
  const toBackend: Uint8Array[] = [];
  const sw = new VirtualSwitch({ mac: switchMac, address: gateway, toGuest: (f) => toGuest.push(f), toBackend: (p) => toBackend.push(p) });
  return { sw, toGuest, toBackend };
}

describe('VirtualSwitch', () => {
  it('answers ARP for any address but the guest’s own', () => {
    const { sw, toGuest } = makeSwitch();
    sw.setLease(lease);
    const ask = (targetIp: number) =>
      sw.fromGuest(buildEthernet(BROADCAST_MAC, guestMac, ETHERTYPE_ARP, buildArp({ operation: 1, senderMac: guestMac, senderIp: lease.address, targetMac: new Uint8Array(6), targetIp })));
    ask(gateway);
    ask(parseIpv4('100.64.0.7'));
    ask(lease.address);
    expect(toGuest).to.have.length(2);
    const reply = parseArp(parseEthernet(toGuest[1]!)!.payload)!;
    expect(reply.operation).to.equal(2);
    expect(formatIpv4(reply.senderIp)).to.equal('100.64.0.7');
    expect(Array.from(reply.senderMac)).to.deep.equal(Array.from(switchMac));
    expect(Array.from(parseEthernet(toGuest[1]!)!.destination)).to.deep.equal(Array.from(guestMac));
  });

  it('serves the lease over DHCP: offer, then ack with router, DNS and MTU', () => {
    const { sw, toGuest } = makeSwitch();
    sw.setLease(lease);
    sw.fromGuest(dhcpMessage(1));
    const offer = dhcpReply(toGuest[0]!);
    expect(offer.yiaddr).to.equal('100.101.102.103');
    expect(Array.from(offer.options.get(53)!)).to.deep.equal([2]);
    sw.fromGuest(dhcpMessage(3, [50, 4, 100, 101, 102, 103, 54, 4, 100, 100, 100, 1]));
    const ack = dhcpReply(toGuest[1]!);
    expect(Array.from(ack.options.get(53)!)).to.deep.equal([5]);
    expect(Array.from(ack.options.get(3)!)).to.deep.equal([100, 100, 100, 1]);
    expect(Array.from(ack.options.get(6)!)).to.deep.equal([100, 100, 100, 100]);
    expect(Array.from(ack.options.get(26)!)).to.deep.equal([0x05, 0x00]);
    expect(Array.from(ack.options.get(1)!)).to.deep.equal([255, 192, 0, 0]);
  });

  it('refuses a request for another address, and stays silent without a lease', () => {
    const { sw, toGuest } = makeSwitch();
    sw.fromGuest(dhcpMessage(1));
    expect(toGuest).to.have.length(0);
    sw.setLease(lease);
    sw.fromGuest(dhcpMessage(3, [50, 4, 10, 0, 2, 15]));
    expect(Array.from(dhcpReply(toGuest[0]!).options.get(53)!)).to.deep.equal([6]); // NAK
  });

  it('passes unicast IP to the backend and backend packets to the guest', () => {
    const { sw, toGuest, toBackend } = makeSwitch();
    sw.setLease(lease);
    const packet = buildUdpPacket(lease.address, parseIpv4('100.64.0.7'), 40000, 53, new Uint8Array([1, 2, 3]));
    const padded = new Uint8Array(packet.length + 10); // Ethernet padding must not reach the backend
    padded.set(packet);
    sw.fromGuest(buildEthernet(switchMac, guestMac, ETHERTYPE_IPV4, padded));
    sw.fromGuest(buildEthernet(BROADCAST_MAC, guestMac, ETHERTYPE_IPV4, packet)); // broadcast: stays local
    expect(toBackend).to.have.length(1);
    expect(Array.from(toBackend[0]!)).to.deep.equal(Array.from(packet));
    sw.fromBackend(packet);
    const frame = parseEthernet(toGuest.at(-1)!)!;
    expect(Array.from(frame.destination)).to.deep.equal(Array.from(guestMac));
    expect(frame.type).to.equal(ETHERTYPE_IPV4);
  });

  it('survives random, truncated and oversized frames without throwing', () => {
    const { sw, toBackend } = makeSwitch();
    sw.setLease(lease);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
    const valid = [dhcpMessage(1), dhcpMessage(3, [50, 4, 100, 101, 102, 103]),
      buildEthernet(switchMac, guestMac, ETHERTYPE_IPV4, buildUdpPacket(lease.address, gateway, 1, 2, new Uint8Array(40)))];
    for (let i = 0; i < 20000; i++) {
      let frame: Uint8Array;
      if (i % 3 === 0) {
        frame = Uint8Array.from({ length: random() * 8 }, random); // random bytes, 0–2 KiB
      } else {
        const base = valid[i % valid.length]!;
        frame = base.slice(0, random() % (base.length + 1)); // truncated
        if (i % 5 === 0) frame = Uint8Array.from(base, (b) => (random() < 8 ? random() : b)); // bit rot
      }
      if (frame.length >= 12 && i % 2 === 0) frame.set(guestMac, 6); // a unicast source gets past the first check
      sw.fromGuest(frame);
      sw.fromBackend(frame);
    }
    sw.fromGuest(new Uint8Array(70000));
    sw.fromBackend(new Uint8Array(70000));
    expect(sw.counters.framesFromGuest).to.equal(20001);
    expect(sw.counters.dropped).to.be.greaterThan(0);
    for (const p of toBackend) expect(parseIpv4Packet(p), 'only well-formed IPv4 reaches the backend').to.exist;
  });
});
