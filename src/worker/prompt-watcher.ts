/**
 * Finds a byte marker in a stream of chunks, including a marker split across chunks.
 * Used to notice the guest's first shell prompt in console output.
 */
export class PromptWatcher {
  private readonly marker: Uint8Array;
  /** How many leading bytes of the marker the end of the last chunk matched. */
  private matched = 0;

  constructor(marker: string) {
    this.marker = new TextEncoder().encode(marker);
    if (this.marker.length === 0 || this.marker.indexOf(this.marker[0]!, 1) !== -1) {
      throw new Error('the marker must be non-empty and its first byte must not recur in it');
    }
  }

  /** Feeds a chunk; returns true when the marker has been completed within it. */
  feed(chunk: Uint8Array): boolean {
    const m = this.marker;
    for (const byte of chunk) {
      // Naive fallback on mismatch is exact here because the marker (ESC ] 1 3 3 ; A BEL)
      // starts with a byte that occurs nowhere else in it.
      if (byte === m[this.matched]) this.matched++;
      else this.matched = byte === m[0] ? 1 : 0;
      if (this.matched === m.length) {
        this.matched = 0;
        return true;
      }
    }
    return false;
  }
}
