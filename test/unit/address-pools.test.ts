// address-pools.test.ts: the VipPool decision (core/address-pools.ts):
// ranges parsed or refused, addresses given in order and kept while valid,
// the older holder winning a conflict, requested and shared addresses,
// dual-stack policies, exhaustion and overlapping pools explained, and the
// result independent of input order (a property).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decidePools, parseRange, type PoolInput, type ServiceInput } from '../../src/core/address-pools.js';

const pool = (name: string, ranges: string[], over: Partial<PoolInput> = {}): PoolInput => ({ name, created: 0, ranges: ranges.map(parseRange), autoAssign: true, admits: () => true, ...over });
const svc = (key: string, over: Partial<ServiceInput> = {}): ServiceInput => ({ key, created: 0, families: ['IPv4'], policy: 'SingleStack', requested: [], ports: ['80/TCP'], current: [], ...over });
const addresses = (d: ReturnType<typeof decidePools>, key: string): string[] => d.services.get(key)!.addresses.map((a) => a.address);

describe('parseRange', () => {
  it('reads CIDRs, ranges and single addresses of both families', () => {
    expect(parseRange('10.0.0.0/30')).toEqual({ family: 'IPv4', first: 0x0a000000n, last: 0x0a000003n });
    expect(parseRange('10.0.0.5-10.0.0.9')).toMatchObject({ first: 0x0a000005n, last: 0x0a000009n });
    expect(parseRange('10.0.0.7')).toMatchObject({ first: 0x0a000007n, last: 0x0a000007n });
    expect(parseRange('2001:db8::/126')).toMatchObject({ family: 'IPv6', last: 0x20010db8000000000000000000000003n });
  });

  it('refuses what is not one, saying why', () => {
    expect(() => parseRange('10.0.0.1/28')).toThrow(/host bits are set \(the network is 10\.0\.0\.0\/28\)/);
    expect(() => parseRange('10.0.0.9-10.0.0.5')).toThrow(/first address is after the last/);
    expect(() => parseRange('10.0.0.1-2001:db8::1')).toThrow(/different families/);
    expect(() => parseRange('10.0.0.0/33')).toThrow(/prefix length must be 0 to 32/);
    expect(() => parseRange('web')).toThrow(/not an IP address/);
  });
});

describe('decidePools', () => {
  it('gives addresses in order, keeps what a Service holds, and counts the pool', () => {
    const d = decidePools([pool('p', ['10.0.0.0/30'])], [svc('a/one', { created: 1 }), svc('a/two', { created: 2, current: ['10.0.0.2'] })]);
    // The holder keeps 10.0.0.2 although it is newer; the other gets the first free.
    expect(addresses(d, 'a/two')).toEqual(['10.0.0.2']);
    expect(addresses(d, 'a/one')).toEqual(['10.0.0.0']);
    expect(d.pools).toEqual([{ name: 'p', problem: null, ipv4: { total: 4, used: 2 }, ipv6: { total: 0, used: 0 } }]);
  });

  it('on a conflict (two Services holding one address) the older keeps it; the other gets another', () => {
    const d = decidePools([pool('p', ['10.0.0.0/30'])], [svc('a/new', { created: 5, current: ['10.0.0.1'] }), svc('a/old', { created: 1, current: ['10.0.0.1'] })]);
    expect(addresses(d, 'a/old')).toEqual(['10.0.0.1']);
    expect(addresses(d, 'a/new')).toEqual(['10.0.0.0']);
  });

  it('explains exhaustion, and a requested address in use or outside every pool', () => {
    const d = decidePools([pool('p', ['10.0.0.0/31'])], [svc('a/1', { created: 1 }), svc('a/2', { created: 2 }), svc('a/3', { created: 3, current: ['10.0.0.0'] }), svc('a/4', { created: 4, requested: ['10.0.0.0'] }), svc('a/5', { created: 5, requested: ['10.9.9.9'] })]);
    expect(addresses(d, 'a/1')).toEqual(['10.0.0.1']);
    expect(d.services.get('a/2')).toEqual({ addresses: [], problem: { reason: 'PoolExhausted', message: 'every IPv4 address of p is in use' } });
    expect(d.services.get('a/4')!.problem).toEqual({ reason: 'AddressInUse', message: '10.0.0.0 is in use by another Service' });
    expect(d.services.get('a/5')!.problem).toEqual({ reason: 'AddressNotInPool', message: '10.9.9.9 is in no VipPool' });
  });

  it('a requested address is given exactly, before older Services without a request take it', () => {
    const d = decidePools([pool('p', ['10.0.0.0/30'])], [svc('a/auto', { created: 1 }), svc('a/asks', { created: 2, requested: ['10.0.0.0'] })]);
    expect(addresses(d, 'a/asks')).toEqual(['10.0.0.0']);
    expect(addresses(d, 'a/auto')).toEqual(['10.0.0.1']);
  });

  it('shares one address under one key on other ports, and refuses the same port or another key', () => {
    const d = decidePools([pool('p', ['10.0.0.0/30'])], [
      svc('a/db', { created: 9, sharingKey: 'db', current: ['10.0.0.0'] }),
      svc('a/http', { created: 1, sharingKey: 'web', ports: ['80/TCP'] }),
      svc('a/https', { created: 2, sharingKey: 'web', ports: ['443/TCP'] }),
      svc('a/dns', { created: 3, sharingKey: 'web', ports: ['80/UDP'] }),
      svc('a/again', { created: 4, sharingKey: 'web', ports: ['443/TCP'] }),
      svc('a/asks', { created: 5, sharingKey: 'web', ports: ['8080/TCP'], requested: ['10.0.0.0'] }),
    ]);
    expect(addresses(d, 'a/db')).toEqual(['10.0.0.0']);
    expect(addresses(d, 'a/http')).toEqual(['10.0.0.1']);
    expect(addresses(d, 'a/https')).toEqual(['10.0.0.1']);
    expect(addresses(d, 'a/dns')).toEqual(['10.0.0.1']);
    // 443/TCP is taken on the shared address: another address, under the same key.
    expect(addresses(d, 'a/again')).toEqual(['10.0.0.2']);
    expect(d.services.get('a/asks')!.problem?.message).toBe('10.0.0.0 is in use by another Service with another sharing key');
    expect(d.pools[0]!.ipv4.used).toBe(3);
  });

  it('dual-stack: Require needs both families, Prefer takes what there is, Single takes the primary', () => {
    const v4only = [pool('p4', ['10.0.0.0/30'])];
    const both = [...v4only, pool('p6', ['2001:db8::/126'])];
    const dual = (policy: ServiceInput['policy']) => svc('a/d', { policy, families: ['IPv6', 'IPv4'] });
    expect(addresses(decidePools(both, [dual('RequireDualStack')]), 'a/d')).toEqual(['2001:db8::', '10.0.0.0']);
    expect(decidePools(v4only, [dual('RequireDualStack')]).services.get('a/d')).toEqual({ addresses: [], problem: { reason: 'FamilyUnavailable', message: 'no VipPool serving this Service has IPv6 addresses' } });
    const prefer = decidePools(v4only, [dual('PreferDualStack')]).services.get('a/d')!;
    expect(prefer.addresses.map((a) => a.address)).toEqual(['10.0.0.0']);
    expect(prefer.problem?.reason).toBe('FamilyUnavailable');
    expect(addresses(decidePools(both, [dual('SingleStack')]), 'a/d')).toEqual(['2001:db8::']);
  });

  it('selectors, autoAssign and a named pool decide which pools serve a Service', () => {
    const pools = [pool('manual', ['10.1.0.0/30'], { created: 1, autoAssign: false }), pool('team', ['10.2.0.0/30'], { created: 2, admits: (s) => s.key.startsWith('team/') })];
    const d = decidePools(pools, [svc('team/a'), svc('other/b'), svc('other/c', { pool: 'manual' }), svc('other/d', { pool: 'gone' })]);
    expect(addresses(d, 'team/a')).toEqual(['10.2.0.0']);
    expect(d.services.get('other/b')!.problem).toEqual({ reason: 'NoPool', message: 'no VipPool with IPv4 addresses serves this Service' });
    expect(addresses(d, 'other/c')).toEqual(['10.1.0.0']);
    expect(d.services.get('other/d')!.problem).toEqual({ reason: 'NoPool', message: 'no VipPool named gone' });
  });

  it('a pool overlapping an older one is refused whole, and its addresses are not given', () => {
    const d = decidePools([pool('young', ['10.0.0.2-10.0.0.9'], { created: 2 }), pool('old', ['10.0.0.0/30'], { created: 1 })], [svc('a/1', { pool: 'young' }), svc('a/2', { current: ['10.0.0.8'] })]);
    expect(d.pools.find((p) => p.name === 'young')!.problem).toBe('its addresses overlap those of the older pool old');
    expect(d.services.get('a/1')!.problem).toEqual({ reason: 'NoPool', message: 'the pool young is refused: its addresses overlap those of the older pool old' });
    // 10.0.0.8 is only in the refused pool: the Service moves to a valid one.
    expect(addresses(d, 'a/2')).toEqual(['10.0.0.0']);
  });

  it('the decision does not depend on the order Services and pools are listed in', () => {
    const pools = [pool('a', ['10.0.0.0/29'], { created: 1 }), pool('b', ['10.0.0.8/30'], { created: 2 })];
    const services = Array.from({ length: 14 }, (_, i) =>
      svc(`ns/s${i}`, { created: i % 5, sharingKey: i % 3 === 0 ? 'k' : undefined, ports: [`${80 + (i % 4)}/TCP`], current: i % 4 === 0 ? [`10.0.0.${(i * 7) % 12}`] : [] }),
    );
    const reference = decidePools(pools, services);
    fc.assert(
      fc.property(fc.shuffledSubarray(services, { minLength: services.length }), fc.boolean(), (order, flip) => {
        const d = decidePools(flip ? [...pools].reverse() : pools, order);
        expect([...d.services].sort()).toEqual([...reference.services].sort());
        expect(d.pools).toEqual(reference.pools);
      }),
      { numRuns: 100 },
    );
  });
});
