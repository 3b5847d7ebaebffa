/**
 * The one message protocol between the page (VmClient) and the emulator worker.
 *
 * Every message that crosses the worker boundary is declared here, so both sides are
 * type-checked against the same definitions. Keep this module free of DOM and of v86.
 */

/** Lifecycle of a VM as the element exposes it. */
export type VmState = 'idle' | 'loading' | 'booting' | 'ready' | 'stopped' | 'error';

/** What is being waited for while a VM starts; `loaded`/`total` are bytes (or 0/0 when unknown). */
export type ProgressPhase = 'network' | 'manifest' | 'bios' | 'vga-bios' | 'snapshot' | 'kernel' | 'initrd' | 'disk' | 'boot';

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
  | 'disk-range-unsupported' // the disk's server ignores HTTP Range (200 with the whole body) and there are no chunk files
  | 'disk-changed' // the disk image was replaced on the server while the VM was reading it (If-Range)
  | 'disk-corrupt' // the server sent bytes that cannot be the manifest's image (wrong range or length)
  | 'disk-locked' // the disk's overlay is in use by another tab or window (one writer per overlay)
  | 'disk-write-failed' // IndexedDB refused the disk's writes (not for lack of space); the VM keeps running
  | 'overlay-mismatch' // the saved overlay was made for another image; reset() discards it
  | 'storage-full' // the storage quota is exhausted: recent writes stay in memory only; the VM keeps running
  | 'no-disk' // a disk operation on an image without a disk, or with no VM running
  | 'storage-unavailable' // IndexedDB cannot be opened, so the disk cannot persist (use persist="none")
  | 'memory-too-small' // the requested memory cannot hold the initrd (v86 loads it at 64 MiB)
  | 'emulator-failed' // v86 could not be created or crashed
  | 'worker-failed' // the worker script failed to load or threw outside a VM operation
  | 'boot-timeout' // no shell prompt within the boot timeout
  // Networking (network="tailscale"); the VM keeps running after these:
  | 'auth-failed' // the control server rejected the auth key (invalid, expired, used up)
  | 'control-unreachable' // the control server cannot be reached (network error, or /key did not answer 200)
  | 'control-error' // the control server refused the login for another reason
  | 'exit-node-failed' // the exit node named in `exit-node` is not in the tailnet or cannot be used
  | 'network-failed' // the network's wasm or worker could not be loaded or crashed
  | 'lan-full' // network="lan": every address of the LAN's subnet is held by another VM
  // network="relay" (the VM keeps running):
  | 'relay-url-invalid' // `relay-url` is missing or not a ws:/wss: URL
  | 'relay-unreachable' // the Wisp relay cannot be reached, refused the WebSocket, does not speak Wisp, or was lost
  // upload() / download():
  | 'path-invalid' // the guest path is not absolute, or contains a newline or NUL
  | 'path-not-found' // download: no such file; upload: the destination's directory does not exist
  | 'path-is-directory' // the guest path names a directory, not a file
  | 'file-too-large' // the file is larger than MAX_TRANSFER_BYTES
  | 'vm-not-ready' // no VM, or one that has not reached its shell prompt yet
  | 'transfer-unavailable' // the guest has no file agent (an image built before file transfer) or no 9p share
  | 'transfer-failed' // the guest could not read or write the file (no space, not a regular file, …)
  // connect() / fetch() into the guest:
  | 'port-invalid' // not a TCP port number (1–65535)
  | 'guest-unreachable' // the guest has no address on its virtual LAN (yet): its DHCP client has not configured eth0
  | 'connection-refused' // nothing listens on that port in the guest
  | 'connection-timeout' // the guest did not answer in time
  | 'connection-failed' // the connection broke (reset, out of memory in the host node) or could not be made
  | 'http-invalid'; // fetch(): the guest's answer is not an HTTP/1.x response

/**
 * The largest file upload() and download() move (128 MiB). v86's 9p share keeps a file in one buffer in
 * the emulator worker, next to the guest's RAM (512 MiB for `debian`), and a download is held twice for a
 * moment (the share's buffer and the Blob made from it): 128 MiB bounds that at +256 MiB.
 */
export const MAX_TRANSFER_BYTES = 128 * 1024 * 1024;

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
  /** Name of the disk's overlay in IndexedDB; undefined = derived from the image; "none" = throw-away writes. */
  persist?: string;
  /** Discard the overlay before booting (the element's `reset()`). */
  resetDisk?: boolean;
}

/** What the disk keeps in the browser's storage (bytes). */
export interface DiskUsage {
  /** The overlay's name, or null for a throw-away disk. */
  overlay: string | null;
  /** Bytes the guest has written (the overlay), committed or pending. */
  overlayBytes: number;
  /** Bytes of the base image cached in IndexedDB. */
  cacheBytes: number;
  /** The origin's usage and quota, from navigator.storage.estimate() (0 when unknown). */
  usage: number;
  quota: number;
}

/** Page → worker. */
export type ToWorker =
  | { type: 'start'; options: StartOptions }
  | { type: 'input'; data: Uint8Array }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'ping'; id: number }
  /** Requests about the disk; answered by a message with the same `type` and `id`, or `request-failed`. */
  | { type: 'export-disk'; id: number }
  | { type: 'disk-usage'; id: number }
  /**
   * Connects the guest's NIC to a network backend: a port carrying raw IP packets (one ArrayBuffer
   * per message, both ways; wasm/tailscale/README.md). Replaces any earlier port. Transfer the port.
   */
  | { type: 'network-attach'; port: MessagePort }
  /**
   * Joins the virtual LAN `name` of this origin (network="lan"), replacing any attached backend. The
   * worker picks the VM's address itself and answers with `lan-address` carrying the same `id`.
   */
  | { type: 'network-lan'; name: string; id: number }
  /** Disconnects the backend or leaves the LAN; the guest's lease is withdrawn. */
  | { type: 'network-detach' }
  /** The VM's address on the backend's network (served to the guest by DHCP); null: none (yet). */
  | { type: 'network-address'; ipv4: string | null }
  /**
   * network="relay": the worker loads lwIP and carries the guest's flows over the Wisp relay at `relayUrl`
   * (ws: or wss:, checked by the page). Replaces any backend; `network-detach` ends it.
   */
  | { type: 'relay-start'; id: number; relayUrl: string }
  /** File transfer (answered like the disk requests). `guestPath` is absolute; the page has checked it. */
  | { type: 'upload'; id: number; file: Blob; guestPath: string }
  | { type: 'download'; id: number; guestPath: string }
  /**
   * Opens a TCP connection from the host node to `port` in the guest; its bytes travel over `channel`
   * (src/net/port-stream.ts). Answered like the disk requests once the connection is established.
   */
  | { type: 'tcp-connect'; id: number; port: number; channel: MessagePort };

/** Worker → page. */
export type FromWorker =
  /** `note` explains a detour, e.g. why a boot snapshot was not used. */
  | { type: 'progress'; phase: ProgressPhase; loaded: number; total: number; note?: string }
  | { type: 'state'; state: Extract<VmState, 'loading' | 'booting' | 'ready'> }
  /** Bytes the guest wrote to its console(s), in order; ownership of the buffer is transferred. */
  | { type: 'output'; data: Uint8Array }
  /** `recoverable`: the VM keeps running (e.g. storage-full); otherwise the VM has stopped. */
  | { type: 'error'; error: VmErrorInfo; recoverable?: boolean }
  | { type: 'pong'; id: number }
  /** The VM's address on the LAN it joined with `network-lan` message `id` (also served to the guest by DHCP). */
  | { type: 'lan-address'; id: number; ipv4: string }
  /** The merged disk image (base + overlay); Chromium keeps large Blobs on disk, not in memory. */
  | { type: 'export-disk'; id: number; blob: Blob }
  | { type: 'disk-usage'; id: number; usage: DiskUsage }
  /** The upload is in place (and synced to the guest's disk). */
  | { type: 'upload'; id: number }
  | { type: 'download'; id: number; blob: Blob }
  | { type: 'tcp-connect'; id: number }
  | { type: 'request-failed'; id: number; error: VmErrorInfo }
  /** network="relay" (`id` is the relay-start's): its state, and the guest's address once the relay answered. */
  | { type: 'relay-state'; id: number; state: RelayState }
  | { type: 'relay-address'; id: number; ipv4: string };

/** `loading`: lwIP's wasm; `starting`: connecting to the relay (again, after losing it); `stopped`: given up. */
export type RelayState = 'loading' | 'starting' | 'running' | 'stopped';

// ---- The network worker (src/net/tailscale.worker.ts): one Tailscale node per VM ----

/** What the page configures a Tailscale node with. `authKey` is held in memory only and never logged. */
export interface TailscaleConfig {
  controlURL: string;
  authKey?: string;
  hostname?: string;
  exitNode?: string;
  /** Plain-HTTP DERP (test tailnets only): set when the control URL is http://. */
  insecureDERPOverHTTP: boolean;
}

/** Tailscale's backend states (ipn.State), as its wasm reports them. */
export type TailscaleState = 'NoState' | 'NeedsLogin' | 'NeedsMachineAuth' | 'Stopped' | 'Starting' | 'Running' | 'InUseOtherUser';

export interface TailscaleNetMap {
  self: { name: string; addresses: string[] };
  peers: { name: string; addresses: string[]; online?: boolean; exitNodeOption?: boolean }[];
}

/** Page → network worker. */
export type ToNetworkWorker =
  /** `port`: the node's packet port (raw IP packets), whose other end the emulator worker holds. Transfer it. */
  | { type: 'start'; wasmUrl: string; wasmExecUrl: string; config: TailscaleConfig; port: MessagePort }
  | { type: 'login' }
  | { type: 'logout' }
  | { type: 'close' };

/** Network worker → page. */
export type FromNetworkWorker =
  | { type: 'progress'; loaded: number; total: number }
  | { type: 'state'; state: TailscaleState }
  | { type: 'netmap'; netmap: TailscaleNetMap }
  | { type: 'login-url'; url: string }
  | { type: 'error'; error: VmErrorInfo }
  | { type: 'logged-out' }
  | { type: 'closed' };
