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
  it('leaves the guest without a DHCP answer until a backend gives the VM an address', () => {
    const network = new GuestNetwork();
    const { nic, received, guestSends } = fakeNic();
    network.connectNic(nic);
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(0);
    network.attach(new MessageChannel().port1);
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(0);
    expect(network.setAddress('100.64.0.9')).to.equal(true);
    guestSends(dhcpMessage(1));
    const offer = dhcpReply(received[0]!);
    expect(offer.yiaddr).to.equal('100.64.0.9');
    expect(Array.from(offer.options.get(1)!)).to.deep.equal([255, 255, 255, 255]);
    expect(Array.from(offer.options.get(3)!)).to.deep.equal([100, 100, 100, 1]);
    expect(Array.from(offer.options.get(6)!)).to.deep.equal([100, 100, 100, 100]);
    expect(Array.from(offer.options.get(26)!)).to.deep.equal([0x05, 0x00]);
    network.detach();
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(1, 'no answer after detach');
  });

  it('gives a guest without a network a host-only lease once the page connects into it, and waits for it to take it', async () => {
    const network = new GuestNetwork();
    const { nic, received, guestSends } = fakeNic();
    network.connectNic(nic);
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(0, 'no lease before any connection');
    let settled = false;
    const connecting = network.connectToGuest(80).finally(() => (settled = true));
    connecting.catch(() => {}); // no guest answers: it ends in a timeout after this test
    guestSends(dhcpMessage(1));
    const offer = dhcpReply(received[0]!);
    expect(offer.yiaddr).to.equal('100.100.100.2');
    expect(Array.from(offer.options.get(1)!)).to.deep.equal([255, 255, 255, 0]);
    expect(Array.from(offer.options.get(3)!)).to.deep.equal([100, 100, 100, 1], 'the host node is the router');
    expect(offer.options.has(6)).to.equal(false, 'no DNS on a host-only link');
    expect(Array.from(offer.options.get(51)!)).to.deep.equal([0, 0, 0, 30], 'a short lease: a network switched on later takes over soon');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).to.equal(false, 'the connection waits for the guest to take its address');
    // The guest takes it (REQUEST with option 50, the requested address): the switch acknowledges.
    guestSends(dhcpMessage(3, [50, 4, 100, 100, 100, 2]));
    expect(dhcpReply(received[1]!).options.get(53)![0]).to.equal(5, 'DHCPACK');
    // Leaving a network later falls back to the host-only link, not to nothing.
    network.attach(new MessageChannel().port1);
    network.detach();
    guestSends(dhcpMessage(1));
    expect(dhcpReply(received[2]!).yiaddr).to.equal('100.100.100.2');
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
