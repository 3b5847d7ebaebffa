import { V86, type V86Options } from 'v86';
import { VmError } from '../errors.js';
import { ManifestError, parseManifest, type ImageManifest } from '../manifest.js';
import { PROMPT_MARK, type AssetKind, type FromWorker, type ProgressPhase, type StartOptions } from '../protocol.js';
import { fetchAsset, probeDisk } from './fetch-asset.js';
import { PromptWatcher } from './prompt-watcher.js';

const MiB = 1024 * 1024;
/** v86 copies the initrd to this guest-physical address (see DESIGN.md). */
const INITRD_ADDRESS = 64 * MiB;
/** Console output is batched into one message per this many ms, not one per byte. */
const OUTPUT_FLUSH_MS = 8;
/** Linux's virtio-console receive buffers are one page; larger writes would be cut. */
const INPUT_CHUNK = 4096;

/** The parts of v86's runtime we touch that its typings do not declare. */
interface V86Internals {
  bus: { send(name: string, value: unknown): void };
  v86?: { cpu?: { devices?: { virtio_console?: { virtio?: { queues?: VirtQueue[] } } } } };
}
interface VirtQueue {
  has_request(): boolean;
}

type Post = (message: FromWorker, transfer?: Transferable[]) => void;

/**
 * One guest: loads its image, runs v86, and bridges its console to the page.
 * Lives in the emulator worker; talks to the page only through `post`.
 */
export class GuestMachine {
  private emulator?: V86 & V86Internals;
  private manifest?: ImageManifest;
  private ready = false;
  private bootTimer?: ReturnType<typeof setTimeout>;
  private outputChunks: Uint8Array[] = [];
  private outputTimer?: ReturnType<typeof setTimeout>;
  /** Keystrokes waiting for the guest (before its first prompt, or while its input queue is full). */
  private pendingInput: Uint8Array[] = [];
  private inputTimer?: ReturnType<typeof setTimeout>;
  private readonly promptWatcher = new PromptWatcher(PROMPT_MARK);
  private size: { cols: number; rows: number };

  constructor(
    private readonly options: StartOptions,
    private readonly post: Post,
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
    const memoryMiB = this.options.memoryMiB ?? manifest.memoryMiB;

    const fetchWithProgress = (phase: AssetKind, url: string) =>
      fetchAsset(phase, url, (loaded, total) => this.progress(phase, loaded, total));
    // Sequential on purpose: progress then reads as one phase after another.
    const bios = await fetchWithProgress('bios', manifest.bios);
    const vgaBios = await fetchWithProgress('vga-bios', manifest.vgaBios);
    const kernel = await fetchWithProgress('kernel', manifest.kernel);
    const initrd = manifest.initrd ? await fetchWithProgress('initrd', manifest.initrd) : undefined;
    if (initrd && memoryMiB * MiB < INITRD_ADDRESS + initrd.byteLength + 16 * MiB) {
      const needed = Math.ceil((INITRD_ADDRESS + initrd.byteLength) / MiB) + 16;
      throw new VmError('memory-too-small', `${memoryMiB} MiB of memory cannot hold this image's initrd; use at least ${needed} MiB`);
    }
    if (manifest.disk) {
      this.progress('disk', 0, manifest.disk.size);
      await probeDisk(manifest.disk.url, manifest.disk.size);
    }

    this.progress('boot', 0, 0);
    this.post({ type: 'state', state: 'booting' });
    const v86Options: V86Options = {
      wasm_path: this.options.v86WasmUrl,
      memory_size: memoryMiB * MiB,
      vga_memory_size: 2 * MiB,
      bios: { buffer: bios },
      vga_bios: { buffer: vgaBios },
      bzimage: { buffer: kernel },
      cmdline: manifest.cmdline,
      autostart: true,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
      acpi: manifest.acpi,
      ...(initrd && { initrd: { buffer: initrd } }),
      ...(manifest.disk && { hda: { url: manifest.disk.url, size: manifest.disk.size, async: true } }),
      ...(manifest.console === 'virtio' && { virtio_console: { type: 'none' } }),
    };
    try {
      this.emulator = new V86(v86Options) as V86 & V86Internals;
    } catch (cause) {
      throw new VmError('emulator-failed', `The emulator could not be created: ${String(cause)}`);
    }
    this.wireConsole(this.emulator, manifest);
    this.bootTimer = setTimeout(() => {
      this.fail(new VmError('boot-timeout', `No shell prompt within ${this.options.bootTimeoutSeconds} s of starting the emulator`));
    }, this.options.bootTimeoutSeconds * 1000);
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

  private wireConsole(emulator: V86 & V86Internals, manifest: ImageManifest): void {
    // Kernel messages arrive on the first serial port; with a virtio console the shell is there.
    emulator.add_listener('serial0-output-byte', (byte) => this.output(Uint8Array.of(byte), manifest.console === 'serial'));
    if (manifest.console === 'virtio') {
      emulator.add_listener('virtio-console0-output-bytes', (bytes) => this.output(bytes.slice(), true));
      // The guest asks for the size when its console port opens; v86 answers with the last one set.
      emulator.add_listener('emulator-ready', () => this.resize(this.size.cols, this.size.rows));
    }
  }

  private output(bytes: Uint8Array, fromShellConsole: boolean): void {
    this.outputChunks.push(bytes);
    if (fromShellConsole && !this.ready && this.promptWatcher.feed(bytes)) this.onFirstPrompt();
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

  private progress(phase: ProgressPhase, loaded: number, total: number): void {
    this.post({ type: 'progress', phase, loaded, total });
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
