/**
 * network="lan": VMs in tabs of one origin share a virtual LAN. It runs in the emulator worker:
 * every VM on LAN `name` posts its guest's IP packets on one BroadcastChannel and keeps only those
 * addressed to its own guest. Addresses come from LAN_SUBNET; a VM owns its address by holding the
 * Web Lock `linux-vm-lan:<name>:<address>` until it leaves, so two VMs never share one, and a closed
 * or crashed tab (or a terminated worker) frees its address without any goodbye.
 *
 * Messages on the channel are untrusted input (any script of the origin may post): nothing in here
 * may throw on them.
 */
import { VmError } from '../errors.js';
import { holdLock } from '../web-lock.js';
import { type Ipv4, formatIpv4, parseIpv4, parseIpv4Packet } from './packets.js';

/** The LAN's private subnet, 10.88.0.0/16: 10.88.0.1 is each tab's switch, guests get .0.2 – .255.254. */
export const LAN_SUBNET = parseIpv4('10.88.0.0');
export const LAN_NETMASK = parseIpv4('255.255.0.0');
export const LAN_SWITCH_ADDRESS = parseIpv4('10.88.0.1');
const FIRST_HOST = LAN_SWITCH_ADDRESS + 1;
const LAST_HOST = (LAN_SUBNET | ~LAN_NETMASK) - 1; // below the subnet's broadcast address
/** Nothing to gain from a larger packet: the guest's NIC sends at most 1500-byte IP packets. */
const MAX_PACKET = 9000;
export const DEFAULT_LAN = 'default';

/** The BroadcastChannel of LAN `name` (also the prefix of its address locks). */
export const lanChannelName = (name: string) => `linux-vm-lan:${name}`;
/** The Web Lock its holder owns `address` on LAN `name` with. */
export const lanLockName = (name: string, address: Ipv4) => `${lanChannelName(name)}:${formatIpv4(address)}`;

export const inLanSubnet = (address: Ipv4) => ((address & LAN_NETMASK) >>> 0) === LAN_SUBNET;

export interface LanHandlers {
  /** The VM's address, once its lock is held (called at most once). */
  onAddress(address: Ipv4): void;
  /** An IPv4 packet from another VM on the LAN for this VM's address. */
  onPacket(packet: Uint8Array): void;
  onError(error: VmError): void;
}

export interface LanOptions {
  /** Where the search for a free address starts (tests pin it); default: random. */
  firstCandidate?: Ipv4;
  locks?: LockManager;
}

export class LanNetwork {
  readonly name: string;
  private readonly channel: BroadcastChannel;
  private address?: Ipv4;
  private releaseLock?: () => void;
  private closed = false;

  constructor(name: string, private readonly handlers: LanHandlers, options: LanOptions = {}) {
    this.name = name || DEFAULT_LAN;
    this.channel = new BroadcastChannel(lanChannelName(this.name));
    this.channel.onmessage = (event: MessageEvent<unknown>) => this.onMessage(event.data);
    const locks = options.locks ?? navigator.locks;
    const first = options.firstCandidate ?? FIRST_HOST + Math.floor(Math.random() * (LAST_HOST - FIRST_HOST + 1));
    void this.claimAddress(locks, first).catch((error: unknown) => {
      if (!this.closed) this.handlers.onError(new VmError('network-failed', `The LAN "${this.name}" could not assign an address: ${String(error)}`));
    });
  }

  /** The VM's address on the LAN; undefined until it holds one. */
  get ipv4(): Ipv4 | undefined {
    return this.address;
  }

  /** Posts an IPv4 packet from the guest to the LAN (dropped until the VM has its address). */
  send(packet: Uint8Array): void {
    if (this.closed || this.address === undefined) return;
    const ip = parseIpv4Packet(packet);
    // Only the guest's own packets to other VMs' addresses (the switch's address is no VM's).
    if (!ip || ip.source !== this.address || ip.destination < FIRST_HOST || ip.destination > LAST_HOST) return;
    this.channel.postMessage(ip.packet.slice().buffer);
  }

  /** Leaves the LAN: the channel closes and the address is free for others. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.onmessage = null;
    this.channel.close();
    this.releaseLock?.();
  }

  /** Holds the first free address from `first` on (wrapping around the subnet). */
  private async claimAddress(locks: LockManager, first: Ipv4): Promise<void> {
    const count = LAST_HOST - FIRST_HOST + 1;
    for (let i = 0; i < count && !this.closed; i++) {
      const candidate = FIRST_HOST + ((first - FIRST_HOST + i + count) % count);
      const release = await holdLock(locks, lanLockName(this.name, candidate));
      if (!release) continue;
      if (this.closed) return release();
      this.address = candidate;
      this.releaseLock = release;
      this.handlers.onAddress(candidate);
      return;
    }
    if (!this.closed) this.handlers.onError(new VmError('lan-full', `Every address of the LAN "${this.name}" (${formatIpv4(LAN_SUBNET)}/16) is in use`));
  }

  private onMessage(data: unknown): void {
    if (this.closed || this.address === undefined || !(data instanceof ArrayBuffer) || data.byteLength > MAX_PACKET) return;
    const ip = parseIpv4Packet(new Uint8Array(data));
    if (!ip || ip.destination !== this.address || !inLanSubnet(ip.source) || ip.source === this.address) return;
    this.handlers.onPacket(ip.packet);
  }
}
