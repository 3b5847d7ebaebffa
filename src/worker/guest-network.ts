/**
 * The guest's side of the network in the emulator worker: the virtual switch between v86's NIC
 * (bus events net0-send / net0-receive) and the packet port of a network backend that the page
 * attaches (Tailscale's wasm in its own worker; raw IP packets as ArrayBuffers). Without a port,
 * or before the backend knows the VM's address, the switch has no lease: the guest's DHCP client
 * hears nothing and the guest has no default route.
 */
import { type DhcpLease } from '../net/dhcp-server.js';
import { parseIpv4 } from '../net/packets.js';
import { VirtualSwitch } from '../net/virtual-switch.js';

/** The switch's MAC (locally administered) and its address: Tailscale's reserved 100.100.100.0/24, never a node's. */
const SWITCH_MAC = new Uint8Array([0x02, 0x6c, 0x76, 0x6d, 0x00, 0x01]);
export const SWITCH_ADDRESS = '100.100.100.1';
/** MagicDNS, answered inside the Tailscale node. */
export const TAILNET_DNS = '100.100.100.100';
/** The packet port's MTU (wasm/tailscale/README.md): larger packets would be dropped there. */
export const TAILNET_MTU = 1280;
/** Short enough that a guest learns a changed address within minutes. */
const LEASE_SECONDS = 300;

/** The parts of v86 the network uses. */
export interface NicBus {
  add_listener(event: 'net0-send', listener: (frame: Uint8Array) => void): void;
  bus: { send(name: 'net0-receive', frame: Uint8Array): void };
}

export class GuestNetwork {
  private port?: MessagePort;
  /** A backend in this worker (the relay's lwIP stack): packets go to it directly, without a port. */
  private local?: (packet: Uint8Array) => void;
  private nic?: NicBus;
  private readonly switch = new VirtualSwitch({
    mac: SWITCH_MAC,
    address: parseIpv4(SWITCH_ADDRESS),
    toGuest: (frame) => this.nic?.bus.send('net0-receive', frame),
    toBackend: (packet) => {
      if (this.local) return this.local(packet);
      // The switch hands over a copy it no longer needs: transfer it.
      const buffer = packet.byteOffset === 0 && packet.byteLength === packet.buffer.byteLength ? packet.buffer : packet.slice().buffer;
      this.port?.postMessage(buffer, [buffer as ArrayBuffer]);
    },
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

  /** Attaches a backend's packet port, replacing (and closing) any previous one. */
  attach(port: MessagePort): void {
    this.detach();
    this.port = port;
    port.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) this.switch.fromBackend(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) this.switch.fromBackend(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
  }

  /**
   * Attaches a backend that runs in this worker, replacing any other, and serves `lease` to the guest.
   * Returns the function through which the backend sends packets to the guest (inert once detached).
   */
  attachLocal(toBackend: (packet: Uint8Array) => void, lease: DhcpLease): (packet: Uint8Array) => void {
    this.detach();
    this.local = toBackend;
    this.switch.setLease(lease);
    return (packet) => {
      if (this.local === toBackend) this.switch.fromBackend(packet);
    };
  }

  /** Detaches the backend: the lease is withdrawn, so renewals go unanswered. */
  detach(): void {
    this.local = undefined;
    if (this.port) {
      this.port.onmessage = null;
      this.port.close();
      this.port = undefined;
    }
    this.switch.setLease(undefined);
  }

  /**
   * Sets the VM's IPv4 address (its tailnet address), served to the guest over DHCP as a /32 with
   * the switch as its router, MagicDNS as its resolver and the tailnet's MTU; null withdraws it.
   * Returns false for an address that is not dotted-quad IPv4.
   */
  setAddress(ipv4: string | null): boolean {
    if (ipv4 === null) {
      this.switch.setLease(undefined);
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
    this.switch.setLease(lease);
    return true;
  }
}
