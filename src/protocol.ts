/**
 * The one message protocol between the page (VmClient) and the emulator worker.
 *
 * Every message that crosses the worker boundary is declared here, so both sides are
 * type-checked against the same definitions. Keep this module free of DOM and of v86.
 */

/** Lifecycle of a VM as the element exposes it. */
export type VmState = 'idle' | 'loading' | 'booting' | 'ready' | 'stopped' | 'error';

/** What is being waited for while a VM starts; `loaded`/`total` are bytes (or 0/0 when unknown). */
export type ProgressPhase = 'manifest' | 'bios' | 'vga-bios' | 'snapshot' | 'kernel' | 'initrd' | 'disk' | 'boot';

/** Guest files a manifest names; each has its own not-found error code. */
export type AssetKind = 'bios' | 'vga-bios' | 'kernel' | 'initrd' | 'disk';

/**
 * Machine-readable error codes. Each is specific enough for a page to react to without
 * parsing the message.
 */
export type VmErrorCode =
  | 'no-image' // start() without an image URL
  | 'manifest-not-found' // HTTP 404/410 for the manifest
  | 'manifest-fetch-failed' // network error or other HTTP status
  | 'manifest-invalid' // not JSON, or JSON that does not describe an image
  | `${AssetKind}-not-found`
  | `${AssetKind}-fetch-failed`
  | 'disk-size-mismatch' // the server's disk is not the size the manifest declares
  | 'memory-too-small' // the requested memory cannot hold the initrd (v86 loads it at 64 MiB)
  | 'emulator-failed' // v86 could not be created or crashed
  | 'worker-failed' // the worker script failed to load or threw outside a VM operation
  | 'boot-timeout'; // no shell prompt within the boot timeout

export interface VmErrorInfo {
  code: VmErrorCode;
  message: string;
}

/** The options the page starts a VM with. URLs are absolute (resolved by the page). */
export interface StartOptions {
  manifestUrl: string;
  /** Guest RAM in MiB; undefined means the manifest's value. */
  memoryMiB?: number;
  /** Initial terminal size, so the guest's first prompt already has the right geometry. */
  cols: number;
  rows: number;
  /** Seconds to wait for the first shell prompt before failing with `boot-timeout`. */
  bootTimeoutSeconds: number;
  /** URL of v86's wasm module (resolved by the page's bundle). */
  v86WasmUrl: string;
}

/** Page → worker. */
export type ToWorker =
  | { type: 'start'; options: StartOptions }
  | { type: 'input'; data: Uint8Array }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'ping'; id: number };

/** Worker → page. */
export type FromWorker =
  /** `note` explains a detour, e.g. why a boot snapshot was not used. */
  | { type: 'progress'; phase: ProgressPhase; loaded: number; total: number; note?: string }
  | { type: 'state'; state: Extract<VmState, 'loading' | 'booting' | 'ready'> }
  /** Bytes the guest wrote to its console(s), in order; ownership of the buffer is transferred. */
  | { type: 'output'; data: Uint8Array }
  | { type: 'error'; error: VmErrorInfo }
  | { type: 'pong'; id: number };
