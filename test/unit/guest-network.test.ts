import { expect } from '@esm-bundle/chai';
import { ETHERTYPE_IPV4, buildEthernet, buildUdpPacket, parseEthernet, parseIpv4 } from '../../src/net/packets.js';
import { GuestNetwork } from '../../src/worker/guest-network.js';
import { dhcpMessage, dhcpReply, fakeNic, guestMac } from './net-frames.js';

const nextMessage = (port: MessagePort) =>
  new Promise<ArrayBuffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message on the port')), 2000);
    port.onmessage = (event) => {
      clearTimeout(timer);
      resolve(event.data as ArrayBuffer);
    };
  });

describe('GuestNetwork (the emulator worker’s NIC ⇄ packet port)', () => {
  it('serves a host-only lease without a backend, none while a backend has no address, then the backend’s', () => {
    const network = new GuestNetwork();
    const { nic, received, guestSends } = fakeNic();
    network.connectNic(nic);
    guestSends(dhcpMessage(1));
    const hostOnly = dhcpReply(received[0]!);
    expect(hostOnly.yiaddr).to.equal('100.100.100.2');
    expect(Array.from(hostOnly.options.get(1)!)).to.deep.equal([255, 255, 255, 0]);
    expect(Array.from(hostOnly.options.get(3)!)).to.deep.equal([100, 100, 100, 1], 'the host node is the router');
    expect(hostOnly.options.has(6)).to.equal(false, 'no DNS on a host-only link');
    network.attach(new MessageChannel().port1);
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(1, 'no answer while the backend has no address');
    expect(network.setAddress('100.64.0.9')).to.equal(true);
    guestSends(dhcpMessage(1));
    const offer = dhcpReply(received[1]!);
    expect(offer.yiaddr).to.equal('100.64.0.9');
    expect(Array.from(offer.options.get(1)!)).to.deep.equal([255, 255, 255, 255]);
    expect(Array.from(offer.options.get(3)!)).to.deep.equal([100, 100, 100, 1]);
    expect(Array.from(offer.options.get(6)!)).to.deep.equal([100, 100, 100, 100]);
    expect(Array.from(offer.options.get(26)!)).to.deep.equal([0x05, 0x00]);
    network.detach();
    guestSends(dhcpMessage(1));
    expect(dhcpReply(received[2]!).yiaddr).to.equal('100.100.100.2', 'host-only again after detach');
  });

  it('rejects an address that is not IPv4', () => {
    const network = new GuestNetwork();
    expect(network.setAddress('fd7a::1')).to.equal(false);
    expect(network.setAddress('100.64.0.256')).to.equal(false);
    expect(network.setAddress(null)).to.equal(true);
  });

  it('relays IP packets between the guest NIC and the port, both ways', async () => {
    const network = new GuestNetwork();
    const { nic, received, guestSends } = fakeNic();
    network.connectNic(nic);
    const { port1, port2 } = new MessageChannel();
    network.attach(port1);
    network.setAddress('100.64.0.9');
    guestSends(dhcpMessage(1)); // the switch learns the guest's MAC
    const packet = buildUdpPacket(parseIpv4('100.64.0.9'), parseIpv4('100.64.0.1'), 40000, 7, new Uint8Array([1, 2, 3]));
    const outbound = nextMessage(port2);
    guestSends(buildEthernet(parseEthernet(received[0]!)!.source, guestMac, ETHERTYPE_IPV4, packet));
    expect(Array.from(new Uint8Array(await outbound))).to.deep.equal(Array.from(packet));
    const reply = buildUdpPacket(parseIpv4('100.64.0.1'), parseIpv4('100.64.0.9'), 7, 40000, new Uint8Array([4, 5]));
    const expected = Array.from(reply);
    port2.postMessage(reply.buffer, [reply.buffer]);
    for (let i = 0; i < 50 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const frame = parseEthernet(received[1]!)!;
    expect(Array.from(frame.destination)).to.deep.equal(Array.from(guestMac));
    expect(frame.type).to.equal(ETHERTYPE_IPV4);
    expect(Array.from(frame.payload)).to.deep.equal(expected);
  });
});
