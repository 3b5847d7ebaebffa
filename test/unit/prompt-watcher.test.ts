import { expect } from '@esm-bundle/chai';
import { PROMPT_MARK } from '../../src/worker/machine.js';
import { PromptWatcher } from '../../src/worker/prompt-watcher.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('PromptWatcher', () => {
  it('finds the prompt mark inside a chunk', () => {
    const w = new PromptWatcher(PROMPT_MARK);
    expect(w.feed(bytes('booting...\r\n'))).to.equal(false);
    expect(w.feed(bytes(`x${PROMPT_MARK}root@linux-vm:~# `))).to.equal(true);
  });

  it('finds a mark split across chunks at every position', () => {
    const text = `abc\x1b[0m${PROMPT_MARK}# `;
    for (let cut = 0; cut <= text.length; cut++) {
      const w = new PromptWatcher(PROMPT_MARK);
      const first = w.feed(bytes(text.slice(0, cut)));
      const second = w.feed(bytes(text.slice(cut)));
      expect(first || second, `cut at ${cut}`).to.equal(true);
    }
  });

  it('ignores near misses, including a restarted mark', () => {
    const w = new PromptWatcher(PROMPT_MARK);
    expect(w.feed(bytes('\x1b]133;B\x07\x1b]133\x1b]0;title\x07'))).to.equal(false);
    expect(w.feed(bytes('\x1b]13\x1b]133;A\x07'))).to.equal(true);
  });

  it('rejects markers it cannot match exactly', () => {
    expect(() => new PromptWatcher('')).to.throw();
    expect(() => new PromptWatcher('abca')).to.throw();
  });
});
