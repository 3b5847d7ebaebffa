/**
 * The guest's side of the network in the emulator worker: the virtual switch between v86's NIC
 * (bus events net0-send / net0-receive), the host node (lwIP at the switch's own address: the page's
 * connections into the guest) and the packet port of a network backend that the page attaches
 * (Tailscale's wasm in its own worker; raw IP packets as ArrayBuffers). Without a backend the guest
 * gets a host-only lease (it reaches the host node and nothing else); with one, it gets no lease until
 * the backend knows the VM's address, so it has no default route before then.
 */
import { type DhcpLease } from '../net/dhcp-server.js';
import type { TcpConnection } from '../net/lwip/contract.js';
import { parseIpv4, readIpv4 } from '../net/packets.js';
import { VirtualSwitch } from '../net/virtual-switch.js';
import { VmError } from '../errors.js';
import { HostNode } from './host-node.js';

/** The switch's MAC (locally administered) and its address: Tailscale's reserved 100.100.100.0/24, never a node's. */
const SWITCH_MAC = new Uint8Array([0x02, 0x6c, 0x76, 0x6d, 0x00, 0x01]);
export const SWITCH_ADDRESS = '100.100.100.1';
/** MagicDNS, answered inside the Tailscale node. */
export const TAILNET_DNS = '100.100.100.100';
/** The packet port's MTU (wasm/tailscale/README.md): larger packets would be dropped there. */
export const TAILNET_MTU = 1280;
/** Short enough that a guest learns a changed address within minutes. */
const LEASE_SECONDS = 300;
/**
 * Without a backend the guest still gets a host-only link: this address, with the switch as its router
 * so that it reaches the host node (the switch's address). The guest's DHCP hook flushes the subnet's
 * route and keeps only the router's, so the router must be named; packets for anywhere else are dropped.
 */
export const HOST_ONLY_ADDRESS = '100.100.100.2';
const HOST_ONLY_LEASE: DhcpLease = {
  address: parseIpv4(HOST_ONLY_ADDRESS),
  netmask: parseIpv4('255.255.255.0'),
  router: parseIpv4(SWITCH_ADDRESS),
  dns: [],
  mtu: TAILNET_MTU,
  leaseSeconds: LEASE_SECONDS,
};

/** The parts of v86 the network uses. */
export interface NicBus {
  add_listener(event: 'net0-send', listener: (frame: Uint8Array) => void): void;
  bus: { send(name: 'net0-receive', frame: Uint8Array): void };
}

export class GuestNetwork {
  private port?: MessagePort;
  private nic?: NicBus;
  private lease?: DhcpLease = HOST_ONLY_LEASE;
  private readonly switch = new VirtualSwitch({
    mac: SWITCH_MAC,
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (frame) => this.nic?.bus.send('net0-receive', frame),
    toBackend: (packet) => this.route(packet),
  });
  /** Packets from it are handed to the switch in a task of their own: lwIP must not re-enter v86's NIC callback. */
  private readonly hostNode = new HostNode({
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (packet) => queueMicrotask(() => this.switch.fromBackend(packet)),
  });

  constructor() {
    this.switch.setLease(this.lease);
  }

  get counters() {
    return this.switch.counters;
  }

  /** Connects the guest's NIC (once v86 has loaded; again after a snapshot fallback). */
  connectNic(nic: NicBus): void {
    this.nic = nic;
    nic.add_listener('net0-send', (frame) => {
      if (this.nic === nic) this.switch.fromGuest(frame);
    });
  }

  /**
   * Opens a TCP connection from the host node to `port` in the guest (lwIP's wasm is loaded on first use).
   * Rejects with a VmError: guest-unreachable (no address yet), connection-refused/-timeout/-failed, network-failed.
   */
  connectToGuest(wasmUrl: string, port: number): Promise<TcpConnection> {
    if (!this.lease || !this.nic) return Promise.reject(new VmError('guest-unreachable', 'The guest has no network address yet'));
    return this.hostNode.connect(wasmUrl, this.lease.address, port);
  }

  /** Where a packet from the guest goes: the host node's address stays here; the rest goes to the backend. */
  private route(packet: Uint8Array): void {
    if (readIpv4(packet, 16) === this.hostNode.address) return this.hostNode.input(packet);
    if (!this.port) return;
    // The switch hands over a copy it no longer needs: transfer it.
    const buffer = packet.byteOffset === 0 && packet.byteLength === packet.buffer.byteLength ? packet.buffer : packet.slice().buffer;
    this.port.postMessage(buffer, [buffer as ArrayBuffer]);
  }

  /** Attaches a backend's packet port, replacing (and closing) any previous one. */
  attach(port: MessagePort): void {
    this.detach();
    this.setLease(undefined); // until the backend knows the VM's address
    this.port = port;
    port.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) this.switch.fromBackend(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) this.switch.fromBackend(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
  }

  /** Detaches the backend: the guest is back on a host-only link (it learns so at its next renewal). */
  detach(): void {
    if (this.port) {
      this.port.onmessage = null;
      this.port.close();
      this.port = undefined;
    }
    this.setLease(HOST_ONLY_LEASE);
  }

  private setLease(lease: DhcpLease | undefined): void {
    this.lease = lease;
    this.switch.setLease(lease);
  }

  /**
   * Sets the VM's IPv4 address (its tailnet address), served to the guest over DHCP as a /32 with
   * the switch as its router, MagicDNS as its resolver and the tailnet's MTU; null withdraws it.
   * Returns false for an address that is not dotted-quad IPv4.
   */
  setAddress(ipv4: string | null): boolean {
    if (ipv4 === null) {
      this.setLease(undefined);
      return true;
    }
    let address: number;
    try {
      address = parseIpv4(ipv4);
    } catch {
      return false;
    }
    const lease: DhcpLease = {
      address,
      netmask: 0xffffffff,
      router: parseIpv4(SWITCH_ADDRESS),
      dns: [parseIpv4(TAILNET_DNS)],
      mtu: TAILNET_MTU,
      leaseSeconds: LEASE_SECONDS,
    };
    this.setLease(lease);
    return true;
  }
}
