import { expect } from '@esm-bundle/chai';
import { FakeDns, isFakeAddress } from '../../src/net/relay/fake-dns.js';

/** A DNS query for one question, as a stub resolver sends it (RD set). */
function query(name: string, type: number, id = 0x1234): Uint8Array {
  const labels = name.split('.').flatMap((label) => [label.length, ...Array.from(label, (c) => c.charCodeAt(0))]);
  return Uint8Array.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, type >> 8, type & 0xff, 0, 1]);
}

/** id, rcode, answer count and the A/PTR data of the first answer (after the echoed question). */
function read(response: Uint8Array, questionLength: number) {
  const view = new DataView(response.buffer, response.byteOffset);
  const answers = view.getUint16(6);
  const result = { id: view.getUint16(0), isResponse: (response[2]! & 0x80) !== 0, rcode: response[3]! & 0xf, answers, data: undefined as Uint8Array | undefined, ttl: 0 };
  if (answers > 0) {
    const at = questionLength; // the answer follows the question
    result.ttl = view.getUint32(at + 6);
    const length = view.getUint16(at + 10);
    result.data = response.subarray(at + 12, at + 12 + length);
  }
  return result;
}

describe('FakeDns', () => {
  it('answers A queries with remembered addresses from 198.18.0.0/15, the same name the same address', () => {
    const dns = new FakeDns();
    const q = query('web.relay.test', 1);
    const first = read(dns.answer(q)!, q.length);
    expect(first).to.include({ id: 0x1234, isResponse: true, rcode: 0, answers: 1 });
    const address = Array.from(first.data!).join('.');
    expect(isFakeAddress(address), address).to.equal(true);
    expect(dns.nameFor(address)).to.equal('web.relay.test');
    const again = read(dns.answer(query('WEB.relay.test', 1, 7))!, q.length);
    expect(Array.from(again.data!).join('.')).to.equal(address);
    const other = read(dns.answer(query('other.example', 1))!, query('other.example', 1).length);
    expect(Array.from(other.data!).join('.')).not.to.equal(address);
  });

  it('gives AAAA an empty answer, a dotted quad itself, PTR of a fake address its name', () => {
    const dns = new FakeDns();
    const aaaa = query('web.relay.test', 28);
    expect(read(dns.answer(aaaa)!, aaaa.length)).to.include({ rcode: 0, answers: 0 });
    const literal = query('192.0.2.7', 1);
    expect(Array.from(read(dns.answer(literal)!, literal.length).data!)).to.deep.equal([192, 0, 2, 7]);
    const address = dns.addressFor('named.example').split('.');
    const ptr = query(`${address.reverse().join('.')}.in-addr.arpa`, 12);
    const answer = read(dns.answer(ptr)!, ptr.length);
    expect(answer).to.include({ rcode: 0, answers: 1 });
    expect(String.fromCharCode(...answer.data!)).to.equal('\x05named\x07example\x00');
    const unknown = query('1.0.0.10.in-addr.arpa', 12);
    expect(read(dns.answer(unknown)!, unknown.length).rcode).to.equal(3);
  });

  it('rejects malformed input without throwing: short messages, responses, compression, truncation', () => {
    const dns = new FakeDns();
    expect(dns.answer(new Uint8Array(5))).to.equal(null);
    const response = query('a.b', 1);
    response[2]! |= 0x80;
    expect(dns.answer(response)).to.equal(null);
    const pointer = Uint8Array.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(read(dns.answer(pointer)!, 12).rcode).to.equal(1);
    const truncated = query('web.relay.test', 1).subarray(0, 20);
    expect(read(dns.answer(truncated)!, 12).rcode).to.equal(1);
    for (let n = 0; n < 200; n++) {
      const noise = crypto.getRandomValues(new Uint8Array(n));
      expect(() => dns.answer(noise)).not.to.throw();
    }
  });

  it('reuses the oldest addresses once the /15 is used up', () => {
    const dns = new FakeDns();
    const first = dns.addressFor('name-0.example');
    for (let i = 1; i < (1 << 17) - 2; i++) dns.addressFor(`name-${i}.example`);
    expect(dns.addressFor('one-more.example')).to.equal(first);
    expect(dns.nameFor(first)).to.equal('one-more.example');
  });
});
