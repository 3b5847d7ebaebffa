/**
 * A DHCPv4 server for exactly one client: the guest. It hands out the one address the network
 * backend gave the VM (e.g. its tailnet IP), a default route, DNS servers and the MTU.
 */
import { type Ipv4, readIpv4, writeIpv4 } from './packets.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

const MAGIC_COOKIE = 0x63825363;
const BOOTP_FIXED = 236; // op … file, before the magic cookie

const enum MessageType {
  Discover = 1,
  Offer = 2,
  Request = 3,
  Decline = 4,
  Ack = 5,
  Nak = 6,
  Release = 7,
  Inform = 8,
}

const enum Option {
  SubnetMask = 1,
  Router = 3,
  DomainServer = 6,
  InterfaceMtu = 26,
  RequestedAddress = 50,
  LeaseTime = 51,
  MessageType = 53,
  ServerIdentifier = 54,
  End = 255,
  Pad = 0,
}

export interface DhcpLease {
  address: Ipv4;
  netmask: Ipv4;
  router: Ipv4;
  dns: Ipv4[];
  mtu: number;
  leaseSeconds: number;
}

interface DhcpRequest {
  transactionId: Uint8Array;
  flags: Uint8Array;
  clientAddress: Ipv4;
  clientMac: Uint8Array;
  type: number;
  requestedAddress?: Ipv4;
  serverIdentifier?: Ipv4;
}

/** Parses a BOOTREQUEST; undefined for anything that is not a well-formed DHCP message. */
export function parseDhcpRequest(payload: Uint8Array): DhcpRequest | undefined {
  if (payload.length < BOOTP_FIXED + 4 || payload[0] !== 1 || payload[1] !== 1 || payload[2] !== 6) return undefined;
  if (readIpv4(payload, BOOTP_FIXED) !== MAGIC_COOKIE) return undefined;
  const request: DhcpRequest = {
    transactionId: payload.slice(4, 8),
    flags: payload.slice(10, 12),
    clientAddress: readIpv4(payload, 12),
    clientMac: payload.slice(28, 34),
    type: 0,
  };
  for (let i = BOOTP_FIXED + 4; i < payload.length; ) {
    const code = payload[i]!;
    if (code === Option.End) break;
    if (code === Option.Pad) {
      i++;
      continue;
    }
    if (i + 1 >= payload.length) return undefined;
    const length = payload[i + 1]!;
    const value = payload.subarray(i + 2, i + 2 + length);
    if (value.length !== length) return undefined;
    if (code === Option.MessageType && length === 1) request.type = value[0]!;
    if (code === Option.RequestedAddress && length === 4) request.requestedAddress = readIpv4(value, 0);
    if (code === Option.ServerIdentifier && length === 4) request.serverIdentifier = readIpv4(value, 0);
    i += 2 + length;
  }
  return request.type ? request : undefined;
}

/**
 * The reply (a BOOTREPLY payload for UDP port 68) to one client message, or undefined when the
 * message needs none (RELEASE, DECLINE, a REQUEST meant for another server, garbage).
 */
export function answerDhcp(payload: Uint8Array, serverAddress: Ipv4, lease: DhcpLease | undefined): Uint8Array | undefined {
  const request = parseDhcpRequest(payload);
  if (!request || !lease) return undefined;
  switch (request.type) {
    case MessageType.Discover:
      return buildReply(request, MessageType.Offer, serverAddress, lease);
    case MessageType.Request: {
      if (request.serverIdentifier !== undefined && request.serverIdentifier !== serverAddress) return undefined;
      const wanted = request.requestedAddress ?? request.clientAddress;
      return buildReply(request, wanted === lease.address ? MessageType.Ack : MessageType.Nak, serverAddress, lease);
    }
    case MessageType.Inform:
      return buildReply(request, MessageType.Ack, serverAddress, { ...lease, address: request.clientAddress });
    default:
      return undefined;
  }
}

function buildReply(request: DhcpRequest, type: MessageType, server: Ipv4, lease: DhcpLease): Uint8Array {
  const options: [Option, number[]][] = [[Option.MessageType, [type]], [Option.ServerIdentifier, ipBytes(server)]];
  if (type !== MessageType.Nak) {
    options.push(
      [Option.SubnetMask, ipBytes(lease.netmask)],
      [Option.Router, ipBytes(lease.router)],
      [Option.InterfaceMtu, [lease.mtu >>> 8, lease.mtu & 255]],
    );
    if (lease.dns.length > 0) options.push([Option.DomainServer, lease.dns.flatMap(ipBytes)]);
    if (type !== MessageType.Ack || request.type !== MessageType.Inform) {
      const s = lease.leaseSeconds;
      options.push([Option.LeaseTime, [s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255]]);
    }
  }
  const optionBytes = options.reduce((n, [, value]) => n + 2 + value.length, 1);
  const reply = new Uint8Array(BOOTP_FIXED + 4 + optionBytes);
  reply.set([2, 1, 6, 0]); // BOOTREPLY, Ethernet, 6-byte addresses, 0 hops
  reply.set(request.transactionId, 4);
  reply.set(request.flags, 10);
  if (type !== MessageType.Nak) writeIpv4(reply, 16, lease.address); // yiaddr
  writeIpv4(reply, 20, server); // siaddr
  reply.set(request.clientMac, 28);
  writeIpv4(reply, BOOTP_FIXED, MAGIC_COOKIE);
  let i = BOOTP_FIXED + 4;
  for (const [code, value] of options) {
    reply[i++] = code;
    reply[i++] = value.length;
    reply.set(value, i);
    i += value.length;
  }
  reply[i] = Option.End;
  return reply;
}

function ipBytes(ip: Ipv4): number[] {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255];
}
