import { V86, type V86Image } from 'v86';
import { VmError } from '../errors.js';
import { ManifestError, parseManifest, type ImageManifest } from '../manifest.js';
import type { AssetKind, DiskUsage, FromWorker, ProgressPhase, StartOptions } from '../protocol.js';
import { hookFlushCache } from './disk/ide-flush.js';
import { openDisk, type OpenedDisk } from './disk/open-disk.js';
import { fetchAsset } from './fetch-asset.js';
import { GuestNetwork, type NicBus } from './guest-network.js';
import { FileTransfer, type Fs9p } from './file-transfer.js';
import {
  AGENT_PORT,
  PROMPT_MARK,
  WAIT_MARK,
  advertiseWriteCache,
  goLine,
  machineOptions,
  restoreFreshMachine,
  type MachineFiles,
  type MachineSpec,
} from './machine.js';
import { PromptWatcher } from './prompt-watcher.js';
import { loadSnapshot } from './snapshot.js';

const MiB = 1024 * 1024;
/** v86 copies the initrd to this guest-physical address (see DESIGN.md). */
const INITRD_ADDRESS = 64 * MiB;
/** Console output is batched into one message per this many ms, not one per byte. */
const OUTPUT_FLUSH_MS = 8;
/** Linux's virtio-console receive buffers are one page; larger writes would be cut. */
const INPUT_CHUNK = 4096;
/** Disk download progress is reported at most this often. */
const DISK_PROGRESS_MS = 250;

/** The parts of v86's runtime we touch that its typings do not declare. */
interface V86Internals {
  bus: { send(name: string, value: unknown): void };
  v86?: { cpu?: { devices?: { virtio_console?: { virtio?: { queues?: VirtQueue[] } } } } };
  /** The in-memory 9p filesystem behind the `filesystem` option. */
  fs9p?: Fs9p;
}
interface VirtQueue {
  has_request(): boolean;
}
type Emulator = V86 & V86Internals;

type Post = (message: FromWorker, transfer?: Transferable[]) => void;

/**
 * One guest: loads its image, restores its boot snapshot or cold-boots it with v86, and
 * bridges its console to the page. Lives in the emulator worker; talks only through `post`.
 */
export class GuestMachine {
  private emulator?: Emulator;
  private manifest?: ImageManifest;
  private disk?: OpenedDisk;
  private diskProgressTimer?: ReturnType<typeof setTimeout>;
  private diskFetched = 0;
  private ready = false;
  private bootTimer?: ReturnType<typeof setTimeout>;
  private outputChunks: Uint8Array[] = [];
  private outputTimer?: ReturnType<typeof setTimeout>;
  /** Keystrokes waiting for the guest (before its first prompt, or while its input queue is full). */
  private pendingInput: Uint8Array[] = [];
  private inputTimer?: ReturnType<typeof setTimeout>;
  private readonly promptWatcher = new PromptWatcher(PROMPT_MARK);
  /** Set while a cold-booting guest has not yet reached its pause point. */
  private waitWatcher?: PromptWatcher;
  private size: { cols: number; rows: number };
  private files?: FileTransfer;

  constructor(
    private readonly options: StartOptions,
    private readonly post: Post,
    /** The NIC's switch; attached to a backend (or not) by the page, before or after the start. */
    private readonly network: GuestNetwork,
  ) {
    this.size = { cols: options.cols, rows: options.rows };
  }

  async start(): Promise<void> {
    try {
      await this.boot();
    } catch (error) {
      this.fail(error);
    }
  }

  input(data: Uint8Array): void {
    this.pendingInput.push(data);
    if (this.ready) this.drainInput();
  }

  resize(cols: number, rows: number): void {
    this.size = { cols, rows };
    // v86 (0.5.462) writes its resize control message as (rows, cols), but the virtio spec's
    // virtio_console_resize — and the Linux driver we boot — read (cols, rows). Passing the pair
    // swapped makes the guest see the right size. Upstream fix: swap the fields in v86's
    // VirtioConsole.SendWindowSize; then drop this swap.
    if (this.manifest?.console === 'virtio') this.emulator?.bus.send('virtio-console0-resize', [rows, cols]);
  }

  private async boot(): Promise<void> {
    this.post({ type: 'state', state: 'loading' });
    const manifest = (this.manifest = await this.loadManifest());
    const spec: MachineSpec = {
      memoryMiB: this.options.memoryMiB ?? manifest.memoryMiB,
      acpi: manifest.acpi,
      console: manifest.console,
      diskSize: manifest.disk?.size,
    };
    const files: MachineFiles = {
      bios: { buffer: await this.fetchFile('bios', manifest.bios) },
      vgaBios: { buffer: await this.fetchFile('vga-bios', manifest.vgaBios) },
    };
    if (manifest.disk) {
      this.progress('disk', 0, 0);
      this.disk = await openDisk({
        spec: manifest.disk,
        persist: this.options.persist,
        reset: this.options.resetDisk,
        onFetched: (total) => this.diskProgress(total),
        hooks: {
          onError: (error, fatal) => (fatal ? this.fail(error) : this.post({ type: 'error', error: error.toJSON(), recoverable: true })),
        },
      });
      // Our disk object implements v86's disk interface (DESIGN.md), which v86's typings do not name.
      files.disk = this.disk.disk as unknown as V86Image;
      // While the snapshot downloads and restores, fetch what the guest will read on its way to a prompt.
      const { prefetch } = manifest.disk;
      if (prefetch) void this.disk.disk.prefetch(prefetch.blockSize, prefetch.blocks);
    }

    let coldBootReason: string | undefined;
    if (manifest.snapshot) {
      // The snapshot downloads while the emulator starts. One that cannot be used only means a cold boot,
      // with the reason reported.
      const snapshot = loadSnapshot(manifest.snapshot, manifest.id, spec, (loaded, total) =>
        this.progress('snapshot', loaded, total),
      ).then(
        (state) => ({ state, reason: undefined }),
        (error: Error) => ({ state: undefined, reason: error.message }),
      );
      const emulator = await this.createEmulator(spec, files);
      const { state, reason } = await snapshot;
      coldBootReason = reason;
      if (state) {
        try {
          await this.restore(emulator, state);
          return;
        } catch (error) {
          coldBootReason = `restoring the snapshot failed: ${(error as Error).message}`;
        }
      }
      await emulator.destroy().catch(() => {});
      this.emulator = undefined;
    }
    await this.coldBoot(manifest, spec, files, coldBootReason);
  }

  private async restore(emulator: Emulator, state: ArrayBuffer): Promise<void> {
    this.progress('boot', 0, 0, 'restoring the boot snapshot');
    await restoreFreshMachine(emulator, state);
    this.post({ type: 'state', state: 'booting' });
    this.run(emulator);
    // The snapshot was taken where the guest waits for its `go` line: answer at once.
    this.sendToGuest(goLine());
  }

  private async coldBoot(manifest: ImageManifest, spec: MachineSpec, files: MachineFiles, reason?: string): Promise<void> {
    const kernel = await this.fetchFile('kernel', manifest.kernel);
    const initrd = manifest.initrd ? await this.fetchFile('initrd', manifest.initrd) : undefined;
    if (initrd && spec.memoryMiB * MiB < INITRD_ADDRESS + initrd.byteLength + 16 * MiB) {
      const needed = Math.ceil((INITRD_ADDRESS + initrd.byteLength) / MiB) + 16;
      throw new VmError('memory-too-small', `${spec.memoryMiB} MiB of memory cannot hold this image's initrd; use at least ${needed} MiB`);
    }
    this.progress('boot', 0, 0, reason ? `cold boot: ${reason}` : 'cold boot');
    if (reason) console.warn(`linux-vm: ${manifest.name}: cold boot: ${reason}`);
    const emulator = await this.createEmulator(spec, {
      ...files,
      kernel: { buffer: kernel },
      cmdline: manifest.cmdline,
      ...(initrd && { initrd: { buffer: initrd } }),
    });
    this.waitWatcher = new PromptWatcher(WAIT_MARK);
    this.post({ type: 'state', state: 'booting' });
    this.run(emulator);
  }

  /** Creates v86 (not yet running) with the console wired; resolves once it has loaded. */
  private async createEmulator(spec: MachineSpec, files: MachineFiles): Promise<Emulator> {
    let emulator: Emulator;
    try {
      emulator = new V86(machineOptions(spec, files, this.options.v86WasmUrl)) as Emulator;
    } catch (cause) {
      throw new VmError('emulator-failed', `The emulator could not be created: ${String(cause)}`);
    }
    this.emulator = emulator;
    await new Promise<void>((resolve) => emulator.add_listener('emulator-loaded', () => resolve()));
    this.network.connectNic(emulator as unknown as NicBus);
    if (this.disk) {
      advertiseWriteCache(emulator);
      hookFlushCache(emulator, this.disk.disk);
    }
    // Kernel messages arrive on the first serial port; with a virtio console the shell is there.
    const shellOnSerial = spec.console === 'serial';
    emulator.add_listener('serial0-output-byte', (byte) => this.output(Uint8Array.of(byte), shellOnSerial));
    if (!shellOnSerial) emulator.add_listener('virtio-console0-output-bytes', (bytes) => this.output(bytes.slice(), true));
    if (emulator.fs9p && spec.console === 'virtio') {
      const files = (this.files = new FileTransfer(emulator.fs9p, {
        trySend: (bytes) => {
          // v86 drops console input while the port has no receive buffer posted (see drainInput).
          const receiveQueue = emulator.v86?.cpu?.devices?.virtio_console?.virtio?.queues?.[2 * AGENT_PORT + 2];
          if (!receiveQueue?.has_request()) return false;
          emulator.bus.send(`virtio-console${AGENT_PORT}-input-bytes`, bytes);
          return true;
        },
      }));
      emulator.add_listener(`virtio-console${AGENT_PORT}-output-bytes` as 'virtio-console0-output-bytes', (bytes) =>
        files.onAgentOutput(bytes),
      );
    }
    return emulator;
  }

  private run(emulator: Emulator): void {
    void emulator.run();
    this.resize(this.size.cols, this.size.rows);
    this.bootTimer = setTimeout(() => {
      this.fail(new VmError('boot-timeout', `No shell prompt within ${this.options.bootTimeoutSeconds} s of starting the emulator`));
    }, this.options.bootTimeoutSeconds * 1000);
  }

  private fetchFile(kind: AssetKind, url: string): Promise<ArrayBuffer> {
    return fetchAsset(kind, url, (loaded, total) => this.progress(kind, loaded, total));
  }

  private async loadManifest(): Promise<ImageManifest> {
    const url = this.options.manifestUrl;
    this.progress('manifest', 0, 0);
    let response: Response;
    try {
      response = await fetch(url);
    } catch (cause) {
      throw new VmError('manifest-fetch-failed', `Could not fetch the image manifest ${url}: ${String(cause)}`);
    }
    if (response.status === 404 || response.status === 410) {
      throw new VmError('manifest-not-found', `No image manifest at ${url} (HTTP ${response.status})`);
    }
    if (!response.ok) {
      throw new VmError('manifest-fetch-failed', `Fetching the image manifest ${url} failed with HTTP ${response.status}`);
    }
    const text = await response.text();
    this.progress('manifest', text.length, text.length);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new VmError('manifest-invalid', `The image manifest ${url} is not JSON: ${(cause as Error).message}`);
    }
    try {
      return parseManifest(json, url);
    } catch (cause) {
      if (cause instanceof ManifestError) {
        throw new VmError('manifest-invalid', `The image manifest ${url} is invalid: ${cause.message}`);
      }
      throw cause;
    }
  }

  private output(bytes: Uint8Array, fromShellConsole: boolean): void {
    this.outputChunks.push(bytes);
    if (fromShellConsole) {
      if (this.waitWatcher?.feed(bytes)) {
        this.waitWatcher = undefined;
        this.sendToGuest(goLine());
      }
      if (!this.ready && this.promptWatcher.feed(bytes)) this.onFirstPrompt();
    }
    this.outputTimer ??= setTimeout(() => this.flushOutput(), OUTPUT_FLUSH_MS);
  }

  private flushOutput(): void {
    this.outputTimer = undefined;
    const chunks = this.outputChunks;
    this.outputChunks = [];
    const data = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    let offset = 0;
    for (const c of chunks) {
      data.set(c, offset);
      offset += c.byteLength;
    }
    this.post({ type: 'output', data }, [data.buffer]);
  }

  private onFirstPrompt(): void {
    this.ready = true;
    clearTimeout(this.bootTimer);
    // The prompt's bytes reach the page before "ready" does.
    clearTimeout(this.outputTimer);
    this.flushOutput();
    this.post({ type: 'state', state: 'ready' });
    this.drainInput();
  }

  /** Writes to the guest's shell console now, ahead of any queued user input. */
  private sendToGuest(text: string): void {
    const bytes = new TextEncoder().encode(text);
    if (this.manifest?.console === 'serial') for (const byte of bytes) this.emulator?.bus.send('serial0-input', byte);
    else this.emulator?.bus.send('virtio-console0-input-bytes', bytes);
  }

  /**
   * Hands queued input to the guest. v86 silently drops virtio-console input when the
   * guest has no receive buffer posted (upstream has a TODO there), so we only send while
   * the receive queue has one, and retry shortly otherwise.
   */
  private drainInput(): void {
    clearTimeout(this.inputTimer);
    this.inputTimer = undefined;
    const emulator = this.emulator;
    if (!emulator) return;
    if (this.manifest?.console === 'serial') {
      for (const chunk of this.pendingInput.splice(0)) for (const byte of chunk) emulator.bus.send('serial0-input', byte);
      return;
    }
    const receiveQueue = emulator.v86?.cpu?.devices?.virtio_console?.virtio?.queues?.[0];
    while (this.pendingInput.length > 0) {
      if (receiveQueue && !receiveQueue.has_request()) {
        this.inputTimer = setTimeout(() => this.drainInput(), 5);
        return;
      }
      let chunk = this.pendingInput.shift()!;
      if (chunk.byteLength > INPUT_CHUNK) {
        this.pendingInput.unshift(chunk.subarray(INPUT_CHUNK));
        chunk = chunk.subarray(0, INPUT_CHUNK);
      }
      emulator.bus.send('virtio-console0-input-bytes', chunk);
    }
  }

  /** Copies `file` into the running guest at `guestPath` (see FileTransfer). */
  upload(file: Blob, guestPath: string): Promise<void> {
    return this.fileTransfer().upload(file, guestPath);
  }

  download(guestPath: string): Promise<Blob> {
    return this.fileTransfer().download(guestPath);
  }

  private fileTransfer(): FileTransfer {
    if (!this.ready) throw new VmError('vm-not-ready', 'The guest has not reached its shell prompt yet');
    if (!this.files) throw new VmError('transfer-unavailable', 'This VM has no file share (it needs a virtio console)');
    return this.files;
  }

  /** The merged disk image as a Blob (streamed: Chromium spills large Blobs to disk). */
  async exportDisk(): Promise<Blob> {
    if (!this.disk) throw new VmError('no-disk', 'This VM has no disk (yet)');
    return new Response(this.disk.disk.exportStream()).blob();
  }

  async diskUsage(): Promise<DiskUsage> {
    const opened = this.disk;
    if (!opened) throw new VmError('no-disk', 'This VM has no disk (yet)');
    const estimate = await navigator.storage?.estimate().catch(() => undefined);
    const cachedBlocks = (await opened.store?.countBase(opened.baseCacheKey).catch(() => 0)) ?? 0;
    const blockSize = Number(opened.baseCacheKey.split(':')[1]);
    return {
      overlay: opened.overlayName ?? null,
      overlayBytes: opened.disk.overlayBytes,
      cacheBytes: cachedBlocks * blockSize,
      usage: estimate?.usage ?? 0,
      quota: estimate?.quota ?? 0,
    };
  }

  private diskProgress(total: number): void {
    this.diskFetched = total;
    this.diskProgressTimer ??= setTimeout(() => {
      this.diskProgressTimer = undefined;
      this.progress('disk', this.diskFetched, 0);
    }, DISK_PROGRESS_MS);
  }

  private progress(phase: ProgressPhase, loaded: number, total: number, note?: string): void {
    this.post({ type: 'progress', phase, loaded, total, ...(note !== undefined && { note }) });
  }

  /** Reports a failure once and stops the emulator; the page terminates the worker. */
  fail(error: unknown): void {
    clearTimeout(this.bootTimer);
    const vmError =
      error instanceof VmError ? error : new VmError('emulator-failed', `The emulator failed: ${String(error)}`);
    void this.emulator?.stop();
    this.post({ type: 'error', error: vmError.toJSON() });
  }
}
