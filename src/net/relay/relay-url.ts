/** Page side of network="relay": checking `relay-url`, and where the lwIP wasm is. */
import { VmError } from '../../errors.js';

/** Resolved by the bundler (an asset) and served from the source tree in development. Fetched by the emulator worker only for network="relay". */
export const LWIP_WASM_URL = new URL('../../../wasm/dist/lwip/lwip.wasm', import.meta.url);

/** The relay's absolute WebSocket URL; throws a VmError `relay-url-invalid` for anything but ws:/wss:. */
export function parseRelayUrl(value: string, base: string): string {
  if (!value.trim()) throw new VmError('relay-url-invalid', 'network="relay" needs a `relay-url` (the ws: or wss: URL of a Wisp server)');
  let url: URL;
  try {
    url = new URL(value.trim(), base);
  } catch {
    throw new VmError('relay-url-invalid', `relay-url is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new VmError('relay-url-invalid', `relay-url must be a ws: or wss: URL (a Wisp server), not ${url.protocol}: ${JSON.stringify(value)}`);
  }
  return url.href;
}
