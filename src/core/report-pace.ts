// report-pace.ts: how soon an agent may write its NodeReport again. At least
// a second apart, and longer when the API server is slow to take a write: an
// agent keeps a write in flight at most a tenth of the time. Fifty nodes
// each rewriting a report of a thousand VIPs every second during a rollout
// kept an API server on two cores saturated (its writes took 0.4 s); the
// slower the server answers, the less often each node asks. Never longer
// than half the report interval, so a heartbeat still lands in time. A
// backend's health flip is urgent (the operator's quorum waits for it): it
// waits only the least spacing, whatever the last write took. Pure.

/** Least time between two writes of a report. */
export const REPORT_MIN_SPACING_MS = 1000;
/** A write may be in flight at most 1/REPORT_DUTY of the time. */
export const REPORT_DUTY = 10;

/** Milliseconds from the start of the last write to the earliest next one, given how long the last write took. */
export function reportSpacingMs(lastWriteMs: number, reportIntervalSeconds: number, urgent = false): number {
  if (urgent) return REPORT_MIN_SPACING_MS;
  const spacing = Math.max(REPORT_MIN_SPACING_MS, REPORT_DUTY * Math.max(0, lastWriteMs));
  return Math.min(spacing, Math.max(REPORT_MIN_SPACING_MS, (reportIntervalSeconds * 1000) / 2));
}
