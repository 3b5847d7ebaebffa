/// <reference lib="webworker" />
/**
 * linux-vm's service worker: serves web servers running inside VMs at same-origin URLs, so another
 * tab or an iframe opens a guest's web app. `<scope>linux-vm/<name>/<port>/<path>` goes to port
 * `<port>` of the `<linux-vm name="<name>">` running in any open tab of this origin. Register it
 * yourself (`navigator.serviceWorker.register('/linux-vm-sw.js')`); it changes no other request.
 *
 * Built as a classic script (dist/linux-vm-sw.js); it imports only types.
 */
import type { FromVmPage, ToVmPage } from './http-bridge.js';
import { GUEST_HTTP_PREFIX } from './http-bridge.js';
import { streamsOverPort } from '../net/port-stream.js';

declare const self: ServiceWorkerGlobalScope;

/** How long a page may take to say whether it runs the VM, and to answer the request's head. */
const PROBE_TIMEOUT_MS = 2000;
const HEAD_TIMEOUT_MS = 60_000;

self.addEventListener('install', () => void self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const base = new URL(GUEST_HTTP_PREFIX, self.registration.scope);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return;
  event.respondWith(serveFromGuest(event.request, url.pathname.slice(base.pathname.length) + url.search));
});

async function serveFromGuest(request: Request, rest: string): Promise<Response> {
  const match = /^([^/]+)\/(\d{1,5})(\/.*)?$/.exec(rest);
  const port = Number(match?.[2]);
  if (!match || !(port >= 1 && port <= 65535)) {
    return problem(400, `Expected ${GUEST_HTTP_PREFIX}<vm name>/<port>/<path>, got ${GUEST_HTTP_PREFIX}${rest}`);
  }
  const vm = decodeURIComponent(match[1]!);
  const page = await findPage(vm);
  if (!page) return problem(404, `No <linux-vm name="${vm}"> is running in an open tab of this site`);
  const body = request.method === 'GET' || request.method === 'HEAD' ? null : await request.arrayBuffer();
  const headers: [string, string][] = [];
  request.headers.forEach((value, name) => headers.push([name, value]));
  const answer = await ask(page, {
    type: 'linux-vm-http-request',
    vm,
    port,
    method: request.method,
    url: `http://${encodeURIComponent(vm)}:${port}${match[3] ?? '/'}`,
    headers,
    body,
  }, HEAD_TIMEOUT_MS, body ? [body] : []);
  if (!answer) return problem(504, `The page running "${vm}" did not answer`);
  if (answer.type === 'error') return problem(502, `${answer.code}: ${answer.message}`);
  if (answer.type !== 'head') return problem(502, 'Unexpected answer from the page running the VM');
  let stream: ReadableStream<Uint8Array> | null = null;
  if (answer.body) {
    const body = streamsOverPort(answer.body);
    void body.writable.close(); // nothing flows back to the page
    stream = body.readable;
  }
  return new Response(stream, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
}

/** The first window of this origin that runs the named VM. */
async function findPage(vm: string): Promise<Client | undefined> {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const answers = await Promise.all(windows.map((client) => ask(client, { type: 'linux-vm-http-probe', vm }, PROBE_TIMEOUT_MS)));
  return windows.find((_, i) => answers[i]?.type === 'probe' && answers[i].running);
}

type Question = ToVmPage extends infer T ? (T extends ToVmPage ? Omit<T, 'reply'> : never) : never;

/** Posts a question with a reply port; resolves with the answer, or undefined on timeout. */
function ask(client: Client, question: Question, timeoutMs: number, transfer: Transferable[] = []): Promise<FromVmPage | undefined> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    port1.onmessage = (event: MessageEvent<FromVmPage>) => {
      clearTimeout(timer);
      port1.close();
      resolve(event.data);
    };
    client.postMessage({ ...question, reply: port2 }, [port2, ...transfer]);
  });
}

function problem(status: number, message: string): Response {
  return new Response(`linux-vm: ${message}\n`, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
