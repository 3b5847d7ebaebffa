/**
 * Web Locks as ownership: a tab (or worker) owns something — a disk overlay, an address on a LAN — while it
 * holds the lock named for it. Locks are released when the holder calls the returned function or its realm
 * ends (a closed tab, a terminated worker), so a crash never leaves anything owned.
 */

/**
 * Takes lock `name` and holds it until the returned function is called. Resolves with undefined when
 * someone else holds it: at once with `waitMs` 0, otherwise once `waitMs` have passed.
 */
export function holdLock(locks: LockManager, name: string, waitMs = 0): Promise<(() => void) | undefined> {
  const options: LockOptions = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
  return new Promise((resolve, reject) => {
    locks
      .request(name, options, (lock) => {
        if (!lock) return resolve(undefined);
        return new Promise<void>((release) => resolve(release));
      })
      .catch((error: unknown) => (error instanceof DOMException && error.name === 'TimeoutError' ? resolve(undefined) : reject(error)));
  });
}
