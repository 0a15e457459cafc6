// flags.test.ts: the agent's and the operator's flags: defaults, --help, and
// one BAD_FLAG error naming the problem for each kind of bad input.
import { describe, expect, it } from 'vitest';
import { parseAgentFlags } from '../../src/agent/flags.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { runOperator } from '../../src/operator/main.js';

const bad = (message: RegExp) => expect.objectContaining({ code: ErrorCodes.BAD_FLAG, message: expect.stringMatching(message) });

describe('agent flags', () => {
  it('fills defaults and freezes', () => {
    const f = parseAgentFlags(['--interface', 'eth0', '--config', '/etc/xdplb.yaml'])!;
    expect(f).toMatchObject({ interface: 'eth0', 'xdp-mode': 'auto', 'metrics-address': '0.0.0.0:9477', 'pin-dir': '/sys/fs/bpf/xdplb', resync: 10, kubernetes: false, 'route-around': 'on' });
    expect(Object.isFrozen(f)).toBe(true);
    expect(parseAgentFlags(['--help'])).toBeNull();
    expect(parseAgentFlags(['--interface', 'eth0', '--cleanup'])!.cleanup).toBe(true);
    expect(parseAgentFlags(['--role', 'decap', '--interface', 'auto', '--kubernetes'])!.interface).toBe('auto');
  });

  it.each([
    [['--config', 'x'], /--interface IF is required/],
    [['--interface', 'eth0'], /exactly one of --config FILE \(standalone\) or --kubernetes/],
    [['--interface', 'eth0', '--config', 'x', '--kubernetes'], /exactly one of/],
    [['--interface', 'a/b', '--config', 'x'], /--interface must be an interface name/],
    [['--interface', 'eth0', '--config', 'x', '--xdp-mode', 'turbo'], /--xdp-mode/],
    [['--interface', 'eth0', '--config', 'x', '--metrics-address', 'nowhere'], /--metrics-address must be HOST:PORT or off/],
    [['--interface', 'eth0', '--config', 'x', '--pin-dir', 'relative'], /--pin-dir must be an absolute path/],
    [['--interface', 'eth0', '--config', ''], /--config needs a file path/],
    [['--interface', 'eth0', '--kubernetes', '--route-around', 'sometimes'], /--route-around must be on or off/],
    [['--interface', 'eth0', '--config', 'c.yaml', '--owner-daemonset', 'xdplb-agent'], /--owner-daemonset needs --kubernetes/],
    [['--interface', 'eth0', '--kubernetes', '--owner-daemonset', 'Not_A_Name'], /--owner-daemonset must be a DaemonSet name/],
    [['--interface', 'eth0', '--config', 'x', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['--interface', 'auto', '--kubernetes'], /--interface auto is for --role decap/],
  ])('%j is refused with one line', (argv, message) => {
    expect(() => parseAgentFlags(argv as string[])).toThrowError(bad(message));
  });
});

describe('operator flags', () => {
  it.each([
    [['--workers', '0'], /--workers/],
    [['--namespace', 'Not_A_Namespace'], /--namespace must be a namespace name/],
    [['--leader-elect', 'maybe'], /--leader-elect/],
    [['--nope'], /Unknown option/],
  ])('%j exits 2 with one line', async (argv, message) => {
    const err: string[] = [];
    expect(await runOperator(argv as string[], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(message);
  });
});

describe('operator health endpoints', () => {
  it('answers /healthz always and /readyz only once ready', async () => {
    const { serveHealth } = await import('../../src/operator/health.js');
    let ready = false;
    const server = await serveHealth('127.0.0.1:0', () => ready);
    const port = (server.address() as { port: number }).port;
    const get = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    expect(await get('/healthz')).toBe(200);
    expect(await get('/readyz')).toBe(503);
    ready = true;
    expect(await get('/readyz')).toBe(200);
    expect(await get('/other')).toBe(404);
    server.close();
  });

  it('refuses a bad --health-address', async () => {
    const err: string[] = [];
    expect(await runOperator(['--health-address', 'nowhere'], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err[0]).toMatch(/--health-address must be HOST:PORT or off/);
  });
});
