import { expect } from '@esm-bundle/chai';
import type { VmError } from '../../src/errors.js';
import { LAN_SWITCH_ADDRESS, LanNetwork, inLanSubnet, lanChannelName, lanLockName } from '../../src/net/lan-network.js';
import { ETHERTYPE_IPV4, buildEthernet, buildUdpPacket, formatIpv4, parseEthernet, parseIpv4, parseIpv4Packet } from '../../src/net/packets.js';
import { GuestNetwork } from '../../src/worker/guest-network.js';
import { dhcpMessage, dhcpReply, fakeNic, guestMac } from './net-frames.js';

/** A LAN name no other test uses (BroadcastChannels and locks are shared by the whole origin). */
const uniqueLan = () => `unit-${Math.random().toString(36).slice(2)}`;
const LAST_HOST = parseIpv4('10.88.255.254');
const FIRST_HOST = parseIpv4('10.88.0.2');

interface Member {
  lan: LanNetwork;
  address: number;
  packets: Uint8Array[];
  errors: VmError[];
}

const members: LanNetwork[] = [];
afterEach(() => members.splice(0).forEach((lan) => lan.close()));

/** Joins LAN `name` and resolves once the member holds an address. */
function join(name: string, firstCandidate?: number): Promise<Member> {
  return new Promise((resolve, reject) => {
    const packets: Uint8Array[] = [];
    const errors: VmError[] = [];
    const timer = setTimeout(() => reject(new Error('no address within 5 s')), 5000);
    const lan: LanNetwork = new LanNetwork(
      name,
      {
        onAddress: (address) => {
          clearTimeout(timer);
          resolve({ lan, address, packets, errors });
        },
        onPacket: (packet) => packets.push(packet.slice()),
        onError: (error) => errors.push(error),
      },
      { firstCandidate },
    );
    members.push(lan);
  });
}

const heldLocks = async () => ((await navigator.locks.query()).held ?? []).map((lock) => lock.name ?? '');
const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));
const udp = (from: number, to: number, bytes = [1, 2, 3]) => buildUdpPacket(from, to, 4000, 5000, new Uint8Array(bytes));

describe('LanNetwork (network="lan": BroadcastChannel + Web Locks)', () => {
  it('gives two members distinct addresses in 10.88.0.0/16, each held by a Web Lock', async () => {
    const name = uniqueLan();
    const first = parseIpv4('10.88.7.7');
    const a = await join(name, first);
    const b = await join(name, first);
    expect(formatIpv4(a.address)).to.equal('10.88.7.7');
    expect(formatIpv4(b.address)).to.equal('10.88.7.8', 'the next free address');
    expect(a.lan.ipv4).to.equal(a.address);
    const held = await heldLocks();
    expect(held).to.include(lanLockName(name, a.address));
    expect(held).to.include(lanLockName(name, b.address));
  });

  it('picks a random address in the subnet by default, never the switch or the broadcast address', async () => {
    const name = uniqueLan();
    const addresses = await Promise.all([join(name), join(name), join(name)]).then((all) => all.map((m) => m.address));
    expect(new Set(addresses).size).to.equal(3);
    for (const address of addresses) {
      expect(inLanSubnet(address), formatIpv4(address)).to.equal(true);
      expect(address).to.be.within(FIRST_HOST, LAST_HOST);
    }
  });

  it('wraps around the subnet: after the last host address comes 10.88.0.2', async () => {
    const name = uniqueLan();
    await join(name, LAST_HOST);
    const next = await join(name, LAST_HOST);
    expect(formatIpv4(next.address)).to.equal('10.88.0.2');
  });

  it('frees the address when a member leaves: the next member gets it, and the channel is closed', async () => {
    const name = uniqueLan();
    const first = parseIpv4('10.88.1.1');
    const a = await join(name, first);
    a.lan.close();
    a.lan.close(); // twice is harmless
    await settle(20);
    expect(await heldLocks()).not.to.include(lanLockName(name, first));
    const b = await join(name, first);
    expect(b.address).to.equal(first);
    // A packet for b's address reaches b, not the departed a (whose channel is closed).
    const c = await join(name);
    c.lan.send(udp(c.address, first));
    await settle();
    expect(b.packets).to.have.length(1);
    expect(a.packets).to.have.length(0);
  });

  it('a member closed while it claims its address never reports one and holds no lock', async () => {
    const name = uniqueLan();
    let reported = false;
    const lan = new LanNetwork(name, { onAddress: () => (reported = true), onPacket: () => {}, onError: () => {} });
    lan.close();
    await settle();
    expect(reported).to.equal(false);
    expect((await heldLocks()).filter((lock) => lock.startsWith(`${lanChannelName(name)}:`))).to.deep.equal([]);
  });

  it('delivers a packet only to the member it is addressed to, and only on the same LAN', async () => {
    const name = uniqueLan();
    const a = await join(name, parseIpv4('10.88.2.1'));
    const b = await join(name, parseIpv4('10.88.2.2'));
    const c = await join(name, parseIpv4('10.88.2.3'));
    const elsewhere = await join(uniqueLan(), parseIpv4('10.88.2.2'));
    const packet = udp(a.address, b.address, [9, 8, 7]);
    a.lan.send(packet);
    await settle();
    expect(b.packets.map((p) => Array.from(p))).to.deep.equal([Array.from(packet)]);
    expect(c.packets).to.have.length(0);
    expect(a.packets).to.have.length(0);
    expect(elsewhere.packets).to.have.length(0, 'another LAN with the same address');
  });

  it('sends only the guest’s own packets to other members’ addresses', async () => {
    const name = uniqueLan();
    const a = await join(name, parseIpv4('10.88.3.1'));
    const b = await join(name, parseIpv4('10.88.3.2'));
    a.lan.send(udp(parseIpv4('10.88.3.9'), b.address)); // spoofed source
    a.lan.send(udp(a.address, LAN_SWITCH_ADDRESS)); // the switch is no member
    a.lan.send(udp(a.address, parseIpv4('10.88.255.255')));
    a.lan.send(udp(a.address, parseIpv4('8.8.8.8')));
    a.lan.send(new Uint8Array([0x45, 0, 0]));
    const heard: unknown[] = [];
    const spy = new BroadcastChannel(lanChannelName(name));
    spy.onmessage = (event) => heard.push(event.data);
    a.lan.send(udp(a.address, b.address));
    await settle();
    spy.close();
    expect(heard).to.have.length(1);
    expect(b.packets).to.have.length(1);
  });

  it('ignores malformed and foreign messages on the channel without throwing', async () => {
    const name = uniqueLan();
    const a = await join(name, parseIpv4('10.88.4.1'));
    const errors: unknown[] = [];
    const onError = (event: ErrorEvent) => errors.push(event.message);
    window.addEventListener('error', onError);
    const intruder = new BroadcastChannel(lanChannelName(name));
    const good = udp(parseIpv4('10.88.4.2'), a.address);
    const truncated = good.slice(0, 30); // total length says more
    for (const message of [
      'hello',
      null,
      { type: 'packet', data: good },
      good, // a view, not an ArrayBuffer
      new ArrayBuffer(0),
      truncated.buffer,
      udp(parseIpv4('192.168.1.1'), a.address).buffer, // from outside the subnet
      udp(a.address, a.address).buffer, // from its own address
      udp(parseIpv4('10.88.4.2'), parseIpv4('10.88.4.3')).buffer, // for someone else
      new ArrayBuffer(100_000),
    ]) {
      intruder.postMessage(message);
    }
    intruder.postMessage(good.slice().buffer);
    await settle(200);
    intruder.close();
    window.removeEventListener('error', onError);
    expect(errors).to.deep.equal([]);
    expect(a.packets.map((p) => Array.from(p))).to.deep.equal([Array.from(good)]);
  });
});

describe('GuestNetwork on a LAN', () => {
  it('leases the LAN address by DHCP (/16, router 10.88.0.1, no DNS, MTU 1500) and carries packets between two guests', async () => {
    const name = uniqueLan();
    const networks = [new GuestNetwork(), new GuestNetwork()];
    const nics = networks.map((network) => {
      const nic = fakeNic();
      network.connectNic(nic.nic);
      return nic;
    });
    const addresses = await Promise.all(
      networks.map(
        (network, i) =>
          new Promise<string>((resolve, reject) =>
            network.joinLan(name, { onAddress: resolve, onError: reject }, { firstCandidate: parseIpv4(`10.88.5.${i + 1}`) }),
          ),
      ),
    );
    try {
      expect(addresses).to.deep.equal(['10.88.5.1', '10.88.5.2']);
      nics[0]!.guestSends(dhcpMessage(1));
      nics[1]!.guestSends(dhcpMessage(1));
      const offer = dhcpReply(nics[0]!.received[0]!);
      expect(offer.yiaddr).to.equal('10.88.5.1');
      expect(Array.from(offer.options.get(1)!)).to.deep.equal([255, 255, 0, 0]);
      expect(Array.from(offer.options.get(3)!)).to.deep.equal([10, 88, 0, 1]);
      expect(Array.from(offer.options.get(54)!)).to.deep.equal([10, 88, 0, 1], 'server identifier');
      expect(offer.options.has(6), 'a DNS option').to.equal(false);
      expect(Array.from(offer.options.get(26)!)).to.deep.equal([0x05, 0xdc]);

      const switchMac = parseEthernet(nics[0]!.received[0]!)!.source;
      const packet = buildUdpPacket(parseIpv4(addresses[0]!), parseIpv4(addresses[1]!), 1234, 80, new Uint8Array([42]));
      nics[0]!.guestSends(buildEthernet(switchMac, guestMac, ETHERTYPE_IPV4, packet));
      for (let i = 0; i < 50 && nics[1]!.received.length < 2; i++) await settle(10);
      const frame = parseEthernet(nics[1]!.received[1]!)!;
      expect(frame.type).to.equal(ETHERTYPE_IPV4);
      expect(parseIpv4Packet(frame.payload)!.destination).to.equal(parseIpv4(addresses[1]!));
      expect(Array.from(frame.payload)).to.deep.equal(Array.from(packet));
    } finally {
      networks.forEach((network) => network.detach());
    }
  });

  it('leaves the LAN on detach: the lock is released and the lease withdrawn; a tailnet address is ignored meanwhile', async () => {
    const name = uniqueLan();
    const network = new GuestNetwork();
    const { nic, received, guestSends } = fakeNic();
    network.connectNic(nic);
    const address = await new Promise<string>((resolve, reject) =>
      network.joinLan(name, { onAddress: resolve, onError: reject }, { firstCandidate: parseIpv4('10.88.6.1') }),
    );
    expect(network.setAddress('100.64.0.9')).to.equal(true);
    guestSends(dhcpMessage(1));
    expect(dhcpReply(received[0]!).yiaddr).to.equal(address, 'the LAN assigns the address');
    expect(await heldLocks()).to.include(lanLockName(name, parseIpv4(address)));
    network.detach();
    await settle(20);
    expect(await heldLocks()).not.to.include(lanLockName(name, parseIpv4(address)));
    guestSends(dhcpMessage(1));
    expect(received).to.have.length(1, 'no DHCP answer after leaving');
  });
});
