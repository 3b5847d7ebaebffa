// network="relay": the tiny guest's TCP and UDP flows terminated by lwIP in the emulator worker and carried
// over a real Wisp server on loopback (test/relay/servers.mjs, started by wtr-relay.mjs) to a local HTTP
// server, a UDP echo server and, by name, through the fake-IP resolver and the relay's own DNS lookups.
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import type { VmErrorDetail } from '../src/linux-vm/events.js';
import { DEBIAN, TINY, createVm, getJson, nextEvent, run } from './helpers.js';
import { type RelayInfo, relayInfo } from './relay/relay-info.js';

const MINUTE = 60_000;
const MiB = 1024 * 1024;

const lwipRequests = async () => (await getJson<{ count: number }>('/__requests?prefix=/wasm/dist/lwip/')).count;

/** Resolves with the first event of `type` whose detail passes `test`. */
function eventWhere<T>(vm: LinuxVm, type: string, test: (detail: T) => boolean, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching "${type}" event within ${timeoutMs} ms`)), timeoutMs);
    const listener = (event: Event) => {
      const detail = (event as CustomEvent<T>).detail;
      if (!test(detail)) return;
      clearTimeout(timer);
      vm.removeEventListener(type, listener);
      resolve(detail);
    };
    vm.addEventListener(type, listener);
  });
}

describe('network="relay" through a Wisp server on loopback', () => {
  let info: RelayInfo;
  let vm: LinuxVm;
  const states: string[] = [];
  const errors: VmErrorDetail[] = [];

  before(async function () {
    this.timeout(10 * MINUTE);
    info = await relayInfo();
    // Booted without a network first: nothing of lwIP may be fetched until the relay is switched on.
    const before = await lwipRequests();
    vm = createVm({ image: TINY, persist: 'none' });
    vm.addEventListener('network-state', (e) => states.push(e.detail.state));
    vm.addEventListener('error', (e) => errors.push(e.detail));
    await nextEvent(vm, 'ready', 8 * MINUTE);
    expect(await lwipRequests()).to.equal(before, 'lwIP wasm requests with network="none"');
  });

  after(() => vm?.remove());

  it('switched on in a running VM: loads lwIP once, connects, and assigns 10.0.2.15 (loading → starting → running)', async () => {
    const before = await lwipRequests();
    const assigned = nextEvent(vm, 'ip-assigned', 3 * MINUTE);
    vm.relayUrl = info.wispURL;
    vm.network = 'relay';
    const { detail } = await assigned;
    expect(detail).to.deep.equal({ ipv4: '10.0.2.15', ipv6: null, hostname: '' });
    expect(states).to.deep.equal(['loading', 'starting', 'running']);
    expect(vm.networkState).to.equal('running');
    expect(await lwipRequests()).to.equal(before + 1, 'lwIP wasm requests');
    expect(errors).to.deep.equal([]);
  });

  it('leases the guest 10.0.2.15/24 via 10.0.2.2 with DNS 10.0.2.3 and MTU 1500', async () => {
    const [, lease] = await run(vm, 'for i in $(seq 60); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[$(cat /run/linux-vm-net)]"', /^LEASE\[(.*)\]$/m, 2 * MINUTE);
    expect(lease).to.equal('linux-vm: eth0 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 mtu 1500');
  });

  it('resolves a name through the guest’s resolver (a fake IP in 198.18.0.0/15)', async () => {
    const [, address] = await run(vm, `echo "NS[$(nslookup ${info.webName} 2>&1 | grep -A3 '^Name' | grep -o '198\\.1[89]\\.[0-9.]*' | head -1)]"`, /^NS\[(.*)\]$/m, MINUTE);
    expect(address).to.match(/^198\.1[89]\.\d+\.\d+$/);
  });

  it('fetches the local HTTP page by name (DNS → fake IP → the relay resolves the name)', async () => {
    const [, body] = await run(vm, `echo "GOT[$(timeout 60 wget -qO- http://${info.webName}:${info.httpPort}/page 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(`${body}\n`).to.equal(info.page);
  });

  it('fetches the local HTTP page by IP', async () => {
    const [, body] = await run(vm, `echo "GOT[$(timeout 60 wget -qO- http://${info.hostIP}:${info.httpPort}/page 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(`${body}\n`).to.equal(info.page);
  });

  it('downloads 1 MiB intact (SHA-256)', async () => {
    const { sha256 } = await getJson<{ sha256: string }>(`/__relay/bytes?n=${MiB}`);
    const [, result] = await run(
      vm,
      `timeout 120 wget -qO /tmp/big http://${info.webName}:${info.httpPort}/bytes?n=${MiB}; echo "SUM[$(wc -c </tmp/big) $(sha256sum </tmp/big | cut -d' ' -f1)]"`,
      /^SUM\[(.*)\]$/m,
      3 * MINUTE,
    );
    expect(result).to.equal(`${MiB} ${sha256}`);
  });

  it('uploads 1 MiB intact (an HTTP POST through nc, SHA-256 on the server)', async () => {
    // busybox wget --post-file stops at the first NUL byte, so the request is written by hand.
    const [, local] = await run(vm, 'dd if=/dev/urandom of=/tmp/up bs=1024 count=1024 2>/dev/null; echo "SUM[$(sha256sum </tmp/up | cut -d" " -f1)]"', /^SUM\[([0-9a-f]{64})\]$/m, MINUTE);
    const [, answer] = await run(
      vm,
      `echo "UP[$({ printf 'POST /sink HTTP/1.0\\r\\nContent-Length: ${MiB}\\r\\n\\r\\n'; cat /tmp/up; } | timeout 120 nc ${info.webName} ${info.httpPort} | tail -1 | cut -d' ' -f2-)]"`,
      /^UP\[(.*)\]$/m, // short enough not to wrap at 80 columns
      3 * MINUTE,
    );
    expect(answer).to.equal(`${MiB} ${local}`);
  });

  it('carries UDP to a real IP over a Wisp UDP stream (nslookup against the test DNS server)', async () => {
    // Not the guest's resolver (which would answer with a fake IP): the test's DNS server behind the relay.
    const [, answer] = await run(vm, `echo "UDP[$(timeout 30 nslookup ${info.webName} ${info.hostIP}:${info.dnsPort} 2>&1 | grep -A1 '^Name' | tail -1)]"`, /^UDP\[(.*)\]$/m, MINUTE);
    expect(answer).to.match(/^Address:?\s+127\.0\.0\.1$/);
  });

  it('resets a connection the relay cannot open (nothing listens there)', async () => {
    const [, answer] = await run(vm, `echo "REFUSED[$(timeout 30 wget -qO- http://${info.hostIP}:9/ 2>&1 | head -1)]"`, /^REFUSED\[(.*)\]$/m, MINUTE);
    expect(answer).to.match(/refused|reset|error/i);
  });

  it('survives losing the relay: relay-unreachable, starting, then running again on its own, and flows work', async () => {
    const lost = nextEvent(vm, 'error', MINUTE);
    const starting = eventWhere<{ state: string }>(vm, 'network-state', (d) => d.state === 'starting', MINUTE);
    const running = eventWhere<{ state: string }>(vm, 'network-state', (d) => d.state === 'running', MINUTE);
    const { dropped } = await getJson<{ dropped: number }>('/__relay/drop');
    expect(dropped).to.equal(1);
    const { detail } = await lost;
    expect(detail.code).to.equal('relay-unreachable');
    expect(detail.message).to.include('reconnecting');
    await starting;
    await running;
    const [, body] = await run(vm, `echo "GOT[$(timeout 60 wget -qO- http://${info.webName}:${info.httpPort}/page 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(`${body}\n`).to.equal(info.page);
  });

  it('reports a bad relay-url as relay-url-invalid and an unreachable relay as relay-unreachable; the VM keeps running', async () => {
    const invalid = nextEvent(vm, 'error', MINUTE);
    vm.relayUrl = 'http://127.0.0.1:9/';
    expect((await invalid).detail.code).to.equal('relay-url-invalid');
    expect(vm.networkState).to.equal('none');

    const unreachable = nextEvent(vm, 'error', MINUTE);
    const stopped = eventWhere<{ state: string }>(vm, 'network-state', (d) => d.state === 'stopped', MINUTE);
    vm.relayUrl = 'ws://127.0.0.1:9/';
    const { detail } = await unreachable;
    expect(detail.code).to.equal('relay-unreachable', detail.message);
    expect(detail.message).to.include('ws://127.0.0.1:9/');
    await stopped;
    expect(vm.state).to.equal('ready');
    const [, alive] = await run(vm, 'echo "ALIVE[$((6*7))]"', /^ALIVE\[(\d+)\]$/m);
    expect(alive).to.equal('42');
  });

  it('works again once relay-url points at the relay', async () => {
    const assigned = nextEvent(vm, 'ip-assigned', 2 * MINUTE);
    vm.relayUrl = info.wispURL;
    await assigned;
    const [, body] = await run(vm, `echo "GOT[$(timeout 60 wget -qO- http://${info.webName}:${info.httpPort}/page 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(`${body}\n`).to.equal(info.page);
  });
});

describe('network="relay" with the debian image (glibc resolver, curl, python3 sockets)', () => {
  let info: RelayInfo;
  let vm: LinuxVm;

  before(async function () {
    this.timeout(15 * MINUTE);
    info = await relayInfo();
    // Set from the start this time (the tiny suite switches it on in a running VM).
    vm = createVm({ loading: 'manual', image: DEBIAN, persist: 'none', network: 'relay', 'relay-url': info.wispURL });
    const assigned = nextEvent(vm, 'ip-assigned', 14 * MINUTE);
    await vm.start();
    await assigned;
    await run(vm, 'for i in $(seq 60); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[$(cat /run/linux-vm-net)]"', /^LEASE\[.*\]$/m, 2 * MINUTE);
  });

  after(() => vm?.remove());

  it('resolves through glibc (A and AAAA asked together) to a fake IP, and curl fetches the page by name', async () => {
    const [, address] = await run(vm, `echo "HOST[$(getent ahostsv4 ${info.webName} | head -1 | cut -d' ' -f1)]"`, /^HOST\[(.*)\]$/m, MINUTE);
    expect(address).to.match(/^198\.1[89]\.\d+\.\d+$/);
    const [, body] = await run(vm, `echo "GOT[$(curl -sS -m 60 http://${info.webName}:${info.httpPort}/page 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(`${body}\n`).to.equal(info.page);
  });

  it('sends UDP from python3 to the echo server by IP and by name (a fake IP relayed by name)', async () => {
    const script = (host: string) =>
      `python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20); s.sendto(b'hi', ('${host}', ${info.udpEchoPort})); print('UDP[' + s.recv(100).decode() + ']')"`;
    for (const host of [info.hostIP, info.webName]) {
      const [, answer] = await run(vm, script(host), /^UDP\[(.*)\]$/m, 2 * MINUTE);
      expect(answer, host).to.equal('echo:hi');
    }
  });
});
