// Host CPU accounting from /proc (Linux): the CPU time a process tree has used so far.
import { readFileSync, readdirSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ: what /proc/<pid>/stat counts in (100 on every Linux we run on)

/** { pid, ppid, cpuSeconds } from /proc/<pid>/stat, or undefined if the process is gone. */
export function procStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: the fields after it start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15 (all threads of the process).
  return { pid, ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS };
}

/** pid and all its live descendants. */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(stat.pid);
  }
  const tree = [];
  const queue = [rootPid];
  while (queue.length) {
    const pid = queue.shift();
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU seconds (user + system) used so far by pid and its live descendants. */
export function treeCpuSeconds(rootPid) {
  return processTree(rootPid).reduce((sum, pid) => sum + (procStat(pid)?.cpuSeconds ?? 0), 0);
}

/**
 * Host CPU used by rootPid's process tree over `seconds` of wall time, as % of one core. The tree is
 * re-read at both ends; CPU of processes that exit in between is lost (none should, while idle).
 */
export async function idleCpuPercent(rootPid, seconds) {
  const cpu0 = treeCpuSeconds(rootPid);
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpu1 = treeCpuSeconds(rootPid);
  const wall = (performance.now() - t0) / 1000;
  return Number((((cpu1 - cpu0) / wall) * 100).toFixed(1));
}
