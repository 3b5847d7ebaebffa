import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';

export interface TerminalViewHandlers {
  /** Keys typed or text pasted into the terminal. */
  onInput(data: Uint8Array): void;
  /** The terminal's grid changed size. */
  onResize(cols: number, rows: number): void;
}

/**
 * The xterm.js terminal inside the element: fits itself to its container and reports
 * input and size changes. Owns every subscription it makes and releases them in dispose().
 */
export class TerminalView {
  readonly terminal: Terminal;
  private readonly fitAddon = new FitAddon();
  private readonly resizeObserver: ResizeObserver;
  private fitFrame = 0;
  private readonly disposables: { dispose(): void }[] = [];

  constructor(container: HTMLElement, handlers: TerminalViewHandlers) {
    this.terminal = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
    });
    this.terminal.loadAddon(this.fitAddon);
    this.terminal.open(container);
    const encoder = new TextEncoder();
    this.disposables.push(
      this.terminal.onData((data) => handlers.onInput(encoder.encode(data))),
      // Mouse reports in legacy encodings arrive as binary strings, one byte per char.
      this.terminal.onBinary((data) => handlers.onInput(Uint8Array.from(data, (c) => c.charCodeAt(0)))),
      this.terminal.onResize(({ cols, rows }) => handlers.onResize(cols, rows)),
    );
    this.resizeObserver = new ResizeObserver(() => this.scheduleFit());
    this.resizeObserver.observe(container);
    this.fit();
  }

  get cols(): number {
    return this.terminal.cols;
  }

  get rows(): number {
    return this.terminal.rows;
  }

  write(data: Uint8Array): void {
    this.terminal.write(data);
  }

  focus(): void {
    this.terminal.focus();
  }

  /** Fits the grid to the container now (also done automatically on every container resize). */
  fit(): void {
    // A hidden (display: none) container has no size; keep the last grid then.
    if (this.terminal.element?.clientWidth) this.fitAddon.fit();
  }

  private scheduleFit(): void {
    cancelAnimationFrame(this.fitFrame);
    this.fitFrame = requestAnimationFrame(() => this.fit());
  }

  dispose(): void {
    cancelAnimationFrame(this.fitFrame);
    this.resizeObserver.disconnect();
    for (const d of this.disposables.splice(0)) d.dispose();
    this.terminal.dispose();
  }
}
