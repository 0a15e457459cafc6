// process.ts: whether a process still exists (signal 0), for the test
// harnesses' sweeps of what a dead earlier test run left behind.
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
