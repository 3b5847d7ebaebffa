/**
 * Just enough Ethernet, ARP, IPv4 and UDP to run the VM's virtual LAN. Readers never trust a
 * length field: every parse checks bounds and returns undefined for anything malformed.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IP_PROTOCOL_UDP = 17;

export const ETHERNET_HEADER = 14;
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** An IPv4 address as an unsigned 32-bit number (a.b.c.d → a·2²⁴ + …). */
export type Ipv4 = number;

export function parseIpv4(text: string): Ipv4 {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${text}`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIpv4(ip: Ipv4): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function readIpv4(bytes: Uint8Array, offset: number): Ipv4 {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

export function writeIpv4(bytes: Uint8Array, offset: number, ip: Ipv4): void {
  bytes[offset] = ip >>> 24;
  bytes[offset + 1] = (ip >>> 16) & 255;
  bytes[offset + 2] = (ip >>> 8) & 255;
  bytes[offset + 3] = ip & 255;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** RFC 1071 one's-complement sum, folded; `initial` continues a sum (e.g. a pseudo-header). */
export function checksum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if ((end - start) % 2 === 1) sum += bytes[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface EthernetFrame {
  destination: Uint8Array;
  source: Uint8Array;
  type: number;
  payload: Uint8Array;
}

export function parseEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (frame.length < ETHERNET_HEADER) return undefined;
  return {
    destination: frame.subarray(0, 6),
    source: frame.subarray(6, 12),
    type: (frame[12]! << 8) | frame[13]!,
    payload: frame.subarray(ETHERNET_HEADER),
  };
}

export function buildEthernet(destination: Uint8Array, source: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(ETHERNET_HEADER + payload.length);
  frame.set(destination, 0);
  frame.set(source, 6);
  frame[12] = type >>> 8;
  frame[13] = type & 255;
  frame.set(payload, ETHERNET_HEADER);
  return frame;
}

export interface ArpPacket {
  operation: 1 | 2; // request | reply
  senderMac: Uint8Array;
  senderIp: Ipv4;
  targetMac: Uint8Array;
  targetIp: Ipv4;
}

/** Ethernet/IPv4 ARP only (hardware type 1, protocol 0x0800, lengths 6 and 4). */
export function parseArp(payload: Uint8Array): ArpPacket | undefined {
  if (payload.length < 28) return undefined;
  const hardware = (payload[0]! << 8) | payload[1]!;
  const protocol = (payload[2]! << 8) | payload[3]!;
  const operation = (payload[6]! << 8) | payload[7]!;
  if (hardware !== 1 || protocol !== ETHERTYPE_IPV4 || payload[4] !== 6 || payload[5] !== 4) return undefined;
  if (operation !== 1 && operation !== 2) return undefined;
  return {
    operation,
    senderMac: payload.slice(8, 14),
    senderIp: readIpv4(payload, 14),
    targetMac: payload.slice(18, 24),
    targetIp: readIpv4(payload, 24),
  };
}

export function buildArp(arp: ArpPacket): Uint8Array {
  const p = new Uint8Array(28);
  p.set([0, 1, 0x08, 0x00, 6, 4, 0, arp.operation]);
  p.set(arp.senderMac, 8);
  writeIpv4(p, 14, arp.senderIp);
  p.set(arp.targetMac, 18);
  writeIpv4(p, 24, arp.targetIp);
  return p;
}

export interface Ipv4Packet {
  protocol: number;
  source: Ipv4;
  destination: Ipv4;
  headerLength: number;
  /** The whole packet, trimmed to its total-length field (Ethernet may pad). */
  packet: Uint8Array;
  payload: Uint8Array;
}

export function parseIpv4Packet(bytes: Uint8Array): Ipv4Packet | undefined {
  if (bytes.length < 20 || bytes[0]! >>> 4 !== 4) return undefined;
  const headerLength = (bytes[0]! & 0x0f) * 4;
  const totalLength = (bytes[2]! << 8) | bytes[3]!;
  if (headerLength < 20 || totalLength < headerLength || totalLength > bytes.length) return undefined;
  const packet = bytes.subarray(0, totalLength);
  return {
    protocol: bytes[9]!,
    source: readIpv4(bytes, 12),
    destination: readIpv4(bytes, 16),
    headerLength,
    packet,
    payload: packet.subarray(headerLength),
  };
}

export interface UdpDatagram {
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

export function parseUdp(segment: Uint8Array): UdpDatagram | undefined {
  if (segment.length < 8) return undefined;
  const length = (segment[4]! << 8) | segment[5]!;
  if (length < 8 || length > segment.length) return undefined;
  return {
    sourcePort: (segment[0]! << 8) | segment[1]!,
    destinationPort: (segment[2]! << 8) | segment[3]!,
    payload: segment.subarray(8, length),
  };
}

/** An IPv4 packet carrying one UDP datagram, both checksums filled in. */
export function buildUdpPacket(source: Ipv4, destination: Ipv4, sourcePort: number, destinationPort: number, payload: Uint8Array): Uint8Array {
  const udpLength = 8 + payload.length;
  const packet = new Uint8Array(20 + udpLength);
  packet.set([0x45, 0, (packet.length >>> 8) & 255, packet.length & 255, 0, 0, 0x40, 0, 64, IP_PROTOCOL_UDP]);
  writeIpv4(packet, 12, source);
  writeIpv4(packet, 16, destination);
  const headerSum = checksum(packet, 0, 20);
  packet[10] = headerSum >>> 8;
  packet[11] = headerSum & 255;
  const udp = packet.subarray(20);
  udp.set([sourcePort >>> 8, sourcePort & 255, destinationPort >>> 8, destinationPort & 255, udpLength >>> 8, udpLength & 255]);
  udp.set(payload, 8);
  // The UDP checksum covers a pseudo-header: addresses, protocol and length.
  const pseudo = (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff) + IP_PROTOCOL_UDP + udpLength;
  const udpSum = checksum(udp, 0, udp.length, pseudo) || 0xffff;
  udp[6] = udpSum >>> 8;
  udp[7] = udpSum & 255;
  return packet;
}
