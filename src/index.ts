export { LinuxVm, type GuestSocket } from './linux-vm/linux-vm.component.js';
export type { LinuxVmEventMap, VmErrorDetail, VmProgressDetail } from './linux-vm/events.js';
export { VmError } from './errors.js';
export type { ImageManifest } from './manifest.js';
export type { AssetKind, DiskUsage, ProgressPhase, VmErrorCode, VmState } from './protocol.js';
