// Frames as a guest's DHCP client sends them, a reader for the switch's DHCP replies, and a stand-in NIC (unit tests).
import { expect } from '@esm-bundle/chai';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from '../../src/net/dhcp-server.js';
import type { NicBus } from '../../src/worker/guest-network.js';
import { BROADCAST_MAC, ETHERTYPE_IPV4, buildEthernet, buildUdpPacket, checksum, formatIpv4, parseEthernet, parseIpv4Packet, parseUdp } from '../../src/net/packets.js';

export const guestMac = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/** A DHCP client message as udhcpc sends it. */
export function dhcpMessage(type: number, extra: number[] = []): Uint8Array {
  const m = new Uint8Array(240 + 3 + extra.length + 1);
  m.set([1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef]);
  m.set(guestMac, 28);
  m.set([0x63, 0x82, 0x53, 0x63], 236);
  m.set([53, 1, type, ...extra, 255], 240);
  const packet = buildUdpPacket(0, 0xffffffff, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, m);
  return buildEthernet(BROADCAST_MAC, guestMac, ETHERTYPE_IPV4, packet);
}

export function dhcpReply(frame: Uint8Array) {
  const ip = parseIpv4Packet(parseEthernet(frame)!.payload)!;
  expect(checksum(ip.packet, 0, ip.headerLength)).to.equal(0, 'IPv4 header checksum');
  const udp = parseUdp(ip.payload)!;
  expect(udp.destinationPort).to.equal(DHCP_CLIENT_PORT);
  const options = new Map<number, Uint8Array>();
  for (let i = 240; udp.payload[i] !== 255; i += 2 + udp.payload[i + 1]!) {
    options.set(udp.payload[i]!, udp.payload.subarray(i + 2, i + 2 + udp.payload[i + 1]!));
  }
  return { yiaddr: formatIpv4(new DataView(udp.payload.buffer, udp.payload.byteOffset).getUint32(16)), options };
}


/** A stand-in for v86's NIC: frames the guest sends, frames it receives. */
export function fakeNic() {
  const received: Uint8Array[] = [];
  let send: (frame: Uint8Array) => void = () => {};
  const nic: NicBus = {
    add_listener: (_event, listener) => (send = listener),
    bus: { send: (_name, frame) => received.push(frame) },
  };
  return { nic, received, guestSends: (frame: Uint8Array) => send(frame) };
}
