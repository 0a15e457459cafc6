// kernel.test.ts: the kernel-version gate the agent applies at start
// (issue 11, item 13): releases older than MIN_KERNEL (5.10, BPF_F_INNER_MAP)
// and unreadable releases are refused with XDPLB_KERNEL_TOO_OLD; 5.10 and
// later pass.
import { describe, expect, it } from 'vitest';
import { ErrorCodes, isXdplbError } from '../../src/core/errors.js';
import { checkKernel, MIN_KERNEL, parseKernelRelease, requireKernel } from '../../src/core/kernel.js';

describe('kernel release', () => {
  it.each([
    ['5.4.0-150-generic', { major: 5, minor: 4 }],
    ['5.10.0', { major: 5, minor: 10 }],
    ['6.18.0', { major: 6, minor: 18 }],
    ['6.1.0-13-amd64', { major: 6, minor: 1 }],
    ['3.10.0-1160.el7.x86_64', { major: 3, minor: 10 }],
    ['6.9', { major: 6, minor: 9 }],
    ['5.15.0+', { major: 5, minor: 15 }],
    ['6.11.0-rc3', { major: 6, minor: 11 }],
  ])('parses %s', (release, version) => {
    expect(parseKernelRelease(release)).toEqual(version);
  });

  it.each(['', 'linux', '5', 'x.y.z', '5.x', 'v5.10.0'])('has no version in %j', (release) => {
    expect(parseKernelRelease(release)).toBeNull();
  });

  it('the minimum is 5.10 (BPF_F_INNER_MAP)', () => {
    expect(MIN_KERNEL).toEqual({ major: 5, minor: 10 });
  });
});

describe('checkKernel', () => {
  it.each(['5.10.0', '5.10.0-28-amd64', '5.15.0-91-generic', '6.1.0', '6.18.0', '10.0.0'])('accepts %s', (release) => {
    expect(checkKernel(release)).toBeNull();
    expect(() => requireKernel(release)).not.toThrow();
  });

  it.each(['5.4.0-150-generic', '5.9.16', '5.8.0', '4.19.0-26-amd64', '3.10.0-1160.el7.x86_64'])('refuses %s as too old', (release) => {
    expect(checkKernel(release)).toBe(`kernel ${release} is too old: xdplb needs Linux 5.10 or later (BPF_F_INNER_MAP)`);
    expect(() => requireKernel(release)).toThrow(expect.objectContaining({ code: ErrorCodes.KERNEL_TOO_OLD }));
  });

  it.each(['', 'garbage', 'v6.1'])('refuses an unreadable release %j with a clear error', (release) => {
    const problem = checkKernel(release);
    expect(problem).toMatch(/^cannot read the kernel version from release ".*"; xdplb needs Linux 5\.10 or later$/);
    let err: unknown;
    try {
      requireKernel(release);
    } catch (e) {
      err = e;
    }
    expect(isXdplbError(err, ErrorCodes.KERNEL_TOO_OLD)).toBe(true);
    expect((err as Error).message).toBe(problem);
    expect((err as Error).message).not.toContain('\n');
  });
});
