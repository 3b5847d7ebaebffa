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

/** Every event `<linux-vm>` fires, by name. */
export interface LinuxVmEventMap {
  progress: CustomEvent<VmProgressDetail>;
  ready: CustomEvent<Record<string, never>>;
  error: CustomEvent<VmErrorDetail>;
  stopped: CustomEvent<Record<string, never>>;
}
