// The lwIP binding in the browser: the wasm fetched from its bundler URL (compileStreaming), two stacks back to
// back in a module worker (no DOM), data checked with SHA-256. The Node suite (test/node/) covers the rest.
import { expect } from '@esm-bundle/chai';

interface WorkerResult {
  ok: boolean;
  error?: string;
  sentHash?: string;
  receivedHash?: string;
  local?: { address: string; port: number };
}

describe('lwIP stack in a worker', () => {
  it('moves 512 KiB intact between two stacks and accepts a catch-all connection', async () => {
    const worker = new Worker(new URL('./lwip-worker.ts', import.meta.url), { type: 'module' });
    try {
      const result = await new Promise<WorkerResult>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<WorkerResult>) => resolve(event.data);
        worker.onerror = (event) => reject(new Error(event.message));
      });
      expect(result.error).to.equal(undefined);
      expect(result.ok).to.equal(true);
      expect(result.receivedHash).to.equal(result.sentHash);
      expect(result.local).to.deep.equal({ address: '203.0.113.7', port: 8443 });
    } finally {
      worker.terminate();
    }
  });
});
