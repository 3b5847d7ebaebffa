/**
 * The guest's side of the network in the emulator worker: the virtual switch between v86's NIC
 * (bus events net0-send / net0-receive), the host node (lwIP at 100.100.100.1: the page's connections
 * into the guest) and the VM's uplink — either the packet port of a network backend that the page
 * attaches (Tailscale's wasm in its own worker; raw IP packets as ArrayBuffers) or the origin's virtual
 * LAN (network="lan", src/net/lan-network.ts). Without an uplink the guest gets no lease — until the page
 * first connects into it: from then on a host-only lease (it reaches the host node and nothing else). With
 * an uplink it gets no lease until the uplink knows the VM's address, so it has no route before then.
 */
import { type DhcpLease } from '../net/dhcp-server.js';
import { LAN_NETMASK, LAN_SWITCH_ADDRESS, LanNetwork } from '../net/lan-network.js';
import type { TcpConnection } from '../net/lwip/contract.js';
import { type Ipv4, formatIpv4, parseIpv4, readIpv4 } from '../net/packets.js';
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
 * Without an uplink, once the page connects into the guest, the guest gets a host-only link: this address,
 * with the switch as its router so that it reaches the host node (the switch's address). The guest's DHCP
 * hook flushes the subnet's route and keeps only the router's, so the router must be named; packets for
 * anywhere else are dropped. The lease is short (busybox udhcpc's shortest: it renews after 15 s), so a
 * network switched on later replaces it within seconds: the renewal is refused and the guest asks anew.
 */
const HOST_ONLY_ADDRESS = '100.100.100.2';
const HOST_ONLY_LEASE: DhcpLease = {
  address: parseIpv4(HOST_ONLY_ADDRESS),
  netmask: parseIpv4('255.255.255.0'),
  router: parseIpv4(SWITCH_ADDRESS),
  dns: [],
  mtu: TAILNET_MTU,
  leaseSeconds: 30,
};
/** How long a connection waits for the guest to take its address (udhcpc asks every few seconds). */
const BIND_TIMEOUT_MS = 20_000;
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

/** Where the guest's packets go beyond the switch: a backend's packet port, the LAN's channel, or the relay in this worker. */
type Uplink =
  | { kind: 'port'; port: MessagePort }
  | { kind: 'lan'; lan: LanNetwork }
  | { kind: 'local'; toBackend: (packet: Uint8Array) => void };

export class GuestNetwork {
  private uplink?: Uplink;
  private nic?: NicBus;
  private readonly switch = new VirtualSwitch({
    mac: SWITCH_MAC,
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (frame) => this.nic?.bus.send('net0-receive', frame),
    toBackend: (packet) => this.route(packet),
    onGuestBound: (address) => {
      this.boundAddress = address;
      for (const wake of this.bindWaiters.splice(0)) wake();
    },
  });
  /** The guest's current lease (what DHCP serves); undefined while it should have none. */
  private lease?: DhcpLease;
  /** Set by the page's first connection into a guest without a network: from then on it has a host-only link. */
  private hostOnly = false;
  /** The address the switch last acknowledged to the guest's DHCP client. */
  private boundAddress?: Ipv4;
  private bindWaiters: (() => void)[] = [];
  /**
   * Always at the switch's Tailscale-range address, whatever the uplink: every lease has a router, so the
   * guest reaches it through its default route. Its packets reach the switch in a task of their own: lwIP
   * must not re-enter v86's NIC callback.
   */
  private readonly hostNode = new HostNode({
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (packet) => queueMicrotask(() => this.switch.fromBackend(packet)),
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

  /**
   * Opens a TCP connection from the host node to `port` in the guest (lwIP's wasm is loaded on first use).
   * Rejects with a VmError: guest-unreachable (no address yet), connection-refused/-timeout/-failed, network-failed.
   */
  async connectToGuest(port: number): Promise<TcpConnection> {
    if (!this.uplink && !this.hostOnly && this.nic) {
      this.hostOnly = true;
      this.setLease(HOST_ONLY_LEASE, parseIpv4(SWITCH_ADDRESS));
    }
    const lease = this.lease;
    if (!lease || !this.nic) throw new VmError('guest-unreachable', 'The guest has no address on its network yet');
    await this.guestBound(lease.address);
    return this.hostNode.connect(lease.address, port);
  }

  /** Resolves once the guest's DHCP client has taken `address`; rejects with guest-unreachable after a while. */
  private async guestBound(address: Ipv4): Promise<void> {
    const deadline = Date.now() + BIND_TIMEOUT_MS;
    while (this.boundAddress !== address) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new VmError('guest-unreachable', `The guest did not configure ${formatIpv4(address)} on eth0 within ${BIND_TIMEOUT_MS / 1000} s`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.bindWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Attaches a backend's packet port, replacing (and closing) any previous uplink. */
  attach(port: MessagePort): void {
    this.detach();
    this.setLease(undefined); // until the backend knows the VM's address
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
    this.setLease(undefined); // until the LAN has given the VM an address
    const lan: LanNetwork = new LanNetwork(
      name,
      {
        onAddress: (address) => {
          if (this.uplink?.kind !== 'lan' || this.uplink.lan !== lan) return;
          this.setLease(lanLease(address), LAN_SWITCH_ADDRESS);
          handlers.onAddress(formatIpv4(address));
        },
        onPacket: (packet) => this.switch.fromBackend(packet),
        onError: handlers.onError,
      },
      options,
    );
    this.uplink = { kind: 'lan', lan };
  }

  /**
   * Attaches a backend that runs in this worker (the relay's lwIP stack), replacing any other uplink, and
   * serves `lease` to the guest. Returns the function through which the backend sends packets to the guest
   * (inert once detached).
   */
  attachLocal(toBackend: (packet: Uint8Array) => void, lease: DhcpLease): (packet: Uint8Array) => void {
    this.detach();
    const uplink: Uplink = { kind: 'local', toBackend };
    this.uplink = uplink;
    this.setLease(lease, parseIpv4(SWITCH_ADDRESS));
    return (packet) => {
      if (this.uplink === uplink) this.switch.fromBackend(packet);
    };
  }

  /** Detaches the backend or leaves the LAN: the lease is withdrawn (host-only after a connection into the guest). */
  detach(): void {
    const uplink = this.uplink;
    this.uplink = undefined;
    if (uplink?.kind === 'port') {
      uplink.port.onmessage = null;
      uplink.port.close();
    } else if (uplink?.kind === 'lan') {
      uplink.lan.close();
    }
    this.setLease(this.hostOnly ? HOST_ONLY_LEASE : undefined, parseIpv4(SWITCH_ADDRESS));
  }

  private setLease(lease: DhcpLease | undefined, switchAddress?: Ipv4): void {
    this.lease = lease;
    this.switch.setLease(lease, switchAddress);
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
    this.setLease(lease, parseIpv4(SWITCH_ADDRESS));
    return true;
  }

  /**
   * Where an IP packet from the guest goes: the one place that decides. The host node's address stays
   * here; the rest goes to the uplink. The switch hands over a copy it no longer needs.
   */
  private route(packet: Uint8Array): void {
    if (readIpv4(packet, 16) === this.hostNode.address) return this.hostNode.input(packet);
    const uplink = this.uplink;
    if (uplink?.kind === 'port') {
      const buffer = packet.byteOffset === 0 && packet.byteLength === packet.buffer.byteLength ? packet.buffer : packet.slice().buffer;
      uplink.port.postMessage(buffer, [buffer as ArrayBuffer]);
    } else if (uplink?.kind === 'lan') {
      uplink.lan.send(packet);
    } else if (uplink?.kind === 'local') {
      uplink.toBackend(packet);
    }
  }
}

function lanLease(address: Ipv4): DhcpLease {
  return { address, netmask: LAN_NETMASK, router: LAN_SWITCH_ADDRESS, dns: [], mtu: LAN_MTU, leaseSeconds: LEASE_SECONDS };
}
