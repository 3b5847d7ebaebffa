/// <reference lib="webworker" />
/**
 * Entry point of the emulator worker: one worker runs one guest. The page starts it with
 * a `start` message and ends it with `Worker.terminate()`, which also ends v86's nested
 * timer worker, so nothing outlives the VM.
 */
import { VmError } from '../errors.js';
import type { FromWorker, ToWorker, VmErrorCode } from '../protocol.js';
import { GuestMachine } from './guest-machine.js';
import { GuestNetwork } from './guest-network.js';
import { bridgeConnection } from './guest-connection.js';
import { RelayNetwork } from './relay-network.js';

declare const self: DedicatedWorkerGlobalScope;

const post = (message: FromWorker, transfer: Transferable[] = []) => self.postMessage(message, transfer);
let machine: GuestMachine | undefined;
/** One NIC switch per worker: the page may attach the network before or after `start`. */
const network = new GuestNetwork();
/** network="relay": the relay NAT that is the switch's backend. */
let relay: RelayNetwork | undefined;

self.addEventListener('message', (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case 'start':
      if (machine) return; // one guest per worker
      machine = new GuestMachine(message.options, post, network);
      void machine.start();
      break;
    case 'input':
      machine?.input(message.data);
      break;
    case 'resize':
      machine?.resize(message.cols, message.rows);
      break;
    case 'network-attach':
      stopRelay();
      network.attach(message.port);
      break;
    case 'network-lan': {
      stopRelay();
      const { id } = message;
      network.joinLan(typeof message.name === 'string' ? message.name : '', {
        onAddress: (ipv4) => post({ type: 'lan-address', id, ipv4 }),
        onError: (error) => post({ type: 'error', error: error.toJSON(), recoverable: true }),
      });
      break;
    }
    case 'network-detach':
      stopRelay();
      network.detach();
      break;
    case 'relay-start':
      stopRelay();
      network.detach();
      relay = new RelayNetwork(message, network, post);
      void relay.start();
      break;
    case 'network-address':
      if (!network.setAddress(message.ipv4)) console.warn(`linux-vm: ignoring invalid network address ${String(message.ipv4)}`);
      break;
    case 'ping':
      post({ type: 'pong', id: message.id });
      break;
    case 'export-disk':
      void answer(message.id, 'disk-fetch-failed', async () => {
        post({ type: 'export-disk', id: message.id, blob: await withDisk().exportDisk() });
      });
      break;
    case 'disk-usage':
      void answer(message.id, 'disk-fetch-failed', async () => {
        post({ type: 'disk-usage', id: message.id, usage: await withDisk().diskUsage() });
      });
      break;
    case 'upload':
      void answer(message.id, 'transfer-failed', async () => {
        await running().upload(message.file, message.guestPath);
        post({ type: 'upload', id: message.id });
      });
      break;
    case 'download':
      void answer(message.id, 'transfer-failed', async () => {
        post({ type: 'download', id: message.id, blob: await running().download(message.guestPath) });
      });
      break;
    case 'tcp-connect':
      void answer(message.id, 'connection-failed', async () => {
        running();
        try {
          const connection = await network.connectToGuest(message.port);
          bridgeConnection(connection, message.channel);
        } catch (error) {
          message.channel.close();
          throw error;
        }
        post({ type: 'tcp-connect', id: message.id });
      });
      break;
  }
});

function stopRelay(): void {
  relay?.dispose();
  relay = undefined;
}

function withDisk(): GuestMachine {
  if (!machine) throw new VmError('no-disk', 'No VM is running');
  return machine;
}

function running(): GuestMachine {
  if (!machine) throw new VmError('vm-not-ready', 'No VM is running');
  return machine;
}

/** Runs a request's work; a failure becomes its `request-failed` answer (`fallback`: the code of unexpected errors). */
async function answer(id: number, fallback: VmErrorCode, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    const info = error instanceof VmError ? error.toJSON() : { code: fallback, message: String(error) };
    post({ type: 'request-failed', id, error: info });
  }
}

// Anything v86 throws outside our own calls (its run loop, wasm traps) ends the VM with a reason.
const reportCrash = (reason: unknown) => {
  const error = new VmError('emulator-failed', `The emulator crashed: ${String(reason)}`);
  if (machine) machine.fail(error);
  else post({ type: 'error', error: error.toJSON() });
};
self.addEventListener('error', (event) => reportCrash(event.error ?? event.message));
self.addEventListener('unhandledrejection', (event) => reportCrash(event.reason));
