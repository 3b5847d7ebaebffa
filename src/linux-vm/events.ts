import type { NetworkAddress, NetworkState } from '../net/tailscale-network.js';
import type { ProgressPhase, VmErrorCode } from '../protocol.js';

export interface VmProgressDetail {
  phase: ProgressPhase;
  /** Bytes loaded so far in this phase (0 for phases that are not downloads). */
  loaded: number;
  /** Bytes expected in this phase, or 0 when unknown. */
  total: number;
  /** Why the VM took the path it did, e.g. "cold boot: the snapshot is corrupt (SHA-256 mismatch)". */
  note?: string;
}

export interface VmErrorDetail {
  code: VmErrorCode;
  message: string;
}

export interface NetworkStateDetail {
  state: NetworkState | 'none';
}

export interface LoginRequiredDetail {
  /** Open it for the user (e.g. in a new tab) to add the VM to their tailnet. */
  url: string;
}

/**
 * The VM's addresses on the tailnet or the LAN (the guest gets `ipv4` by DHCP); `hostname` is its MagicDNS name
 * (empty on a LAN).
 */
export type IpAssignedDetail = NetworkAddress;

/** Every event `<linux-vm>` fires, by name. */
export interface LinuxVmEventMap {
  progress: CustomEvent<VmProgressDetail>;
  ready: CustomEvent<Record<string, never>>;
  error: CustomEvent<VmErrorDetail>;
  stopped: CustomEvent<Record<string, never>>;
  'network-state': CustomEvent<NetworkStateDetail>;
  'login-required': CustomEvent<LoginRequiredDetail>;
  'ip-assigned': CustomEvent<IpAssignedDetail>;
}
