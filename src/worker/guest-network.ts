/**
 * The guest's side of the network in the emulator worker: the virtual switch between v86's NIC
 * (bus events net0-send / net0-receive) and the VM's uplink — either the packet port of a network
 * backend that the page attaches (Tailscale's wasm in its own worker; raw IP packets as ArrayBuffers)
 * or the origin's virtual LAN (network="lan", src/net/lan-network.ts). Without an uplink, or before
 * it knows the VM's address, the switch has no lease: the guest's DHCP client hears nothing and the
 * guest has no default route.
 */
import { type DhcpLease } from '../net/dhcp-server.js';
import { LAN_NETMASK, LAN_SWITCH_ADDRESS, LanNetwork } from '../net/lan-network.js';
import { type Ipv4, formatIpv4, parseIpv4 } from '../net/packets.js';
import { VirtualSwitch } from '../net/virtual-switch.js';
import type { VmError } from '../errors.js';

/** The switch's MAC (locally administered) and its address: Tailscale's reserved 100.100.100.0/24, never a node's. */
const SWITCH_MAC = new Uint8Array([0x02, 0x6c, 0x76, 0x6d, 0x00, 0x01]);
export const SWITCH_ADDRESS = '100.100.100.1';
/** MagicDNS, answered inside the Tailscale node. */
export const TAILNET_DNS = '100.100.100.100';
/** The packet port's MTU (wasm/tailscale/README.md): larger packets would be dropped there. */
export const TAILNET_MTU = 1280;
/** Short enough that a guest learns a changed address within minutes. */
const LEASE_SECONDS = 300;
/** Ethernet's: the LAN's channel carries packets of any size, and the guest's NIC sends up to this. */
const LAN_MTU = 1500;

/** The parts of v86 the network uses. */
export interface NicBus {
  add_listener(event: 'net0-send', listener: (frame: Uint8Array) => void): void;
  bus: { send(name: 'net0-receive', frame: Uint8Array): void };
}

export interface LanJoinHandlers {
  onAddress(ipv4: string): void;
  onError(error: VmError): void;
}

/** Where the guest's packets go beyond the switch: a backend's packet port, or the LAN's channel. */
type Uplink = { kind: 'port'; port: MessagePort } | { kind: 'lan'; lan: LanNetwork };

export class GuestNetwork {
  private uplink?: Uplink;
  private nic?: NicBus;
  private readonly switch = new VirtualSwitch({
    mac: SWITCH_MAC,
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (frame) => this.nic?.bus.send('net0-receive', frame),
    toBackend: (packet) => this.route(packet),
  });

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

  /** Attaches a backend's packet port, replacing (and closing) any previous uplink. */
  attach(port: MessagePort): void {
    this.detach();
    this.uplink = { kind: 'port', port };
    port.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) this.switch.fromBackend(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) this.switch.fromBackend(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
  }

  /**
   * Joins the origin's virtual LAN `name`, replacing any previous uplink. Once the LAN has given the VM
   * an address, the guest gets it by DHCP: the LAN's /16 with the switch (10.88.0.1) as its router, no
   * DNS, MTU 1500. The router is there because the guest's DHCP hook replaces the subnet's route with
   * its routes (images/guest/udhcpc-script); every address resolves to the switch's MAC either way.
   */
  joinLan(name: string, handlers: LanJoinHandlers, options?: ConstructorParameters<typeof LanNetwork>[2]): void {
    this.detach();
    const lan: LanNetwork = new LanNetwork(
      name,
      {
        onAddress: (address) => {
          if (this.uplink?.kind !== 'lan' || this.uplink.lan !== lan) return;
          this.switch.setLease(lanLease(address), LAN_SWITCH_ADDRESS);
          handlers.onAddress(formatIpv4(address));
        },
        onPacket: (packet) => this.switch.fromBackend(packet),
        onError: handlers.onError,
      },
      options,
    );
    this.uplink = { kind: 'lan', lan };
  }

  /** Detaches the backend or leaves the LAN: the lease is withdrawn, so renewals go unanswered. */
  detach(): void {
    const uplink = this.uplink;
    this.uplink = undefined;
    if (uplink?.kind === 'port') {
      uplink.port.onmessage = null;
      uplink.port.close();
    } else if (uplink?.kind === 'lan') {
      uplink.lan.close();
    }
    this.switch.setLease(undefined);
  }

  /**
   * Sets the VM's IPv4 address (its tailnet address), served to the guest over DHCP as a /32 with
   * the switch as its router, MagicDNS as its resolver and the tailnet's MTU; null withdraws it.
   * Returns false for an address that is not dotted-quad IPv4. Ignored on the LAN, which assigns its own.
   */
  setAddress(ipv4: string | null): boolean {
    let address: number | undefined;
    try {
      address = ipv4 === null ? undefined : parseIpv4(ipv4);
    } catch {
      return false;
    }
    if (this.uplink?.kind === 'lan') return true;
    const lease: DhcpLease | undefined = address === undefined ? undefined : {
      address,
      netmask: 0xffffffff,
      router: parseIpv4(SWITCH_ADDRESS),
      dns: [parseIpv4(TAILNET_DNS)],
      mtu: TAILNET_MTU,
      leaseSeconds: LEASE_SECONDS,
    };
    this.switch.setLease(lease, parseIpv4(SWITCH_ADDRESS));
    return true;
  }

  /**
   * Where an IP packet from the guest goes: the one place that decides (a host node at the switch's own
   * address would be asked first). The switch hands over a copy it no longer needs.
   */
  private route(packet: Uint8Array): void {
    const uplink = this.uplink;
    if (uplink?.kind === 'port') {
      const buffer = packet.byteOffset === 0 && packet.byteLength === packet.buffer.byteLength ? packet.buffer : packet.slice().buffer;
      uplink.port.postMessage(buffer, [buffer as ArrayBuffer]);
    } else if (uplink?.kind === 'lan') {
      uplink.lan.send(packet);
    }
  }
}

function lanLease(address: Ipv4): DhcpLease {
  return { address, netmask: LAN_NETMASK, router: LAN_SWITCH_ADDRESS, dns: [], mtu: LAN_MTU, leaseSeconds: LEASE_SECONDS };
}
