// The host node (lwIP in wasm, in the emulator worker): the page's connections into a real guest —
// connect() to nc, fetch() from busybox httpd, the service worker serving a guest's web server to another page —
// and what happens with bad input. network="none" throughout: the guest has only its host-only link.
import { expect } from '@esm-bundle/chai';
import type { GuestSocket, LinuxVm } from '../src/index.js';
import { VmError } from '../src/index.js';
import { TINY, createVm, getJson, nextEvent, run } from './helpers.js';

const MINUTE = 60_000;
const MiB = 1024 * 1024;

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

async function sha256(data: BufferSource | Blob): Promise<string> {
  const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', buffer))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function readAll(socket: GuestSocket): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await new Response(socket.readable).arrayBuffer());
}

/** Retries while the guest's server is still starting (its port not yet listening). */
async function connectWhenListening(vm: LinuxVm, port: number): Promise<GuestSocket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await vm.connect(port);
    } catch (error) {
      if (!(error instanceof VmError && error.code === 'connection-refused') || attempt > 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function errorOf(promise: Promise<unknown>): Promise<VmError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).to.be.instanceOf(VmError);
  return error as VmError;
}

describe('host node: connections from the page into the guest', function () {
  this.timeout(3 * MINUTE);
  let vm: LinuxVm;
  const lwipRequests = async () => (await getJson<{ count: number }>('/__requests?prefix=/wasm/dist/lwip/')).count;
  let lwipBefore = 0;

  before(async () => {
    lwipBefore = await lwipRequests();
    vm = createVm({ image: TINY, persist: 'none', name: 'web' });
    await nextEvent(vm, 'ready', 5 * MINUTE);
  });
  after(() => vm?.remove());

  it('leaves a guest without a network unconfigured, and lwIP unloaded, until the page connects', async () => {
    const [, report] = await run(vm, 'sleep 6; echo "NET[$(ip -4 -o addr show dev eth0 | grep -c inet) $(ip -4 route | grep -c default)]"', /^NET\[(.*)\]$/m, MINUTE);
    expect(report).to.equal('0 0', 'IPv4 addresses on eth0, default routes');
    expect(await lwipRequests()).to.equal(lwipBefore, 'requests for the lwIP wasm before any connection');
  });

  it('fetch(): a file from busybox httpd in the guest, byte for byte, and its headers', async () => {
    const file = randomBytes(3 * MiB + 123);
    await run(vm, 'mkdir -p /tmp/www && echo MKDIR-OK', /^MKDIR-OK$/m);
    await vm.upload(new Blob([file]), '/tmp/www/data.bin');
    await run(vm, 'busybox httpd -p 8080 -h /tmp/www && echo HTTPD-OK', /^HTTPD-OK$/m);
    await connectWhenListening(vm, 8080).then((socket) => socket.abort());
    const response = await vm.fetch('http://guest:8080/data.bin');
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-length')).to.equal(String(file.length));
    expect(await sha256(await response.arrayBuffer())).to.equal(await sha256(file));
    expect(await lwipRequests()).to.equal(lwipBefore + 1, 'the lwIP wasm, fetched once');
    const missing = await vm.fetch('http://guest:8080/nothing-here');
    expect(missing.status).to.equal(404);
    // The first connection gave the guest its host-only link: the host node (lwIP) is its router, nothing else.
    const [, report] = await run(vm, 'echo "NET[$(ip -4 -o addr show dev eth0 | awk \'{print $4}\') $(ip -4 route show default | awk \'{print $3}\')]"', /^NET\[(.*)\]$/m);
    expect(report).to.equal('100.100.100.2/24 100.100.100.1', 'eth0 address, router');
  });

  it('connect(): 1 MiB each way with nc, checked by SHA-256', async () => {
    const up = randomBytes(MiB);
    const down = randomBytes(MiB);
    await vm.upload(new Blob([down]), '/tmp/down.bin');
    await run(vm, '(nc -l -p 9000 >/tmp/up.bin; echo UP-DONE) & echo NC-UP', /^NC-UP$/m);
    const upSocket = await connectWhenListening(vm, 9000);
    const writer = upSocket.writable.getWriter();
    for (let i = 0; i < up.length; i += 50_000) await writer.write(up.slice(i, i + 50_000));
    await writer.close();
    await run(vm, '', /UP-DONE$/m, MINUTE);
    expect(await sha256(await vm.download('/tmp/up.bin'))).to.equal(await sha256(up), 'page → guest');

    await run(vm, 'nc -l -p 9001 </tmp/down.bin & echo NC-STARTED', /^NC-STARTED$/m);
    const downSocket = await connectWhenListening(vm, 9001);
    const received = await Promise.race([
      readAll(downSocket),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the guest did not close after sending')), MINUTE)),
    ]).catch(async (error: unknown) => {
      downSocket.abort();
      throw error;
    });
    expect(received.length).to.equal(down.length);
    expect(await sha256(received)).to.equal(await sha256(down), 'guest → page');
  });

  it('rejects bad ports, closed ports and a stopped VM with specific codes', async () => {
    expect((await errorOf(vm.connect(0))).code).to.equal('port-invalid');
    expect((await errorOf(vm.connect(70000))).code).to.equal('port-invalid');
    expect((await errorOf(vm.connect(1.5))).code).to.equal('port-invalid');
    expect((await errorOf(vm.connect(9))).code).to.equal('connection-refused');
    expect((await errorOf(vm.fetch('http://guest:9/'))).code).to.equal('connection-refused');
    const typeError = await vm.fetch('https://guest/').catch((e: unknown) => e);
    expect(typeError).to.be.instanceOf(TypeError);
    const idle = createVm({ image: TINY, loading: 'manual' });
    try {
      expect((await errorOf(idle.connect(80))).code).to.equal('vm-not-ready');
    } finally {
      idle.remove();
    }
  });

  it('fails open connections when the VM stops', async () => {
    await run(vm, 'nc -l -p 9002 >/dev/null & echo NC2-STARTED', /^NC2-STARTED$/m);
    const socket = await connectWhenListening(vm, 9002);
    vm.stop();
    const error = await errorOf(socket.closed);
    expect(error.code).to.equal('connection-failed');
    await vm.start();
  });
});

describe('host node: the service worker serves a guest web server to another page', function () {
  this.timeout(3 * MINUTE);
  let vm: LinuxVm;
  let registration: ServiceWorkerRegistration;
  const scope = '/src/service-worker/';

  before(async () => {
    registration = await navigator.serviceWorker.register('/src/service-worker/linux-vm-sw.ts', { type: 'module', scope });
    // Not `navigator.serviceWorker.ready`: this page is outside the worker's scope.
    const worker = registration.installing ?? registration.waiting ?? registration.active!;
    if (worker.state !== 'activated') {
      await new Promise<void>((resolve) => worker.addEventListener('statechange', () => worker.state === 'activated' && resolve()));
    }
    vm = createVm({ image: TINY, persist: 'none', name: 'site' });
    await nextEvent(vm, 'ready', 5 * MINUTE);
  });
  after(async () => {
    vm?.remove();
    await registration?.unregister();
  });

  /** Loads `path` in an iframe (a page of its own, controlled by the service worker) and returns its text. */
  async function openInFrame(path: string): Promise<{ text: string; frame: HTMLIFrameElement }> {
    const frame = document.createElement('iframe');
    const loaded = new Promise((resolve) => frame.addEventListener('load', resolve, { once: true }));
    frame.src = path;
    document.body.append(frame);
    await loaded;
    return { text: frame.contentDocument?.body?.textContent ?? '', frame };
  }

  it('opens a page served in the guest from an iframe, and its relative links work', async () => {
    const token = crypto.randomUUID();
    await run(
      vm,
      `mkdir -p /tmp/site && echo "<p>served from the guest ${token}</p><a href=page2.html>next</a>" >/tmp/site/index.html && echo "second ${token}" >/tmp/site/page2.html && busybox httpd -p 8000 -h /tmp/site && echo SITE-OK`,
      /^SITE-OK$/m,
    );
    await connectWhenListening(vm, 8000).then((socket) => socket.abort());
    const first = await openInFrame(`${scope}linux-vm/site/8000/`);
    try {
      expect(first.text).to.contain(`served from the guest ${token}`);
      const link = first.frame.contentDocument!.querySelector('a')!;
      const next = new Promise((resolve) => first.frame.addEventListener('load', resolve, { once: true }));
      link.click();
      await next;
      expect(first.frame.contentDocument!.body.textContent).to.contain(`second ${token}`);
    } finally {
      first.frame.remove();
    }
  });

  it('answers 404 for a VM no page runs, 400 for a malformed URL, and 502 for a closed guest port', async () => {
    const status = async (path: string) => {
      const { frame } = await openInFrame(path);
      // The frame's own fetch goes through the service worker too: read the status from there.
      const response = await frame.contentWindow!.fetch(path);
      const text = await response.text();
      frame.remove();
      return { status: response.status, text };
    };
    const absent = await status(`${scope}linux-vm/nobody/8000/`);
    expect(absent.status).to.equal(404);
    expect(absent.text).to.contain('nobody');
    expect((await status(`${scope}linux-vm/site/notaport/`)).status).to.equal(400);
    const refused = await status(`${scope}linux-vm/site/9/`);
    expect(refused.status).to.equal(502);
    expect(refused.text).to.contain('connection-refused');
  });
});
