/** Page side of network="relay": checking `relay-url`. */
import { VmError } from '../../errors.js';

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
