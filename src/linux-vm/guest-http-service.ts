/**
 * The page side of the service worker's guest URLs (src/service-worker/linux-vm-sw.ts): answers the
 * worker's questions for the named `<linux-vm>` elements of this page. Installed the first time an
 * element gets a `name`; without a service worker it does nothing.
 */
import type { FromVmPage, ToVmPage } from '../service-worker/http-bridge.js';
import { streamsOverPort } from '../net/port-stream.js';
import { VmError } from '../errors.js';

/** What the service needs of an element. */
export interface NamedVm {
  readonly name: string;
  readonly state: string;
  fetch(input: Request): Promise<Response>;
}

const vms = new Set<NamedVm>();
let listening = false;

/** Makes `vm` reachable through the service worker while it has a name and runs. */
export function registerNamedVm(vm: NamedVm): () => void {
  vms.add(vm);
  listen();
  return () => vms.delete(vm);
}

function find(name: string): NamedVm | undefined {
  for (const vm of vms) if (vm.name === name && vm.state === 'ready') return vm;
  return undefined;
}

function listen(): void {
  const container = globalThis.navigator?.serviceWorker;
  if (listening || !container) return;
  listening = true;
  container.addEventListener('message', (event: MessageEvent<Partial<ToVmPage> | null>) => {
    const message = event.data;
    if (!message || typeof message !== 'object' || !(message.reply instanceof MessagePort)) return;
    const reply = (answer: FromVmPage, transfer: Transferable[] = []) => {
      message.reply!.postMessage(answer, transfer);
      message.reply!.close();
    };
    if (message.type === 'linux-vm-http-probe') {
      reply({ type: 'probe', running: typeof message.vm === 'string' && find(message.vm) !== undefined });
    } else if (message.type === 'linux-vm-http-request') {
      void answerRequest(message as Extract<ToVmPage, { type: 'linux-vm-http-request' }>, reply);
    }
  });
  container.startMessages();
}

async function answerRequest(
  message: Extract<ToVmPage, { type: 'linux-vm-http-request' }>,
  reply: (answer: FromVmPage, transfer?: Transferable[]) => void,
): Promise<void> {
  try {
    const vm = find(message.vm);
    if (!vm) throw new VmError('vm-not-ready', `The VM "${message.vm}" is not running here any more`);
    const request = new Request(message.url, { method: message.method, headers: message.headers, body: message.body });
    const response = await vm.fetch(request);
    const headers: [string, string][] = [];
    response.headers.forEach((value, name) => headers.push([name, value]));
    let bodyPort: MessagePort | null = null;
    if (response.body) {
      const { port1, port2 } = new MessageChannel();
      bodyPort = port2;
      const { writable } = streamsOverPort(port1);
      response.body.pipeTo(writable).catch(() => {});
    }
    reply({ type: 'head', status: response.status, statusText: response.statusText, headers, body: bodyPort }, bodyPort ? [bodyPort] : []);
  } catch (error) {
    const code = error instanceof VmError ? error.code : 'connection-failed';
    reply({ type: 'error', code, message: error instanceof Error ? error.message : String(error) });
  }
}
