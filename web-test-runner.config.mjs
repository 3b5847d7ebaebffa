// Browser tests in Debian's Chromium (test tools cannot download browsers here).
import { esbuildPlugin } from '@web/dev-server-esbuild';
import { chromeLauncher } from '@web/test-runner-chrome';
import { serveImages } from './images/serve-images.mjs';
import { diskTestServer, storageQuotaPlugin } from './test/disk-server.mjs';
import { requestCounter } from './test/request-counter.mjs';
import { summaryLineReporter } from './test/summary-reporter.mjs';
import { relayMiddleware } from './test/relay/wtr-relay.mjs';
import { tailnetMiddleware } from './test/tailnet/wtr-tailnet.mjs';
import { defaultReporter } from '@web/test-runner';

const MINUTE = 60_000;

export default {
  rootDir: '.',
  nodeResolve: true,
  // One VM at a time: the machine has two cores and each guest wants one.
  concurrency: 1,
  groups: [
    { name: 'unit', files: 'test/unit/**/*.test.ts' },
    { name: 'element', files: 'test/element.test.ts' },
    { name: 'tiny', files: 'test/tiny.test.ts' },
    { name: 'snapshot', files: 'test/snapshot.test.ts' },
    { name: 'debian', files: 'test/debian.test.ts' },
    { name: 'disk', files: 'test/disk.test.ts' },
    { name: 'network', files: 'test/network.test.ts' },
    { name: 'lan', files: 'test/lan.test.ts' },
    { name: 'files', files: 'test/files.test.ts' },
    { name: 'host', files: 'test/host.test.ts' },
    { name: 'relay', files: 'test/relay.test.ts' },
  ],
  browsers: [
    chromeLauncher({
      launchOptions: {
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-background-timer-throttling',
          '--disable-renderer-backgrounding',
          '--disable-backgrounding-occluded-windows',
        ],
      },
    }),
  ],
  plugins: [esbuildPlugin({ ts: true, target: 'esnext', tsconfig: 'tsconfig.json' }), storageQuotaPlugin()],
  middleware: [requestCounter(), tailnetMiddleware(), relayMiddleware(), serveImages(), diskTestServer()],
  // Booting the stock Debian kernel takes minutes on a loaded two-core machine.
  testFramework: { config: { timeout: 15 * MINUTE } },
  testsStartTimeout: 2 * MINUTE,
  testsFinishTimeout: 60 * MINUTE,
  browserStartTimeout: 2 * MINUTE,
  reporters: [defaultReporter(), summaryLineReporter()],
};
