import type { LinuxVm, LinuxVmEventMap } from '../src/index.js';
import '../src/index.js';

export const TINY = '/images/tiny/manifest.json';
export const DEBIAN = '/images/debian/manifest.json';

/** GETs a JSON answer from the test server; throws with the status and body otherwise. */
export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Creates a sized `<linux-vm>` in the document (not yet started unless `loading` is eager). */
export function createVm(attributes: Record<string, string> = {}, style = 'width: 720px; height: 400px'): LinuxVm {
  const vm = document.createElement('linux-vm');
  vm.setAttribute('style', style);
  for (const [name, value] of Object.entries(attributes)) vm.setAttribute(name, value);
  document.body.append(vm);
  return vm;
}

export function nextEvent<K extends keyof LinuxVmEventMap>(
  vm: LinuxVm,
  type: K,
  timeoutMs = 60_000,
): Promise<LinuxVmEventMap[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${type}" event within ${timeoutMs} ms`)), timeoutMs);
    vm.addEventListener(
      type,
      (event) => {
        clearTimeout(timer);
        resolve(event);
      },
      { once: true },
    );
  });
}

/**
 * The terminal's whole buffer (scrollback + screen) as text, one line per row, without the empty
 * rows below the cursor — so the text only grows as output arrives, and offsets into it stay valid.
 */
export function terminalText(vm: LinuxVm): string {
  const buffer = vm.terminal!.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n').trimEnd();
}

/** Resolves with the first match of `pattern` in the terminal text that was not there at `since` chars. */
export async function waitForOutput(vm: LinuxVm, pattern: RegExp, timeoutMs = 120_000, since = 0): Promise<RegExpExecArray> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(terminalText(vm).slice(since));
    if (match) return match;
    if (performance.now() > deadline) {
      throw new Error(`${pattern} did not appear within ${timeoutMs} ms; terminal shows:\n${terminalText(vm).slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a command through `type()` and waits for `pattern` in its output (after the command line). */
export async function run(vm: LinuxVm, command: string, pattern: RegExp, timeoutMs = 120_000): Promise<RegExpExecArray> {
  const since = terminalText(vm).length;
  vm.type(`${command}\n`);
  return waitForOutput(vm, pattern, timeoutMs, since);
}

/**
 * Records every Worker the page creates, so a test can check that one is really gone:
 * a terminated worker never answers the protocol's `ping`.
 */
export function trackWorkers(): { workers: Worker[]; restore(): void } {
  const original = window.Worker;
  const workers: Worker[] = [];
  window.Worker = class TrackedWorker extends original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      workers.push(this);
    }
  };
  return { workers, restore: () => (window.Worker = original) };
}

/** True if the worker answers a protocol ping within `timeoutMs`. */
export function workerAnswers(worker: Worker, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const id = Math.floor(Math.random() * 1e9);
    const onMessage = (event: MessageEvent) => {
      if (event.data?.type === 'pong' && event.data.id === id) finish(true);
    };
    const finish = (answered: boolean) => {
      clearTimeout(timer);
      worker.removeEventListener('message', onMessage);
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    worker.addEventListener('message', onMessage);
    worker.postMessage({ type: 'ping', id });
  });
}

/** `size` random bytes (getRandomValues fills at most 64 KiB per call). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/** Hex SHA-256 of bytes or a Blob. */
export async function sha256(data: Blob | Uint8Array<ArrayBuffer>): Promise<string> {
  // (A Blob from the iframe's window is no `instanceof Blob` here.)
  const buffer = data instanceof Uint8Array ? data : await data.arrayBuffer();
  return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buffer)), (b) => b.toString(16).padStart(2, '0')).join('');
}
