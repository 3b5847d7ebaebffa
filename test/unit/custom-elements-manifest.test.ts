import { expect } from '@esm-bundle/chai';

// custom-elements.json is generated from the JSDoc in src/ by `npm run build` (run by `npm test` first).
describe('custom-elements.json', () => {
  it('describes <linux-vm> with its attributes, events, methods and part', async () => {
    const manifest = await (await fetch('/custom-elements.json')).json();
    const declarations = manifest.modules.flatMap((m: { declarations?: unknown[] }) => m.declarations ?? []);
    const vm = declarations.find((d: { tagName?: string }) => d.tagName === 'linux-vm');
    expect(vm, 'a declaration with tagName linux-vm').to.exist;
    const names = (list: { name: string }[] = []) => list.map((x) => x.name).sort();
    expect(names(vm.attributes)).to.include.members(['image', 'memory', 'loading', 'boot-timeout', 'network', 'lan']);
    expect(names(vm.events)).to.include.members(['progress', 'ready', 'error', 'stopped']);
    expect(names(vm.cssParts)).to.include('terminal');
    const methods = names(vm.members.filter((m: { kind: string; privacy?: string }) => m.kind === 'method' && !m.privacy));
    expect(methods).to.include.members(['start', 'stop', 'type']);
  });
});
