// report-pace.test.ts: an agent's NodeReport writes are at least a second
// apart, ten times as far apart as the last write took, and never further
// apart than half the report interval (so heartbeats land in time); a
// health flip only the least spacing.
import { describe, expect, it } from 'vitest';
import { REPORT_DUTY, REPORT_MIN_SPACING_MS, reportSpacingMs } from '../../src/core/report-pace.js';

describe('report pacing', () => {
  it('spaces writes by how long the last one took, between one second and half the interval', () => {
    expect(reportSpacingMs(0, 10)).toBe(REPORT_MIN_SPACING_MS);
    expect(reportSpacingMs(20, 10)).toBe(REPORT_MIN_SPACING_MS);
    expect(reportSpacingMs(300, 10)).toBe(300 * REPORT_DUTY);
    expect(reportSpacingMs(2000, 10)).toBe(5000);
    // A short interval never pushes writes closer than the floor.
    expect(reportSpacingMs(2000, 1)).toBe(REPORT_MIN_SPACING_MS);
    expect(reportSpacingMs(-5, 10)).toBe(REPORT_MIN_SPACING_MS);
  });

  it('writes a health flip after the least spacing, however slow the last write was', () => {
    expect(reportSpacingMs(2000, 10, true)).toBe(REPORT_MIN_SPACING_MS);
    expect(reportSpacingMs(300, 10, true)).toBe(REPORT_MIN_SPACING_MS);
  });
});
