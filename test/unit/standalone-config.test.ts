// standalone-config.test.ts: the standalone config file is validated once,
// with defaults filled in and every problem listed with its path.
import { describe, expect, it } from 'vitest';
import { parseStandaloneConfig } from '../../src/config/standalone.js';
import { ErrorCodes, type XdplbError } from '../../src/core/errors.js';

const good = `
vips:
  - name: web
    address: 192.0.2.10
    ports: [{ port: 80 }, { port: 53, protocol: UDP }]
    healthCheck: { type: http, path: /healthz }
    backends:
      - { address: 10.0.0.11, weight: 2 }
      - { address: 10.0.0.12 }
  - name: v6
    address: "2001:db8::10"
    mode: l2dsr
    affinity: sourceIp
    tableSize: 1021
    flowTable: true
    ports: [{ port: 0, protocol: TCP }]
    backends: [{ address: "2001:db8::11" }]
`;

function problems(text: string): string[] {
  try {
    parseStandaloneConfig(text);
  } catch (e) {
    expect((e as XdplbError).code).toBe(ErrorCodes.BAD_CONFIG);
    return (e as Error).message.split('\n').slice(1).map((l) => l.trim());
  }
  throw new Error('expected the config to be rejected');
}

describe('standalone config', () => {
  it('parses a valid file and fills defaults', () => {
    const cfg = parseStandaloneConfig(good);
    expect(cfg.ipipSourceV4).toBe('172.16.0.0/16');
    const [web, v6] = cfg.vips;
    expect(web).toMatchObject({ mode: 'ipip', affinity: 'fiveTuple', tableSize: 65537, flowTable: false });
    expect(web!.ports).toEqual([{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }]);
    expect(web!.healthCheck).toMatchObject({ type: 'http', path: '/healthz', intervalMs: 100, unhealthyThreshold: 2 });
    expect(web!.backends[1]).toEqual({ address: '10.0.0.12', weight: 1 });
    expect(v6).toMatchObject({ mode: 'l2dsr', affinity: 'sourceIp', tableSize: 1021, flowTable: true });
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('an empty file is refused (a half-written file); "vips: []" serves nothing', () => {
    expect(() => parseStandaloneConfig('  \n')).toThrowError(/is empty; write "vips: \[\]"/);
    expect(parseStandaloneConfig('vips: []').vips).toEqual([]);
  });

  it('lists every problem with its path', () => {
    const list = problems(`
vips:
  - name: Web!
    address: 300.1.1.1
    ports: [{ port: 70000 }]
    tableSize: 65536
    mode: nat
    backends: [{ address: 10.0.0.1, weight: -1 }]
    colour: blue
`);
    expect(list).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^vips\.0\.name: /),
        expect.stringMatching(/^vips\.0\.address: must be an IPv4 or IPv6 address/),
        expect.stringMatching(/^vips\.0\.ports\.0\.port: /),
        expect.stringMatching(/^vips\.0\.tableSize: must be one of 251/),
        expect.stringMatching(/^vips\.0\.mode: /),
        expect.stringMatching(/^vips\.0\.backends\.0\.weight: /),
        expect.stringMatching(/colour/),
      ]),
    );
    expect(list.length).toBeGreaterThanOrEqual(7);
  });

  it('rejects conflicts: duplicate names, claimed ports, mixed families under ipip, duplicate backends', () => {
    const list = problems(`
vips:
  - { name: a, address: 192.0.2.1, ports: [{ port: 80 }], backends: [{ address: 10.0.0.1 }, { address: 10.0.0.1 }] }
  - { name: a, address: 192.0.2.2, ports: [{ port: 80 }], backends: [] }
  - { name: c, address: 192.0.2.1, ports: [{ port: 80 }], backends: [{ address: "2001:db8::1" }] }
`);
    expect(list.join('\n')).toMatch(/duplicate backend 10\.0\.0\.1/);
    expect(list.join('\n')).toMatch(/duplicate VIP name a/);
    expect(list.join('\n')).toMatch(/192\.0\.2\.1 80\/TCP is already claimed by VIP a/);
    expect(list.join('\n')).toMatch(/ipip needs backends of the VIP address family/);
  });

  it('rejects YAML that does not parse, and duplicate keys', () => {
    expect(() => parseStandaloneConfig('vips: [')).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_CONFIG }));
    expect(() => parseStandaloneConfig('mtu: 1500\nmtu: 1400')).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_CONFIG }));
  });

  it('health checks: timeout within interval; all-port VIPs need a probe port', () => {
    const list = problems(`
vips:
  - name: a
    address: 192.0.2.1
    ports: [{ port: 0 }]
    healthCheck: { intervalMs: 100, timeoutMs: 200 }
    backends: []
`);
    expect(list.join('\n')).toMatch(/timeoutMs must not exceed intervalMs/);
    expect(list.join('\n')).toMatch(/needs an explicit health check port/);
  });
});
