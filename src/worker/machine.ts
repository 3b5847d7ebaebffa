/**
 * The emulated machine and the guest contract, shared by the emulator worker and the image
 * builder (images/lib/snapshot.mjs imports this file through esbuild). A boot snapshot only
 * restores into a machine built from the same options by the same v86, so both sides must
 * build them here. Runtime code in this module must not import anything.
 */
import type { V86, V86Image, V86Options } from 'v86';

/** The v86 release we bundle (checked against node_modules/v86/package.json by a unit test). */
export const V86_VERSION = '0.5.462+g5f9a90f';

const MiB = 1024 * 1024;
const VGA_MEMORY_MIB = 2;
/** The guest's network card (Linux virtio_net; the custom kernel has it built in). */
const NIC_TYPE = 'virtio';

/** Every machine property that a saved state depends on. */
export interface MachineSpec {
  memoryMiB: number;
  acpi: boolean;
  console: 'virtio' | 'serial';
  /** Size in bytes of the IDE disk, if there is one. */
  diskSize?: number;
}

export interface MachineFiles {
  bios: V86Image;
  vgaBios: V86Image;
  /** Kernel, initrd and cmdline are needed for a cold boot only; a restored state has them in RAM. */
  kernel?: V86Image;
  initrd?: V86Image;
  cmdline?: string;
  disk?: V86Image;
}

export function machineOptions(spec: MachineSpec, files: MachineFiles, wasmPath: string): V86Options {
  return {
    wasm_path: wasmPath,
    memory_size: spec.memoryMiB * MiB,
    vga_memory_size: VGA_MEMORY_MIB * MiB,
    acpi: spec.acpi,
    bios: files.bios,
    vga_bios: files.vgaBios,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    ...(files.kernel && { bzimage: files.kernel, cmdline: files.cmdline ?? '' }),
    ...(files.initrd && { initrd: files.initrd }),
    ...(files.disk && { hda: files.disk }),
    ...(spec.console === 'virtio' && { virtio_console: { type: 'none' } }),
    // Always a NIC: the guest brings eth0 up and asks for DHCP at boot whether or not a network
    // backend is attached (the worker's virtual switch answers only when one is), so a boot snapshot
    // serves both cases. No relay_url: frames travel on the bus (net0-send / net0-receive).
    net_device: { type: NIC_TYPE },
    // An empty in-memory 9p share (mount tag host9p): upload()/download() move files through it.
    filesystem: {},
  };
}

/**
 * Tells the guest that the IDE disk has a volatile write cache (IDENTIFY words 82/85, bit 5), so
 * Linux sends FLUSH CACHE on sync/fsync — which the emulator worker makes durable (see
 * src/worker/disk/ide-flush.ts). v86 0.5.462 reports no write cache, and then Linux never flushes.
 * Call it after `emulator-loaded`, before the guest runs. The guest reads IDENTIFY while booting,
 * before the snapshot point, so the image builder applies it as well (images/lib/snapshot.mjs).
 */
export function advertiseWriteCache(emulator: unknown): void {
  const drive = (emulator as { v86?: { cpu?: { devices?: { ide?: { primary?: { master?: object } } } } } }).v86?.cpu?.devices
    ?.ide?.primary?.master;
  if (!drive) return;
  // IDEInterface objects are sealed: the method is wrapped on the prototype, once.
  const prototype = Object.getPrototypeOf(drive) as { create_identify_packet(): void };
  if (patchedIdentify.has(prototype)) return;
  patchedIdentify.add(prototype);
  const original = prototype.create_identify_packet;
  prototype.create_identify_packet = function (this: { is_atapi: boolean; data: Uint8Array }) {
    original.call(this);
    if (this.is_atapi) return;
    this.data[82 * 2]! |= 0x20; // word 82 bit 5: write cache supported
    this.data[85 * 2]! |= 0x20; // word 85 bit 5: write cache enabled
  };
}
const patchedIdentify = new WeakSet<object>();

/** Guest RAM below this address holds what v86 writes when it creates a machine: the BIOS images. */
export const FIRMWARE_END = 1 * MiB;

/**
 * Restores a saved state into a machine that was just created and has not run. v86's restore_state first
 * zeroes all guest RAM and then writes the saved (non-zero) pages: for debian's 512 MiB the zeroing was
 * ~250 ms of a return visit, and it made the browser commit every page of guest RAM. A new machine's RAM is
 * zero already, except below FIRMWARE_END (test/unit/machine.test.ts checks this for the v86 we bundle), so
 * only that part is zeroed here. Upstream fix: let restore_state skip zeroing a machine that never ran.
 */
export async function restoreFreshMachine(emulator: V86, state: ArrayBuffer): Promise<void> {
  const cpu = (emulator as unknown as { v86: { cpu: { zero_memory(start: number, length: number): void } } }).v86.cpu;
  const zeroMemory = cpu.zero_memory;
  cpu.zero_memory = (start, length) => zeroMemory.call(cpu, start, Math.max(0, Math.min(length, FIRMWARE_END - start)));
  try {
    await emulator.restore_state(state);
  } finally {
    cpu.zero_memory = zeroMemory;
  }
}

/**
 * Identity of the machine a snapshot belongs to: v86 release, machine options and the image
 * build. A snapshot whose key differs from the one computed at run time is not restored.
 */
export async function snapshotKey(imageId: string, spec: MachineSpec): Promise<string> {
  const identity = JSON.stringify({
    v86: V86_VERSION,
    imageId,
    memoryMiB: spec.memoryMiB,
    vgaMemoryMiB: VGA_MEMORY_MIB,
    acpi: spec.acpi,
    console: spec.console,
    diskSize: spec.diskSize ?? null,
    nic: NIC_TYPE,
    fileShare: '9p-memory',
  });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(identity));
  return toHex(new Uint8Array(digest));
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- The guest contract (see images/README.md) ----

/**
 * Printed by a guest shell at the start of every prompt: OSC 133;A, the "prompt start" mark of
 * the FinalTerm/iTerm2/VS Code shell-integration convention. Terminals that do not know it
 * (xterm.js by default) print nothing for it.
 */
export const PROMPT_MARK = '\x1b]133;A\x07';

/**
 * Printed by the guest's early init at its pause point, where it waits for a `go` line on the
 * console. Boot snapshots are taken there (before any disk is mounted, so a restored guest never
 * has stale disk data cached), and the answer carries what a restored guest cannot know.
 */
export const WAIT_MARK = '\x1b]7701;wait\x07';

/**
 * The virtio-console port of the guest's file agent (images/guest/linux-vm-agent; /dev/hvc1 in the guest):
 * upload()/download() requests and answers, one text line each, away from the user's terminal (port 0).
 */
export const AGENT_PORT = 1;

/** The answer to WAIT_MARK: the host's clock (Unix seconds) and 32 bytes of fresh entropy. */
export function goLine(nowMs = Date.now()): string {
  const entropy = crypto.getRandomValues(new Uint8Array(32));
  return `go ${Math.floor(nowMs / 1000)} ${toHex(entropy)}\n`;
}
