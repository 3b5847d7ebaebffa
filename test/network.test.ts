// Networking: network="none" (no route, no wasm fetched) and network="tailscale" against a real tailnet on
// loopback (headscale + DERP over WebSocket + a tsnet peer; test/tailnet/, started by wtr-tailnet.mjs).
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import type { VmErrorDetail } from '../src/linux-vm/events.js';
import { DEBIAN, TINY, createVm, nextEvent, run } from './helpers.js';

const MINUTE = 60_000;
const MiB = 1024 * 1024;

interface TailnetInfo {
  controlURL: string;
  authKey: string;
  peerIP: string;
  peerName: string;
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

async function peer(path: string): Promise<string> {
  const response = await fetch(`/__tailnet/peer/${path}`);
  const text = await response.text();
  if (!response.ok) throw new Error(`peer ${path}: HTTP ${response.status}: ${text}`);
  return text;
}

const wasmRequests = async () => (await getJson<{ count: number }>('/__tailnet/wasm-requests')).count;

/** 100.64.0.0/10: Tailscale's (CGNAT) IPv4 range. */
function inTailnetRange(ip: string): boolean {
  const [a, b] = ip.split('.').map(Number);
  return a === 100 && b! >= 64 && b! < 128;
}

function tailscaleVm(info: TailnetInfo, authKey = info.authKey, controlUrl = info.controlURL, image = TINY): LinuxVm {
  const vm = createVm({ loading: 'manual', network: 'tailscale', 'control-url': controlUrl, persist: 'none' });
  vm.authKey = authKey; // the property: the key never appears in the DOM
  vm.image = image;
  return vm;
}

describe('network="none"', () => {
  let vm: LinuxVm;
  after(() => vm?.remove());

  it('boots without a network: eth0 is up, no DHCP answer, no default route, and no Tailscale wasm is requested', async () => {
    const before = await wasmRequests();
    vm = createVm({ image: TINY });
    await nextEvent(vm, 'ready', 5 * MINUTE);
    expect(vm.network).to.equal('none');
    expect(vm.networkState).to.equal('none');
    // udhcpc sends its first DISCOVERs at boot; give it two rounds.
    const [, report] = await run(
      vm,
      'sleep 8; echo "NET[$(ip -4 route | grep -c default) $(ip -4 -o addr show dev eth0 | grep -c inet) $(cat /sys/class/net/eth0/operstate) $(ls /run/linux-vm-net 2>&1 | grep -c No)]"',
      /^NET\[(.*)\]$/m,
      MINUTE,
    );
    expect(report).to.equal('0 0 up 1', 'default routes, IPv4 addresses on eth0, eth0 state, no lease file');
    expect(await wasmRequests()).to.equal(before, 'requests for the Tailscale wasm');
  });
});

describe('network="tailscale" on a loopback tailnet', () => {
  let info: TailnetInfo;
  let vm: LinuxVm;
  let ipv4: string;
  const states: string[] = [];
  const networkProgress: { loaded: number; total: number }[] = [];
  const errors: VmErrorDetail[] = [];

  before(async function () {
    this.timeout(10 * MINUTE);
    info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info);
    vm.addEventListener('network-state', (e) => states.push(e.detail.state));
    vm.addEventListener('progress', (e) => e.detail.phase === 'network' && networkProgress.push(e.detail));
    vm.addEventListener('error', (e) => errors.push(e.detail));
    const assigned = nextEvent(vm, 'ip-assigned', 5 * MINUTE);
    const started = performance.now();
    await vm.start();
    const event = await assigned;
    console.log(`ip-assigned ${Math.round(performance.now() - started)} ms after start(): ${JSON.stringify(event.detail)}`);
    ipv4 = event.detail.ipv4!;
  });

  after(() => vm?.remove());

  it('logs in with a pre-auth key: ip-assigned with an address in 100.64.0.0/10, states and wasm progress reported', () => {
    expect(errors).to.deep.equal([]);
    expect(inTailnetRange(ipv4), ipv4).to.equal(true);
    expect(vm.networkState).to.equal('running');
    expect(states[0]).to.equal('loading');
    expect(states).to.include('running');
    expect(networkProgress.length).to.be.greaterThan(1);
    expect(networkProgress.at(-1)!.loaded).to.be.greaterThan(MiB);
    expect(vm.hasAttribute('auth-key')).to.equal(false);
    expect(vm.outerHTML).not.to.include(info.authKey);
  });

  it('gives the guest its tailnet address by DHCP: /32, default route, MagicDNS resolver, MTU 1280', async () => {
    const [, lease] = await run(vm, 'for i in $(seq 90); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[$(cat /run/linux-vm-net)]"', /^LEASE\[(.*)\]$/m, 3 * MINUTE);
    expect(lease).to.equal(`linux-vm: eth0 ${ipv4}/32 via 100.100.100.1 dns 100.100.100.100 mtu 1280`);
    const [, config] = await run(vm, 'echo "CFG[$(ip -4 route | grep default) | $(grep nameserver /etc/resolv.conf) | $(cat /sys/class/net/eth0/mtu)]"', /^CFG\[(.*)\]$/m);
    expect(config).to.match(/^default via 100\.100\.100\.1 dev eth0\s*\| nameserver 100\.100\.100\.100 \| 1280$/);
  });

  it('fetches a page from the peer by its tailnet IP', async () => {
    const [, body] = await run(vm, `echo "GOT[$(timeout 90 wget -qO- http://${info.peerIP}/ 2>&1)]"`, /^GOT\[(.*)\]$/m, 3 * MINUTE);
    expect(body).to.equal('hello from tailnet-peer');
  });

  it('fetches a page from the peer by its MagicDNS name', async () => {
    const [, body] = await run(vm, `echo "GOT[$(timeout 90 wget -qO- http://${info.peerName}/ 2>&1)]"`, /^GOT\[(.*)\]$/m, 3 * MINUTE);
    expect(body).to.equal('hello from tailnet-peer');
  });

  it('serves a page from the guest (busybox httpd) to the peer', async () => {
    await run(vm, 'mkdir -p /srv && echo "hello from the guest" >/srv/index.html && httpd -p 8080 -h /srv && echo "HTTPD[ok]"', /^HTTPD\[ok\]$/m);
    const answer = await peer(`fetch?url=${encodeURIComponent(`http://${ipv4}:8080/`)}`);
    expect(answer).to.equal('200 OK\nhello from the guest\n');
  });

  it('moves 1 MiB from the peer to the guest over TCP (nc) intact', async () => {
    // nc's stdin is empty, so it half-closes at once and the peer's answer may come before the data is all in:
    // the guest waits for nc to exit (on the peer's FIN) before it counts.
    await run(vm, 'rm -f /tmp/in; (nc -l -p 9000 >/tmp/in </dev/null &); sleep 1; echo "LISTEN[ok]"', /^LISTEN\[ok\]$/m);
    const sent = JSON.parse(await peer(`send?addr=${ipv4}:9000&n=${MiB}`)) as { sent: number; sha256: string };
    expect(sent.sent).to.equal(MiB);
    const [, received] = await run(vm, 'while pidof nc >/dev/null; do sleep 1; done; echo "SUM[$(wc -c </tmp/in) $(sha256sum </tmp/in | cut -d" " -f1)]"', /^SUM\[(.*)\]$/m, 2 * MINUTE);
    expect(received).to.equal(`${MiB} ${sent.sha256}`);
  });

  it('moves 1 MiB from the guest to the peer over TCP (nc) intact', async () => {
    const [, local] = await run(
      vm,
      'dd if=/dev/urandom of=/tmp/out bs=1024 count=1024 2>/dev/null; (nc -l -p 9001 </tmp/out >/dev/null &); sleep 1; echo "SUM[$(sha256sum </tmp/out | cut -d" " -f1)]"',
      /^SUM\[([0-9a-f]{64})\]$/m,
      2 * MINUTE,
    );
    const received = JSON.parse(await peer(`receive?addr=${ipv4}:9001`)) as { received: number; sha256: string };
    expect(received).to.deep.equal({ received: MiB, sha256: local });
  });

  it('logs out: the node leaves the tailnet (needs-login) and the peer can no longer reach the guest', async () => {
    const needsLogin = new Promise<void>((resolve) =>
      vm.addEventListener('network-state', (e) => e.detail.state === 'needs-login' && resolve()),
    );
    await vm.logout();
    await needsLogin;
    expect(vm.networkState).to.equal('needs-login');
    const response = await fetch(`/__tailnet/peer/fetch?url=${encodeURIComponent(`http://${ipv4}:8080/`)}`);
    expect(response.ok, await response.text()).to.equal(false);
  });
});

describe('network="tailscale" with the debian image', () => {
  let info: TailnetInfo;
  let vm: LinuxVm;
  let ipv4: string;

  before(async function () {
    this.timeout(15 * MINUTE);
    info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info, info.authKey, info.controlURL, DEBIAN);
    const assigned = nextEvent(vm, 'ip-assigned', 14 * MINUTE);
    await vm.start();
    ipv4 = (await assigned).detail.ipv4!;
    await run(vm, 'for i in $(seq 90); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[$(cat /run/linux-vm-net)]"', /^LEASE\[.*\]$/m, 3 * MINUTE);
  });

  after(() => vm?.remove());

  it('curl in the guest fetches from the peer by MagicDNS name', async () => {
    const [, body] = await run(vm, `echo "GOT[$(curl -sS -m 90 http://${info.peerName}/ 2>&1)]"`, /^GOT\[(.*)\]$/m, 3 * MINUTE);
    expect(body).to.equal('hello from tailnet-peer');
  });

  it('the peer reaches a python3 http.server in the guest (the "app reached from elsewhere" demo)', async () => {
    await run(
      vm,
      'mkdir -p /tmp/site && echo "hello from python in the guest" >/tmp/site/index.html && (cd /tmp/site && python3 -m http.server 8000 >/dev/null 2>&1 &); for i in $(seq 60); do curl -s localhost:8000 >/dev/null && break; sleep 1; done; echo "PY[up]"',
      /^PY\[up\]$/m,
      3 * MINUTE,
    );
    const answer = await peer(`fetch?url=${encodeURIComponent(`http://${ipv4}:8000/`)}`);
    expect(answer).to.equal('200 OK\nhello from python in the guest\n');
  });
});

describe('network="tailscale" without an auth key', () => {
  let vm: LinuxVm | undefined;
  after(() => vm?.remove());

  it('asks for an interactive login (login-required) and joins once the login is approved', async () => {
    const info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info, '');
    const required = nextEvent(vm, 'login-required', 3 * MINUTE);
    const assigned = nextEvent(vm, 'ip-assigned', 5 * MINUTE);
    await vm.start();
    const { url } = (await required).detail;
    expect(url.startsWith(`${info.controlURL}/register/`), url).to.equal(true);
    expect(vm.networkState).to.equal('needs-login');
    const node = await getJson<{ given_name?: string; name?: string }>(`/__tailnet/register?key=${encodeURIComponent(url.split('/').pop()!)}`);
    expect(node).to.be.an('object');
    const { ipv4 } = (await assigned).detail;
    expect(inTailnetRange(ipv4!), String(ipv4)).to.equal(true);
  });
});

describe('network errors', () => {
  let vm: LinuxVm | undefined;
  afterEach(() => vm?.remove());

  it('rejects a logout still waiting for the node when the network is stopped (AbortError)', async () => {
    const info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info, info.authKey);
    const assigned = nextEvent(vm, 'ip-assigned', 5 * MINUTE);
    await vm.start();
    await assigned;
    const logout = vm.logout();
    vm.network = 'none'; // stops the node before it can answer
    const outcome = await logout.then(
      () => 'resolved',
      (error: Error) => error.name,
    );
    expect(outcome).to.equal('AbortError');
  });

  it('reports a bad auth key as auth-failed and keeps the VM running', async () => {
    const info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info, `hskey-auth-${'A'.repeat(12)}-${'b'.repeat(64)}`);
    const error = nextEvent(vm, 'error', 3 * MINUTE);
    await vm.start();
    const { detail } = await error;
    expect(detail.code).to.equal('auth-failed', detail.message);
    expect(vm.state).to.equal('ready');
  });

  it('reports an unreachable control server as control-unreachable', async () => {
    const info = await getJson<TailnetInfo>('/__tailnet/info');
    vm = tailscaleVm(info, info.authKey, 'http://127.0.0.1:9');
    const error = nextEvent(vm, 'error', 3 * MINUTE);
    void vm.start();
    const { detail } = await error;
    expect(detail.code).to.equal('control-unreachable', detail.message);
    expect(detail.message).to.include('127.0.0.1:9');
  });
});
