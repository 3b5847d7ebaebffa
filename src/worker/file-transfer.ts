import { VmError } from '../errors.js';
import { MAX_TRANSFER_BYTES } from '../protocol.js';

/**
 * The host half of upload()/download(): files travel through v86's in-memory virtio 9p share, and
 * the guest agent (images/guest/linux-vm-agent) copies them between the share and the guest path.
 * Requests and answers are lines on virtio-console port AGENT_PORT (machine.ts; the guest's /dev/hvc1), never on
 * the user's terminal. One transfer at a time, so at most one file is held in the share.
 */

/** What we use of v86's in-memory 9p filesystem (lib/filesystem.js), which its typings do not declare. */
export interface Fs9p {
  SearchPath(path: string): { id: number; parentid: number };
  CreateFile(name: string, parentId: number): number;
  ChangeSize(id: number, size: number): Promise<void>;
  Write(id: number, offset: number, count: number, buffer: Uint8Array): Promise<void>;
  Read(id: number, offset: number, count: number): Promise<Uint8Array<ArrayBuffer> | null>;
  GetInode(id: number): { size: number };
  Unlink(parentId: number, name: string): number;
  DeleteData(id: number): Promise<void>;
  read_dir(path: string): string[] | undefined;
}

export interface AgentBus {
  /** Sends bytes to the agent's port; false if the guest has no receive buffer posted right now. */
  trySend(bytes: Uint8Array): boolean;
}

/** How long to wait for the agent's `hello` when a transfer is asked for before it has been heard. */
const AGENT_HELLO_WAIT_MS = 30_000;
/** An answer is expected within this time plus the time to move the bytes at a slow guest's pace. */
const BASE_TIMEOUT_MS = 60_000;
const SLOW_BYTES_PER_MS = 256; // 256 kB/s, far below the 12–70 MB/s measured on a loaded two-core host

interface Pending {
  /** The request line, sent again if the agent restarts before answering. */
  line: string;
  resolve(line: string): void;
}

export class FileTransfer {
  private agentVersion?: string;
  private agentProblem?: string;
  private helloWaiters: Array<() => void> = [];
  private lineBuffer = '';
  private readonly decoder = new TextDecoder();
  private pending = new Map<number, Pending>();
  private nextId = 1;
  /** Transfers run one after another (memory: one file in the share at a time). */
  private queue: Promise<unknown> = Promise.resolve();
  private outgoing: Uint8Array[] = [];
  private sendTimer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly fs: Fs9p,
    private readonly bus: AgentBus,
  ) {}

  /** Bytes the guest wrote to the agent's port. */
  onAgentOutput(bytes: Uint8Array): void {
    this.lineBuffer += this.decoder.decode(bytes, { stream: true });
    let newline: number;
    while ((newline = this.lineBuffer.indexOf('\n')) !== -1) {
      const line = this.lineBuffer.slice(0, newline).replace(/\r$/, '');
      this.lineBuffer = this.lineBuffer.slice(newline + 1);
      this.onLine(line);
    }
  }

  /** Copies `file` to `guestPath` in the guest (created or replaced; on the guest's disk when this resolves). */
  upload(file: Blob, guestPath: string): Promise<void> {
    return this.serialize(async () => {
      checkSize(file.size, guestPath);
      await this.waitForAgent();
      const id = this.nextId++;
      await this.removeLeftovers();
      try {
        await this.fillFile(`${id}.path`, new Blob([guestPath]));
        await this.fillFile(`${id}.data`, file);
        await this.ask(id, `put ${file.size}`, file.size);
      } finally {
        await this.remove(id);
      }
    });
  }

  /** The guest file at `guestPath`. */
  download(guestPath: string): Promise<Blob> {
    return this.serialize(async () => {
      await this.waitForAgent();
      const id = this.nextId++;
      await this.removeLeftovers();
      try {
        await this.fillFile(`${id}.path`, new Blob([guestPath]));
        await this.ask(id, `get ${MAX_TRANSFER_BYTES}`, MAX_TRANSFER_BYTES);
        const found = this.fs.SearchPath(`/${id}.data`);
        if (found.id === -1) throw new VmError('transfer-failed', `The guest agent sent no data for ${guestPath}`);
        const size = this.fs.GetInode(found.id).size;
        const bytes = size > 0 ? await this.fs.Read(found.id, 0, size) : new Uint8Array(0);
        if (bytes?.byteLength !== size) throw new VmError('transfer-failed', `The share lost the data of ${guestPath}`);
        // The Blob takes its own copy; the share's buffer is dropped right after (remove()).
        return new Blob([bytes]);
      } finally {
        await this.remove(id);
      }
    });
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => {});
    return result;
  }

  private onLine(line: string): void {
    const [first = '', second = '', ...rest] = line.split(' ');
    if (first === 'hello') {
      // A restarted agent (killed in the guest, say) never saw what was asked of its predecessor.
      // (If it also gets the queued line, it serves the request twice: harmless, see the agent.)
      if (this.agentVersion !== undefined) for (const { line } of this.pending.values()) this.send(line);
      this.agentVersion = second;
      this.agentProblem = undefined;
      for (const wake of this.helloWaiters.splice(0)) wake();
      return;
    }
    if (first === 'unavailable') {
      this.agentVersion = undefined; // a restarted agent that could not mount the share serves nothing
      this.agentProblem = [second, ...rest].join(' ');
      for (const wake of this.helloWaiters.splice(0)) wake();
      return;
    }
    // Only answers: a request line can come back too (a restarted agent's tty echoes input it had queued).
    if (second !== 'ok' && second !== 'error') return;
    const id = Number(first);
    const pending = this.pending.get(id);
    if (!pending || !/^\d+$/.test(first)) return;
    this.pending.delete(id);
    pending.resolve([second, ...rest].join(' '));
  }

  private async waitForAgent(): Promise<void> {
    if (this.agentVersion === undefined && this.agentProblem === undefined) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, AGENT_HELLO_WAIT_MS);
        this.helloWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.agentVersion === undefined) {
      const why = this.agentProblem ?? `the guest's file agent did not answer within ${AGENT_HELLO_WAIT_MS / 1000} s (an image built before file transfer existed?)`;
      throw new VmError('transfer-unavailable', `File transfer is not available in this guest: ${why}`);
    }
  }

  /** Sends one request line and waits for its answer; throws the agent's error as a VmError. */
  private async ask(id: number, request: string, bytes: number): Promise<void> {
    const timeoutMs = BASE_TIMEOUT_MS + bytes / SLOW_BYTES_PER_MS;
    const answer = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VmError('transfer-failed', `The guest's file agent did not answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const line = `${id} ${request}\n`;
      this.pending.set(id, {
        line,
        resolve: (answerLine) => {
          clearTimeout(timer);
          resolve(answerLine);
        },
      });
      this.send(line);
    });
    const [status, code, ...message] = answer.split(' ');
    if (status === 'ok') return;
    const known = ['path-not-found', 'path-is-directory', 'file-too-large', 'transfer-failed'] as const;
    const errorCode = known.find((k) => k === code) ?? 'transfer-failed';
    throw new VmError(errorCode, message.join(' ').trim() || `The guest's file agent answered: ${answer}`);
  }

  /** Queues a line for the agent's port; v86 drops input while the guest has no receive buffer posted. */
  private send(text: string): void {
    this.outgoing.push(new TextEncoder().encode(text));
    this.flush();
  }

  private flush(): void {
    clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    while (this.outgoing.length > 0) {
      if (!this.bus.trySend(this.outgoing[0]!)) {
        this.sendTimer = setTimeout(() => this.flush(), 5);
        return;
      }
      this.outgoing.shift();
    }
  }

  /**
   * Creates `name` in the share at its final size and streams `file` into it: the bytes are held once
   * (in the share), never as a whole ArrayBuffer besides it.
   */
  private async fillFile(name: string, file: Blob): Promise<void> {
    const id = this.fs.CreateFile(name, 0);
    await this.fs.ChangeSize(id, file.size);
    let offset = 0;
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = Math.min(value.byteLength, file.size - offset);
      if (room > 0) await this.fs.Write(id, offset, room, value.subarray(0, room));
      offset += value.byteLength;
    }
    if (offset !== file.size) throw new VmError('transfer-failed', `The file was ${offset} bytes when read, not ${file.size}: was it changed?`);
  }

  /** Removes a request's files from the share and frees their bytes. */
  private remove(id: number): Promise<void> {
    return this.removeFiles([`${id}.path`, `${id}.data`]);
  }

  /**
   * Empties the share before a transfer: an agent restarted mid-request may have served a request twice and
   * written a file after its request ended. Transfers run one at a time, so nothing in the share is in use.
   */
  private removeLeftovers(): Promise<void> {
    return this.removeFiles(this.fs.read_dir('/') ?? []);
  }

  private async removeFiles(names: string[]): Promise<void> {
    for (const name of names) {
      const found = this.fs.SearchPath(`/${name}`);
      if (found.id === -1) continue;
      this.fs.Unlink(found.parentid, name);
      await this.fs.DeleteData(found.id);
    }
  }
}

function checkSize(size: number, guestPath: string): void {
  if (size > MAX_TRANSFER_BYTES) {
    throw new VmError('file-too-large', `${guestPath}: ${size} bytes is more than the transfer limit of ${MAX_TRANSFER_BYTES} bytes`);
  }
}
