// network="lan": VMs in pages of one origin (here: iframes, each its own page like a tab) share a virtual LAN
// over a BroadcastChannel; each VM holds a Web Lock on its address. Real tiny guests serve and fetch over it.
import { expect } from '@esm-bundle/chai';
import { LanNetwork, lanLockName } from '../src/net/lan-network.js';
import { formatIpv4, parseIpv4 } from '../src/net/packets.js';
import { TINY, randomBytes, run, sha256 } from './helpers.js';
import { VmPage } from './vm-page.js';

const MINUTE = 60_000;
const KiB = 1024;

const heldLocks = async () => ((await navigator.locks.query()).held ?? []).map((lock) => lock.name ?? '');

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A tab with a tiny VM on LAN `lan`; resolves with its address once it is at its prompt and has one. */
async function lanTab(lan: string): Promise<{ page: VmPage; ipv4: string }> {
  const page = await new VmPage({ image: TINY, network: 'lan', lan, persist: 'none' }).open();
  const assigned = await page.next('ip-assigned');
  await page.next('ready');
  return { page, ipv4: assigned.detail.ipv4 };
}

/** Waits for the guest's DHCP hook to have applied the lease; returns its summary line. */
async function guestLease(page: VmPage): Promise<string> {
  const [, lease] = await run(
    page.vm,
    'for i in $(seq 90); do [ -e /run/linux-vm-net ] && break; sleep 1; done; echo "LEASE[$(cat /run/linux-vm-net)]"',
    /^LEASE\[(.*)\]$/m,
    3 * MINUTE,
  );
  return lease!;
}

/** wget's exit status and what it fetched from `ipv4` within 15 s, as "rc=N body". */
async function tryFetch(page: VmPage, ipv4: string): Promise<string> {
  const command = `rm -f /tmp/try; timeout 15 wget -qO /tmp/try http://${ipv4}/ 2>/dev/null; echo "TRY[rc=$? $(cat /tmp/try 2>/dev/null)]"`;
  const [, result] = await run(page.vm, command, /^TRY\[(.*)\]$/m, 2 * MINUTE);
  return result!;
}

describe('network="lan" between two tabs', function () {
  this.timeout(20 * MINUTE);
  const lan = `test-lan-${Math.random().toString(36).slice(2, 8)}`;
  let a: { page: VmPage; ipv4: string };
  let b: { page: VmPage; ipv4: string };
  const pages: VmPage[] = [];

  before(async () => {
    // One after the other: two guests booting at once on two shared cores only slow each other down.
    a = await lanTab(lan);
    pages.push(a.page);
    b = await lanTab(lan);
    pages.push(b.page);
  });

  after(() => pages.forEach((page) => page.close()));

  it('gives each VM its own address in 10.88.0.0/16 (ip-assigned, network-state starting → running)', async () => {
    for (const { page, ipv4 } of [a, b]) {
      expect(ipv4).to.match(/^10\.88\.\d+\.\d+$/);
      expect(ipv4).not.to.equal('10.88.0.1', 'the switch’s address');
      const assigned = page.events.filter((e) => e.type === 'ip-assigned');
      expect(assigned.map((e) => e.detail)).to.deep.equal([{ ipv4, ipv6: null, hostname: '' }]);
      expect(page.events.filter((e) => e.type === 'network-state').map((e) => e.detail.state)).to.deep.equal(['starting', 'running']);
      expect(page.vm.networkState).to.equal('running');
    }
    expect(a.ipv4).not.to.equal(b.ipv4);
    const held = await heldLocks();
    expect(held).to.include(lanLockName(lan, parseIpv4(a.ipv4)));
    expect(held).to.include(lanLockName(lan, parseIpv4(b.ipv4)));
  });

  it('leases the address to the guest by DHCP: /16, router 10.88.0.1, no DNS, MTU 1500', async () => {
    expect(await guestLease(a.page)).to.equal(`linux-vm: eth0 ${a.ipv4}/16 via 10.88.0.1 dns none mtu 1500`);
    expect(await guestLease(b.page)).to.equal(`linux-vm: eth0 ${b.ipv4}/16 via 10.88.0.1 dns none mtu 1500`);
  });

  it('a guest fetches a page that the guest in the other tab serves (busybox httpd ← wget)', async () => {
    const content = `lan-${crypto.randomUUID()}`;
    await run(a.page.vm, `mkdir -p /srv && echo ${content} >/srv/index.html && httpd -p 80 -h /srv && echo "HTTPD[ok]"`, /^HTTPD\[ok\]$/m);
    const [, body] = await run(b.page.vm, `echo "GOT[$(timeout 60 wget -qO- http://${a.ipv4}/ 2>&1)]"`, /^GOT\[(.*)\]$/m, 2 * MINUTE);
    expect(body).to.equal(content);
  });

  it('moves a 256 KiB random file from one guest to the other over HTTP intact (checked with upload/download)', async () => {
    const bytes = randomBytes(256 * KiB);
    await a.page.vm.upload(new Blob([bytes]), '/srv/blob.bin');
    await run(b.page.vm, `rm -f /root/blob.bin; timeout 120 wget -qO /root/blob.bin http://${a.ipv4}/blob.bin; echo "WGET[$?]"`, /^WGET\[(\d+)\]$/m, 3 * MINUTE);
    const copy = await b.page.vm.download('/root/blob.bin');
    expect(copy.size).to.equal(bytes.length);
    expect(await sha256(copy)).to.equal(await sha256(bytes));
  });

  it('a VM on a LAN of another name cannot reach it', async () => {
    const other = await lanTab(`${lan}-other`);
    pages.push(other.page);
    // Another LAN is another address space: the same address there would make this test meaningless.
    expect(other.ipv4).not.to.equal(a.ipv4);
    await guestLease(other.page);
    expect(await tryFetch(other.page, a.ipv4)).to.match(/^rc=[1-9]\d* $/, 'a failed wget and no page');
    other.page.close();
  });

  it('switching the network off leaves the LAN: the address lock is released, network-state none', async () => {
    const lock = lanLockName(lan, parseIpv4(b.ipv4));
    b.page.vm.network = 'none';
    await waitFor(async () => !(await heldLocks()).includes(lock), `release of ${lock}`);
    expect(b.page.vm.networkState).to.equal('none');
    expect(b.page.events.filter((e) => e.type === 'network-state').at(-1)!.detail.state).to.equal('none');
    // The guest's connection is gone: A is out of reach.
    expect(await tryFetch(b.page, a.ipv4)).to.match(/^rc=[1-9]\d* $/, 'a failed wget and no page');
  });

  it('stopping a VM frees its address: the lock is released and a newcomer can take exactly that address', async () => {
    const address = parseIpv4(a.ipv4);
    const lock = lanLockName(lan, address);
    // While A runs, a newcomer that wants A's address gets another one.
    const taken = await claim(lan, address);
    expect(taken.address).not.to.equal(address);
    taken.lan.close();
    a.page.vm.stop();
    await waitFor(async () => !(await heldLocks()).includes(lock), `release of ${lock}`);
    const newcomer = await claim(lan, address);
    newcomer.lan.close();
    expect(formatIpv4(newcomer.address)).to.equal(a.ipv4);
  });
});

/** A LAN member of this page (what an emulator worker runs) that starts looking for an address at `first`. */
function claim(name: string, first: number): Promise<{ lan: LanNetwork; address: number }> {
  return new Promise((resolve, reject) => {
    const lan: LanNetwork = new LanNetwork(
      name,
      { onAddress: (address) => resolve({ lan, address }), onPacket: () => {}, onError: reject },
      { firstCandidate: first },
    );
  });
}
