/**
 * The messages between the service worker (src/service-worker/linux-vm-sw.ts) and the pages that run
 * VMs (src/linux-vm/guest-http-service.ts): the service worker asks which page has the named VM, then
 * hands that page the request; the page answers with the response head and a port carrying the body
 * (src/net/port-stream.ts). Every message has its own reply port.
 */

/** URLs under the service worker's scope that reach a guest: `<scope>linux-vm/<vm name>/<port>/<path>`. */
export const GUEST_HTTP_PREFIX = 'linux-vm/';

/** Service worker → page. */
export type ToVmPage =
  | { type: 'linux-vm-http-probe'; vm: string; reply: MessagePort }
  | {
      type: 'linux-vm-http-request';
      vm: string;
      port: number;
      method: string;
      /** The URL the guest sees: http://<vm name>:<port>/<path>?<query>. */
      url: string;
      headers: [string, string][];
      body: ArrayBuffer | null;
      reply: MessagePort;
    };

/** Page → service worker, on the reply port. */
export type FromVmPage =
  | { type: 'probe'; running: boolean }
  | { type: 'head'; status: number; statusText: string; headers: [string, string][]; body: MessagePort | null }
  | { type: 'error'; code: string; message: string };
