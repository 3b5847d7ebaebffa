import type { VmErrorCode, VmErrorInfo } from './protocol.js';

/** An error with a machine-readable code; what `start()` rejects with and `error` events carry. */
export class VmError extends Error implements VmErrorInfo {
  override name = 'VmError';
  constructor(
    readonly code: VmErrorCode,
    message: string,
  ) {
    super(message);
  }

  toJSON(): VmErrorInfo {
    return { code: this.code, message: this.message };
  }
}
