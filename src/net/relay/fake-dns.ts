/**
 * The guest's DNS resolver in relay mode. A Wisp relay carries streams to host names, but offers no
 * way to look a name up, and many relays refuse UDP. So the resolver answers every A query itself
 * with a "fake IP" from 198.18.0.0/15 (reserved for benchmarking, never on the internet) and
 * remembers the name: a connection to that address is then opened to the name, and the relay
 * resolves it. AAAA and other types get an empty answer, so resolvers fall back to A.
 *
 * The price: every name "exists" to the guest, and a name that does not resolve fails at connect
 * time (the relay closes the stream; the guest sees a reset) rather than as NXDOMAIN.
 *
 * Queries are untrusted guest input: `answer()` returns null for anything it cannot parse.
 */
import { formatIpv4, parseIpv4 } from '../packets.js';

const FAKE_NETWORK = parseIpv4('198.18.0.0');
const FAKE_SIZE = 1 << 17; // a /15
/** Short: a name's address outlives the TTL here anyway, and a guest re-asking costs nothing. */
const ANSWER_TTL_SECONDS = 60;

const TYPE_A = 1;
const TYPE_PTR = 12;
const CLASS_IN = 1;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
const MAX_NAME_LENGTH = 253;

/** Whether an address is one the resolver hands out. */
export function isFakeAddress(address: string | number): boolean {
  let value: number;
  try {
    value = typeof address === 'number' ? address : parseIpv4(address);
  } catch {
    return false;
  }
  return (value & ~(FAKE_SIZE - 1)) >>> 0 === FAKE_NETWORK;
}

export class FakeDns {
  private readonly byName = new Map<string, number>();
  private readonly byAddress = new Map<number, string>();
  /** Offsets into the /15 (0 and the last are skipped); wraps around, reusing the oldest names' addresses. */
  private nextOffset = 1;

  /** The name a fake address stands for, or undefined (not a fake address, or forgotten). */
  nameFor(address: string): string | undefined {
    try {
      return this.byAddress.get(parseIpv4(address));
    } catch {
      return undefined;
    }
  }

  /** The fake address for a name (allocated on first use). */
  addressFor(name: string): string {
    const key = name.toLowerCase();
    let address = this.byName.get(key);
    if (address === undefined) {
      address = (FAKE_NETWORK + this.nextOffset) >>> 0;
      this.nextOffset = this.nextOffset + 1 >= FAKE_SIZE - 1 ? 1 : this.nextOffset + 1;
      const previous = this.byAddress.get(address);
      if (previous !== undefined) this.byName.delete(previous);
      this.byName.set(key, address);
      this.byAddress.set(address, key);
    }
    return formatIpv4(address);
  }

  /** The response to a DNS query message, or null when the message is not a query worth answering. */
  answer(query: Uint8Array): Uint8Array | null {
    if (query.length < 12) return null;
    const flags = (query[2]! << 8) | query[3]!;
    if (flags & 0x8000) return null; // a response, not a query
    const questions = (query[4]! << 8) | query[5]!;
    const opcode = (flags >>> 11) & 0xf;
    if (opcode !== 0) return response(query, 12, RCODE_NOTIMP, []);
    if (questions !== 1) return response(query, 12, RCODE_FORMERR, []);
    const question = readQuestion(query, 12);
    if (!question) return response(query, 12, RCODE_FORMERR, []);
    const { name, type, klass, end } = question;
    if (klass !== CLASS_IN) return response(query, end, RCODE_NOTIMP, []);
    if (type === TYPE_A) {
      // A literal address asked as a name (some tools do) is its own answer.
      const address = isDottedQuad(name) ? name : this.addressFor(name);
      return response(query, end, 0, [aRecord(address)]);
    }
    if (type === TYPE_PTR) {
      const known = this.reverse(name);
      return known ? response(query, end, 0, [ptrRecord(known)]) : response(query, end, RCODE_NXDOMAIN, []);
    }
    return response(query, end, 0, []); // AAAA, MX, …: the name exists, with no records of that type
  }

  private reverse(name: string): string | undefined {
    const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/i.exec(name);
    return match ? this.nameFor(`${match[4]}.${match[3]}.${match[2]}.${match[1]}`) : undefined;
  }
}

function isDottedQuad(name: string): boolean {
  try {
    parseIpv4(name);
    return true;
  } catch {
    return false;
  }
}

/** The question at `offset`: name (labels only; a query has no reason to compress), type, class. */
function readQuestion(message: Uint8Array, offset: number): { name: string; type: number; klass: number; end: number } | null {
  const labels: string[] = [];
  let position = offset;
  let length = 0;
  for (;;) {
    const size = message[position];
    if (size === undefined || size > 63) return null; // past the end, or a compression pointer
    position++;
    if (size === 0) break;
    if (position + size > message.length) return null;
    const label = String.fromCharCode(...message.subarray(position, position + size));
    labels.push(label);
    length += size + 1;
    if (length > MAX_NAME_LENGTH + 1) return null;
    position += size;
  }
  if (labels.length === 0 || position + 4 > message.length) return null;
  const type = (message[position]! << 8) | message[position + 1]!;
  const klass = (message[position + 2]! << 8) | message[position + 3]!;
  return { name: labels.join('.'), type, klass, end: position + 4 };
}

/** A response that echoes the query's header and question (up to `questionEnd`) and carries `answers`. */
function response(query: Uint8Array, questionEnd: number, rcode: number, answers: Uint8Array[]): Uint8Array {
  const hasQuestion = questionEnd > 12;
  const size = questionEnd + answers.reduce((sum, a) => sum + a.length, 0);
  const out = new Uint8Array(size);
  out.set(query.subarray(0, questionEnd));
  // QR=1, opcode echoed, AA=1, RD echoed, RA=1, rcode.
  out[2] = 0x80 | (query[2]! & 0x79) | 0x04;
  out[3] = 0x80 | rcode;
  out[4] = 0;
  out[5] = hasQuestion ? 1 : 0;
  out[6] = 0;
  out[7] = answers.length;
  out.fill(0, 8, 12); // no authority or additional records (an EDNS OPT in the query is not echoed)
  let position = questionEnd;
  for (const answer of answers) {
    out.set(answer, position);
    position += answer.length;
  }
  return out;
}

/** A resource record whose owner is the question's name (a pointer to offset 12). */
function record(type: number, data: Uint8Array): Uint8Array {
  const ttl = ANSWER_TTL_SECONDS;
  const header = [0xc0, 12, type >>> 8, type & 0xff, 0, CLASS_IN, ttl >>> 24, (ttl >>> 16) & 0xff, (ttl >>> 8) & 0xff, ttl & 0xff, data.length >>> 8, data.length & 0xff];
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}

function aRecord(address: string): Uint8Array {
  const value = parseIpv4(address);
  return record(TYPE_A, Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff));
}

function ptrRecord(name: string): Uint8Array {
  const parts = name.split('.').filter(Boolean);
  const data: number[] = [];
  for (const part of parts) data.push(part.length, ...Array.from(part, (c) => c.charCodeAt(0) & 0xff));
  data.push(0);
  return record(TYPE_PTR, Uint8Array.from(data));
}
