// index.ts: the xdplb.io API in one import: coordinates, defaults, each kind's
// schemas, types and parse functions, and their mapping onto the core's inputs.
// (The CRD generator, crdgen.ts, is imported on its own: only the build uses it.)
export * from './coordinates.js';
export * from './defaults.js';
export * from './loadbalancervip.js';
export * from './backend.js';
export * from './viptable.js';
export * from './nodereport.js';
export * from './object.js';
export * from './to-core.js';
export * from './table-index.js';
