// A `<linux-vm>` in its own page (an iframe running test/fixtures/disk-page.html), so that a test can
// really reload it: used by the disk and file-transfer suites.
import type { LinuxVm } from '../src/index.js';

const BOOT_MS = 10 * 60_000;

export interface VmEvent {
  type: string;
  detail: any;
}
interface PageWindow extends Window {
  vm: LinuxVm;
  vmEvents: VmEvent[];
}

/** A `<linux-vm>` in its own page (an iframe), so that it can really be reloaded. */
export class VmPage {
  readonly iframe = document.createElement('iframe');

  constructor(readonly attributes: Record<string, string>) {
    this.iframe.style.cssText = 'width: 740px; height: 420px';
  }

  get window(): PageWindow {
    return this.iframe.contentWindow as PageWindow;
  }
  get vm(): LinuxVm {
    return this.window.vm;
  }
  get events(): VmEvent[] {
    return this.window.vmEvents ?? [];
  }

  async open(): Promise<this> {
    const loaded = this.loaded();
    this.iframe.src = `/test/fixtures/disk-page.html?${new URLSearchParams(this.attributes)}`;
    document.body.append(this.iframe);
    await loaded;
    return this;
  }

  /** A real reload: the page, its element and its worker are gone; a new page starts from scratch. */
  async reload(): Promise<void> {
    const loaded = this.loaded();
    this.window.location.reload();
    await loaded;
  }

  close(): void {
    this.iframe.remove();
  }

  /** Resolves with the first event of `type` (since the page loaded); rejects on a VM error meanwhile. */
  async next(type: 'ready' | 'error' | 'ip-assigned', timeoutMs = BOOT_MS): Promise<VmEvent> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const event = this.events.find((e) => e.type === type || (e.type === 'error' && !isRecoverable(e)));
      if (event?.type === type) return event;
      if (event) throw new Error(`VM error ${event.detail.code}: ${event.detail.message}`);
      if (performance.now() > deadline) throw new Error(`no "${type}" within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  notes(): string[] {
    return this.events.filter((e) => e.type === 'progress' && e.detail.note).map((e) => e.detail.note);
  }

  private loaded(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.window?.vm && this.window.location.href !== 'about:blank') resolve();
        else setTimeout(check, 50);
      };
      this.iframe.addEventListener('load', check, { once: true });
    });
  }
}

const isRecoverable = (e: VmEvent) => e.detail.code === 'storage-full' || e.detail.code === 'disk-write-failed';
