/**
 * The VM's virtual LAN: the guest NIC on one side, a network backend on the other (Tailscale's
 * packet port, later the lwIP host node). The switch speaks layer 2 to the guest — it answers
 * ARP for every address but the guest's own (so the guest sends everything to it) and serves
 * DHCP — and passes bare IP packets to and from the backend. It lives in the emulator worker.
 *
 * Frames from the guest are untrusted input: nothing in here may throw on them.
 */
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, answerDhcp, type DhcpLease } from './dhcp-server.js';
import {
  BROADCAST_MAC,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  IP_PROTOCOL_UDP,
  type Ipv4,
  buildArp,
  buildEthernet,
  buildUdpPacket,
  parseArp,
  parseEthernet,
  parseIpv4Packet,
  parseUdp,
  sameBytes,
} from './packets.js';

/** Largest Ethernet payload the guest may send or receive (the NIC's MTU may be lower). */
const MAX_PAYLOAD = 9000;
const BROADCAST_IP: Ipv4 = 0xffffffff;

export interface SwitchCounters {
  framesFromGuest: number;
  framesToGuest: number;
  packetsToBackend: number;
  dropped: number;
}

export interface VirtualSwitchOptions {
  /** The switch's own MAC: the next hop for every packet the guest sends. */
  mac: Uint8Array;
  /** The switch's initial IPv4 address (the guest's router and DHCP server); setLease() may change it. */
  address: Ipv4;
  /** Called when the switch has acknowledged the guest's DHCP request for `address` (the guest now uses it). */
  onGuestBound?(address: Ipv4): void;
  /** Writes an Ethernet frame to the guest's NIC. */
  toGuest(frame: Uint8Array): void;
  /** Hands an IP packet from the guest to the network backend. */
  toBackend(packet: Uint8Array): void;
}

export class VirtualSwitch {
  readonly counters: SwitchCounters = { framesFromGuest: 0, framesToGuest: 0, packetsToBackend: 0, dropped: 0 };
  /** What DHCP hands out; undefined until the backend knows the guest's address. */
  private lease?: DhcpLease;
  /** Learned from the guest's frames: where to send frames for it. */
  private guestMac?: Uint8Array;

  /** The switch's own address on the current network (its DHCP server identifier). */
  private address: Ipv4;

  constructor(private readonly options: VirtualSwitchOptions) {
    this.address = options.address;
  }

  /**
   * Sets (or changes) the guest's address and network configuration served over DHCP, and the switch's
   * own address on that network (default: the one it has).
   */
  setLease(lease: DhcpLease | undefined, switchAddress = this.address): void {
    this.lease = lease;
    this.address = switchAddress;
  }

  /** A frame the guest's NIC sent. */
  fromGuest(frame: Uint8Array): void {
    this.counters.framesFromGuest++;
    const ethernet = parseEthernet(frame);
    if (!ethernet || ethernet.payload.length > MAX_PAYLOAD || ethernet.source[0]! & 1) return this.drop();
    this.guestMac = ethernet.source.slice();
    switch (ethernet.type) {
      case ETHERTYPE_ARP:
        return this.onArp(ethernet.payload);
      case ETHERTYPE_IPV4:
        return this.onIpv4(ethernet.payload, ethernet.destination);
      case ETHERTYPE_IPV6:
        return this.drop(); // no IPv6 on the virtual LAN yet
      default:
        return this.drop();
    }
  }

  /** An IP packet from the backend for the guest. */
  fromBackend(packet: Uint8Array): void {
    if (!this.guestMac || packet.length === 0 || packet.length > MAX_PAYLOAD) return this.drop();
    const version = packet[0]! >>> 4;
    if (version !== 4 && version !== 6) return this.drop();
    this.sendToGuest(this.guestMac, version === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, packet);
  }

  private onArp(payload: Uint8Array): void {
    const arp = parseArp(payload);
    // Answer for any address except the guest's own (a guest probing its address must hear nothing).
    if (!arp || arp.operation !== 1 || arp.targetIp === arp.senderIp || arp.targetIp === this.lease?.address) return this.drop();
    const reply = buildArp({
      operation: 2,
      senderMac: this.options.mac,
      senderIp: arp.targetIp,
      targetMac: arp.senderMac,
      targetIp: arp.senderIp,
    });
    this.sendToGuest(arp.senderMac, ETHERTYPE_ARP, reply);
  }

  private onIpv4(payload: Uint8Array, destinationMac: Uint8Array): void {
    const ip = parseIpv4Packet(payload);
    if (!ip) return this.drop();
    // DHCP to any address is ours: a renewal goes to the server of the guest's current lease, which may be
    // the switch's address on a network the VM has left since.
    if (ip.protocol === IP_PROTOCOL_UDP) {
      const udp = parseUdp(ip.payload);
      if (udp?.destinationPort === DHCP_SERVER_PORT) return this.onDhcp(udp.payload);
    }
    // Only unicast to us travels on: broadcast and multicast stay on the LAN.
    if (!sameBytes(destinationMac, this.options.mac) || ip.destination === BROADCAST_IP || ip.destination >>> 28 === 14) {
      return this.drop();
    }
    this.counters.packetsToBackend++;
    this.options.toBackend(ip.packet.slice());
  }

  private onDhcp(request: Uint8Array): void {
    const reply = answerDhcp(request, this.address, this.lease);
    if (!reply || !this.guestMac) return this.drop();
    const packet = buildUdpPacket(this.address, BROADCAST_IP, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, reply);
    this.sendToGuest(BROADCAST_MAC, ETHERTYPE_IPV4, packet);
    if (this.lease && isDhcpAck(reply)) this.options.onGuestBound?.(this.lease.address);
  }

  private sendToGuest(destination: Uint8Array, type: number, payload: Uint8Array): void {
    this.counters.framesToGuest++;
    this.options.toGuest(buildEthernet(destination, this.options.mac, type, payload));
  }

  private drop(): void {
    this.counters.dropped++;
  }
}

/** Our replies start their options with the message type (src/net/dhcp-server.ts): 53, length 1, 5 = ACK. */
function isDhcpAck(reply: Uint8Array): boolean {
  return reply[240] === 53 && reply[241] === 1 && reply[242] === 5;
}
