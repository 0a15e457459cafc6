// endpoints.test.ts: the one rule for what an EndpointSlice endpoint means
// (core/endpoints.ts), shared by the operator's tables and the agent's down state.
import { describe, expect, it } from 'vitest';
import { endpointState, endpointsOut, type EndpointSliceObject } from '../../src/core/endpoints.js';

const slice = (name: string, endpoints: EndpointSliceObject['endpoints'], namespace = 'shop'): EndpointSliceObject => ({ namespace, serviceName: name, endpoints });

describe('endpointState', () => {
  it.each([
    [{}, 'Serving'],
    [{ ready: true }, 'Serving'],
    [{ ready: false }, 'Out'],
    [{ ready: false, serving: true, terminating: true }, 'Draining'],
    [{ ready: false, serving: false, terminating: true }, 'Out'],
    [{ ready: false, serving: true, terminating: false }, 'Out'],
  ] as const)('%j is %s', (conditions, state) => {
    expect(endpointState({ addresses: ['10.0.0.1'], ...conditions })).toBe(state);
  });
});

describe('endpointsOut', () => {
  it('lists addresses that the Service\'s slices list only as out', () => {
    const slices = [
      slice('api', [
        { addresses: ['10.0.0.1'], ready: true },
        { addresses: ['10.0.0.2'], ready: false },
        { addresses: ['10.0.0.3'], ready: false, serving: true, terminating: true },
      ]),
      // The same address out in another namespace's or another Service's slices does not count.
      slice('other', [{ addresses: ['10.0.0.1'], ready: false }]),
      slice('api', [{ addresses: ['10.0.0.1'], ready: false }], 'elsewhere'),
    ];
    expect([...endpointsOut(slices, 'shop', 'api')]).toEqual(['10.0.0.2']);
  });

  it('an endpoint moving between slices, out in one and ready in the other, is not out', () => {
    const slices = [slice('api', [{ addresses: ['10.0.0.2'], ready: false }]), slice('api', [{ addresses: ['10.0.0.2'], ready: true }])];
    expect(endpointsOut(slices, 'shop', 'api').size).toBe(0);
  });
});
