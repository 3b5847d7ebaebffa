/**
 * Makes the guest's FLUSH CACHE wait for IndexedDB.
 *
 * v86 0.5.462's IDE (src/ide.js, `ata_command`) answers FLUSH CACHE (0xE7) and FLUSH CACHE EXT (0xEA)
 * at once with "ready" and an interrupt, without telling the disk object: a guest's `sync`/fsync
 * would return while its data is still only in our memory. We replace the command for our drive:
 * the drive stays busy (BSY) until the overlay's flush() has committed, then reports success — or an
 * aborted command, so the guest's fsync fails honestly — and raises the completion interrupt.
 * Upstream fix: let ata_command call an optional `buffer.flush(callback)` for 0xE7/0xEA and complete
 * the command from the callback (as it does for reads and writes); then drop this hook.
 *
 * The guest only sends FLUSH CACHE to a drive that says it has a volatile write cache: see
 * advertiseWriteCache() in ../machine.ts (applied by the image builder's snapshot too).
 */

const ATA_FLUSH_CACHE = 0xe7;
const ATA_FLUSH_CACHE_EXT = 0xea;
const STATUS_BUSY = 0xd0; // BSY | DRDY | DSC
const STATUS_READY = 0x50; // DRDY | DSC
const STATUS_ERROR = 0x41; // DRDY | ERR
const ERROR_ABORTED = 0x04; // ABRT

/** The parts of v86's IDEInterface we touch (not in its typings). */
interface IdeDrive {
  buffer: unknown;
  current_command: number;
  status_reg: number;
  error_reg: number;
  push_irq(): void;
  ata_command(command: number): void;
}

interface FlushableDisk {
  flush(): Promise<void>;
}

/** Hooks FLUSH CACHE of the IDE drive whose disk object is `disk`. */
export function hookFlushCache(emulator: unknown, disk: FlushableDisk): void {
  const drive = (emulator as { v86?: { cpu?: { devices?: { ide?: { primary?: { master?: IdeDrive } } } } } }).v86?.cpu?.devices
    ?.ide?.primary?.master;
  if (!drive || drive.buffer !== disk) throw new Error('the IDE drive of the disk was not found in this v86 build');
  // IDEInterface objects are sealed, so the method is replaced on the prototype; the check on
  // `buffer` keeps every other drive (e.g. a CD-ROM) on v86's own code.
  const prototype = Object.getPrototypeOf(drive) as IdeDrive;
  const original = prototype.ata_command;
  prototype.ata_command = function (this: IdeDrive, command: number) {
    if ((command !== ATA_FLUSH_CACHE && command !== ATA_FLUSH_CACHE_EXT) || this.buffer !== disk) {
      return original.call(this, command);
    }
    this.current_command = command;
    this.error_reg = 0;
    this.status_reg = STATUS_BUSY;
    disk.flush().then(
      () => {
        this.status_reg = STATUS_READY;
        this.push_irq();
      },
      () => {
        this.error_reg = ERROR_ABORTED;
        this.status_reg = STATUS_ERROR;
        this.push_irq();
      },
    );
  };
}
