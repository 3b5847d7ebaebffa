import { expect } from '@esm-bundle/chai';
import { V86 } from 'v86';
import {
  FIRMWARE_END,
  V86_VERSION,
  WAIT_MARK,
  goLine,
  machineOptions,
  snapshotKey,
  type MachineSpec,
} from '../../src/worker/machine.js';

const spec: MachineSpec = { memoryMiB: 96, acpi: false, console: 'virtio' };

describe('machine', () => {
  it('names the v86 release that is installed (snapshots are keyed by it)', async () => {
    const installed = await (await fetch('/node_modules/v86/package.json')).json();
    expect(V86_VERSION).to.equal(installed.version);
  });

  it('keys snapshots by image build and every machine property', async () => {
    const key = await snapshotKey('tiny-1', spec);
    expect(key).to.match(/^[0-9a-f]{64}$/);
    expect(await snapshotKey('tiny-1', { ...spec })).to.equal(key);
    const variants = [
      snapshotKey('tiny-2', spec),
      snapshotKey('tiny-1', { ...spec, memoryMiB: 128 }),
      snapshotKey('tiny-1', { ...spec, acpi: true }),
      snapshotKey('tiny-1', { ...spec, console: 'serial' }),
      snapshotKey('tiny-1', { ...spec, diskSize: 512 }),
    ];
    for (const other of await Promise.all(variants)) expect(other).to.not.equal(key);
  });

  it('builds v86 options for a cold boot and for a restore', () => {
    const bios = { buffer: new ArrayBuffer(8) };
    const cold = machineOptions(spec, { bios, vgaBios: bios, kernel: bios, cmdline: 'console=ttyS0' }, '/v86.wasm');
    expect(cold.memory_size).to.equal(96 * 1024 * 1024);
    expect(cold.bzimage).to.equal(bios);
    expect(cold.cmdline).to.equal('console=ttyS0');
    expect(cold.virtio_console).to.deep.equal({ type: 'none' });
    expect(cold.autostart).to.equal(false);
    // Every machine has a virtio NIC on the bus (no relay): cold boots and snapshots alike.
    expect(cold.net_device).to.deep.equal({ type: 'virtio' });
    expect(cold.filesystem, 'the 9p share of upload()/download()').to.deep.equal({});
    const restore = machineOptions(spec, { bios, vgaBios: bios }, '/v86.wasm');
    expect(restore).to.not.have.property('bzimage');
    expect(restore.memory_size).to.equal(cold.memory_size);
    expect(restore.net_device).to.deep.equal(cold.net_device);
  });

  it('answers the pause mark with the clock and 32 bytes of fresh entropy', () => {
    expect(WAIT_MARK).to.equal('\x1b]7701;wait\x07');
    const line = goLine(1_700_000_000_500);
    expect(line).to.match(/^go 1700000000 [0-9a-f]{64}\n$/);
    expect(goLine()).to.not.equal(goLine());
  });

  // restoreFreshMachine() zeroes only the RAM below FIRMWARE_END before a restore: a new machine (the worker's,
  // with the images' options) must have written nothing above it.
  it('creates machines whose RAM is all zeros above the firmware', async () => {
    const file = async (url: string) => ({ buffer: await (await fetch(url)).arrayBuffer() });
    const files = { bios: await file('/images/tiny/bios.bin'), vgaBios: await file('/images/tiny/vgabios.bin') };
    const options = machineOptions({ memoryMiB: 96, acpi: true, console: 'virtio', diskSize: 1 << 20 }, files, '/node_modules/v86/build/v86.wasm');
    options.hda = { buffer: new ArrayBuffer(1 << 20) };
    const emulator = new V86(options);
    try {
      await new Promise<void>((resolve) => emulator.add_listener('emulator-loaded', () => resolve()));
      const ram = (emulator as unknown as { v86: { cpu: { mem8: Uint8Array } } }).v86.cpu.mem8;
      expect(ram.byteLength).to.equal(96 * 1024 * 1024);
      const words = new Uint32Array(ram.buffer, ram.byteOffset, ram.byteLength / 4);
      expect(words.subarray(0, FIRMWARE_END / 4).some((w) => w !== 0), 'the BIOS images are below FIRMWARE_END').to.equal(true);
      const firstNonZero = words.subarray(FIRMWARE_END / 4).findIndex((w) => w !== 0);
      expect(firstNonZero, 'first non-zero word above FIRMWARE_END').to.equal(-1);
    } finally {
      await emulator.destroy();
    }
  });
});
