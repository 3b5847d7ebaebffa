// Hand-made IPv4 packets for tests of the Tailscale packet port (browser and Node): ICMP echo, UDP,
// TCP SYN, a DNS A query, and a parser for what comes back. Every message on the port is one raw IP
// packet in an ArrayBuffer.

export function ipv4ToBytes(s) {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !(x >= 0 && x <= 255))) throw new Error(`not an IPv4 address: ${s}`);
  return p;
}
const ipv4ToString = (b, o) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

function sum16(bytes, start, end, acc = 0) {
  for (let i = start; i < end; i += 2) acc += (bytes[i] << 8) | (i + 1 < end ? bytes[i + 1] : 0);
  return acc;
}
function fold(acc) {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

let ipID = 1;
function ipv4(src, dst, proto, payload) {
  const b = new Uint8Array(20 + payload.length);
  const total = b.length;
  b.set([0x45, 0, total >> 8, total & 0xff, (ipID >> 8) & 0xff, ipID++ & 0xff, 0x40, 0, 64, proto, 0, 0]);
  b.set(ipv4ToBytes(src), 12);
  b.set(ipv4ToBytes(dst), 16);
  const c = fold(sum16(b, 0, 20));
  b[10] = c >> 8;
  b[11] = c & 0xff;
  b.set(payload, 20);
  return b;
}

// Checksum over the IPv4 pseudo-header and an L4 segment; writes it at `at` within the segment.
function l4Checksum(src, dst, proto, seg, at) {
  const pseudo = new Uint8Array(12);
  pseudo.set(ipv4ToBytes(src), 0);
  pseudo.set(ipv4ToBytes(dst), 4);
  pseudo[9] = proto;
  pseudo[10] = seg.length >> 8;
  pseudo[11] = seg.length & 0xff;
  let c = fold(sum16(seg, 0, seg.length, sum16(pseudo, 0, 12)));
  if (proto === 17 && c === 0) c = 0xffff;
  seg[at] = c >> 8;
  seg[at + 1] = c & 0xff;
}

export function icmpEcho(src, dst, id, seq, data = new Uint8Array(32)) {
  const m = new Uint8Array(8 + data.length);
  m.set([8, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff]);
  m.set(data, 8);
  const c = fold(sum16(m, 0, m.length));
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return ipv4(src, dst, 1, m);
}

export function udp(src, dst, sport, dport, data) {
  const u = new Uint8Array(8 + data.length);
  u.set([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, u.length >> 8, u.length & 0xff, 0, 0]);
  u.set(data, 8);
  l4Checksum(src, dst, 17, u, 6);
  return ipv4(src, dst, 17, u);
}

export function tcp(src, dst, sport, dport, { seq = 0, ack = 0, flags = 0x02, window = 65535, data = new Uint8Array(0) } = {}) {
  const opts = flags & 0x02 ? [2, 4, 0x04, 0xb0] : []; // MSS 1200 on SYN
  const hl = 20 + opts.length;
  const t = new Uint8Array(hl + data.length);
  const w = (o, v, n) => { for (let i = n - 1; i >= 0; i--) { t[o + i] = v & 0xff; v = Math.floor(v / 256); } };
  w(0, sport, 2); w(2, dport, 2); w(4, seq >>> 0, 4); w(8, ack >>> 0, 4);
  t[12] = (hl / 4) << 4;
  t[13] = flags;
  w(14, window, 2);
  t.set(opts, 20);
  t.set(data, hl);
  l4Checksum(src, dst, 6, t, 16);
  return ipv4(src, dst, 6, t);
}

export function dnsQueryA(name, id) {
  const labels = name.replace(/\.$/, '').split('.');
  const q = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const l of labels) q.push(l.length, ...new TextEncoder().encode(l));
  q.push(0, 0, 1, 0, 1);
  return new Uint8Array(q);
}

/** The A records of a DNS response (no compression-pointer loops: answers reference the question). */
export function dnsAnswersA(msg) {
  const n = (o) => (msg[o] << 8) | msg[o + 1];
  const skipName = (o) => { while (msg[o] !== 0) { if ((msg[o] & 0xc0) === 0xc0) return o + 2; o += msg[o] + 1; } return o + 1; };
  let o = 12;
  for (let i = 0; i < n(4); i++) o = skipName(o) + 4;
  const out = [];
  for (let i = 0; i < n(6); i++) {
    o = skipName(o);
    const type = n(o), len = n(o + 8);
    if (type === 1 && len === 4) out.push(ipv4ToString(msg, o + 10));
    o += 10 + len;
  }
  return { id: n(0), rcode: msg[3] & 0xf, answers: out };
}

/** Parses an IPv4 packet (returns null for anything else). */
export function parse(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (b.length < 20 || b[0] >> 4 !== 4) return { version: b[0] >> 4, length: b.length };
  const ihl = (b[0] & 0xf) * 4;
  const p = { version: 4, proto: b[9], src: ipv4ToString(b, 12), dst: ipv4ToString(b, 16), length: b.length };
  const l4 = b.subarray(ihl);
  if (p.proto === 1) Object.assign(p, { icmpType: l4[0], id: (l4[4] << 8) | l4[5], seq: (l4[6] << 8) | l4[7] });
  if (p.proto === 17) Object.assign(p, { sport: (l4[0] << 8) | l4[1], dport: (l4[2] << 8) | l4[3], data: l4.subarray(8) });
  if (p.proto === 6) {
    const seq = ((l4[4] << 24) | (l4[5] << 16) | (l4[6] << 8) | l4[7]) >>> 0;
    const ack = ((l4[8] << 24) | (l4[9] << 16) | (l4[10] << 8) | l4[11]) >>> 0;
    Object.assign(p, { sport: (l4[0] << 8) | l4[1], dport: (l4[2] << 8) | l4[3], seq, ack, flags: l4[13], data: l4.subarray((l4[12] >> 4) * 4) });
  }
  return p;
}
