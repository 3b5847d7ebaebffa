import { expect } from '@esm-bundle/chai';
import { ManifestError, parseManifest } from '../../src/manifest.js';

const base = 'https://example.test/images/tiny/manifest.json';
const valid = {
  format: 1,
  name: 'tiny',
  id: 'tiny-123',
  memoryMiB: 128,
  bios: 'bios.bin',
  vgaBios: 'vgabios.bin',
  kernel: 'vmlinuz',
  initrd: '../shared/initrd.img',
  cmdline: 'console=ttyS0',
  console: 'virtio',
  disk: { url: 'https://cdn.test/disk.img', size: 1048576, sha256: 'a'.repeat(64) },
};

describe('parseManifest', () => {
  it('resolves every URL against the manifest URL', () => {
    const m = parseManifest(valid, base);
    expect(m.bios).to.equal('https://example.test/images/tiny/bios.bin');
    expect(m.kernel).to.equal('https://example.test/images/tiny/vmlinuz');
    expect(m.initrd).to.equal('https://example.test/images/shared/initrd.img');
    expect(m.disk).to.deep.equal({ url: 'https://cdn.test/disk.img', size: 1048576, sha256: 'a'.repeat(64) });
    expect(m.memoryMiB).to.equal(128);
    expect(m.console).to.equal('virtio');
  });

  it('defaults the console to serial and allows no initrd or disk', () => {
    const { initrd: _i, disk: _d, console: _c, ...minimal } = valid;
    const m = parseManifest(minimal, base);
    expect(m.console).to.equal('serial');
    expect(m.acpi).to.equal(false);
    expect(m.initrd).to.equal(undefined);
    expect(m.disk).to.equal(undefined);
  });

  const broken: [string, unknown, RegExp][] = [
    ['an array', [], /JSON object/],
    ['an unknown format', { ...valid, format: 2 }, /format 2/],
    ['a missing kernel', { ...valid, kernel: undefined }, /"kernel"/],
    ['an empty bios', { ...valid, bios: '' }, /"bios"/],
    ['fractional memory', { ...valid, memoryMiB: 12.5 }, /memoryMiB/],
    ['absurd memory', { ...valid, memoryMiB: 1e6 }, /memoryMiB/],
    ['an unknown console', { ...valid, console: 'vga' }, /console/],
    ['a non-boolean acpi', { ...valid, acpi: 'yes' }, /acpi/],
    ['a disk size that is not whole sectors', { ...valid, disk: { ...valid.disk, size: 1000 } }, /disk.size/],
    ['a bad disk checksum', { ...valid, disk: { ...valid.disk, sha256: 'xyz' } }, /disk.sha256/],
    ['a disk without url', { ...valid, disk: { size: 512, sha256: 'a'.repeat(64) } }, /disk.url/],
  ];
  for (const [what, json, message] of broken) {
    it(`rejects ${what}`, () => {
      expect(() => parseManifest(json, base)).to.throw(ManifestError, message);
    });
  }
});
