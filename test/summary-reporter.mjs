// Counts test results for the closing "N passed, N failed" line that test/run.mjs prints.
// A test file that failed to load (or whose browser crashed) counts as one failure.
import { writeFileSync } from 'node:fs';

export function summaryLineReporter() {
  return {
    stop({ sessions }) {
      const totals = { passed: 0, failed: 0, skipped: 0 };
      const count = (suite) => {
        for (const test of suite.tests) totals[test.skipped ? 'skipped' : test.passed ? 'passed' : 'failed']++;
        for (const child of suite.suites) count(child);
      };
      for (const session of sessions) {
        if (session.testResults) count(session.testResults);
        if (!session.passed && (session.errors.length > 0 || !session.testResults)) totals.failed++;
      }
      if (process.env.LINUX_VM_TEST_SUMMARY) writeFileSync(process.env.LINUX_VM_TEST_SUMMARY, JSON.stringify(totals));
      else process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed\n`);
    },
  };
}
