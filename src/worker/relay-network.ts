/**
 * network="relay" in the emulator worker: the guest's flows leave through a Wisp relay (a WebSocket
 * server that opens TCP/UDP connections for us). lwIP, in catch-all mode at the guest's router
 * address, terminates them (src/net/relay/relay-nat.ts). The lwIP wasm is fetched only here, when
 * the page switches the relay on.
 *
 * The virtual LAN (like QEMU's user networking): guest 10.0.2.15/24, router (lwIP) 10.0.2.2,
 * DNS 10.0.2.3 (fake-IP resolver, src/net/relay/fake-dns.ts), MTU 1500. The guest gets its lease
 * once the relay has answered; if the relay goes away later, open flows are reset, the guest keeps
 * its address, and the worker reconnects with backoff (new flows are refused meanwhile).
 */
import { VmError } from '../errors.js';
import type { DhcpLease } from '../net/dhcp-server.js';
import type { LwipStack } from '../net/lwip/contract.js';
import { parseIpv4 } from '../net/packets.js';
import { RelayNat } from '../net/relay/relay-nat.js';
import { WispConnection, type WispError } from '../net/relay/wisp-client.js';
import type { FromWorker, RelayState } from '../protocol.js';
import type { GuestNetwork } from './guest-network.js';

export const RELAY_GUEST_ADDRESS = '10.0.2.15';
export const RELAY_ROUTER_ADDRESS = '10.0.2.2';
export const RELAY_DNS_ADDRESS = '10.0.2.3';
const RELAY_NETMASK = '255.255.255.0';
const RELAY_MTU = 1500;
/** Short enough that a guest learns a withdrawn lease within minutes. */
const LEASE_SECONDS = 300;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30_000;

export interface RelayNetworkConfig {
  /** Echoed in every message, so the page can drop those of a relay it has since replaced. */
  id: number;
  relayUrl: string;
}

export class RelayNetwork {
  private stack?: LwipStack;
  private nat?: RelayNat;
  private relay?: WispConnection;
  private disposed = false;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private reconnectDelay = RECONNECT_MIN_MS;

  constructor(
    private readonly config: RelayNetworkConfig,
    private readonly network: GuestNetwork,
    private readonly post: (message: FromWorker) => void,
  ) {}

  /** Loads lwIP, connects to the relay, then leases the guest its address. Failures are reported, never thrown. */
  async start(): Promise<void> {
    this.setState('loading');
    let toGuest: ((packet: Uint8Array) => void) | undefined;
    let stack: LwipStack;
    try {
      // Loaded (module and wasm) only now that the relay is switched on.
      const { loadLwipStack, lwipWasmUrl } = await import('../net/lwip/lwip-stack.js');
      stack = await loadLwipStack(lwipWasmUrl, {
        address: RELAY_ROUTER_ADDRESS,
        netmask: RELAY_NETMASK,
        mtu: RELAY_MTU,
        catchAll: true,
        output: (packet: Uint8Array) => toGuest?.(packet),
      });
      if (this.disposed) return stack.dispose();
      this.stack = stack;
      this.nat = new RelayNat({
        stack,
        relay: () => (this.relay?.isOpen ? this.relay : undefined),
        dnsAddress: RELAY_DNS_ADDRESS,
        localNetwork: { address: RELAY_ROUTER_ADDRESS, netmask: RELAY_NETMASK },
      });
    } catch (error) {
      if (this.disposed) return;
      this.setState('stopped');
      return this.report(new VmError('network-failed', `The lwIP network stack could not be loaded: ${String(error)}`));
    }
    this.setState('starting');
    if (!(await this.connect())) {
      if (!this.disposed) this.setState('stopped');
      return;
    }
    toGuest = this.network.attachLocal((packet) => stack.input(packet), relayLease());
    this.post({ type: 'relay-address', id: this.config.id, ipv4: RELAY_GUEST_ADDRESS });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.reconnectTimer);
    this.nat?.dispose();
    this.relay?.close();
    this.stack?.dispose();
    this.network.detach();
  }

  /** One attempt to reach the relay; returns false when it fails (reported as `relay-unreachable` if `report`). */
  private async connect(report = true): Promise<boolean> {
    try {
      const relay = await WispConnection.connect(this.config.relayUrl);
      if (this.disposed) {
        relay.close();
        return false;
      }
      this.relay = relay;
      this.reconnectDelay = RECONNECT_MIN_MS;
      relay.onLost = (error) => this.onLost(error);
      this.setState('running');
      return true;
    } catch (error) {
      if (report && !this.disposed) this.report(new VmError('relay-unreachable', `The relay at ${this.config.relayUrl} cannot be reached: ${(error as WispError).message}`));
      return false;
    }
  }

  private onLost(error: WispError): void {
    if (this.disposed) return;
    this.report(new VmError('relay-unreachable', `Lost the relay at ${this.config.relayUrl}: ${error.message}; reconnecting`));
    this.setState('starting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.reconnectTimer = setTimeout(async () => {
      if (this.disposed || (await this.connect(false)) || this.disposed) return;
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
      this.scheduleReconnect();
    }, this.reconnectDelay);
  }

  private setState(state: RelayState): void {
    this.post({ type: 'relay-state', id: this.config.id, state });
  }

  private report(error: VmError): void {
    this.post({ type: 'error', error: error.toJSON(), recoverable: true });
  }
}

function relayLease(): DhcpLease {
  return {
    address: parseIpv4(RELAY_GUEST_ADDRESS),
    netmask: parseIpv4(RELAY_NETMASK),
    router: parseIpv4(RELAY_ROUTER_ADDRESS),
    dns: [parseIpv4(RELAY_DNS_ADDRESS)],
    mtu: RELAY_MTU,
    leaseSeconds: LEASE_SECONDS,
  };
}
