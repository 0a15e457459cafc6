// vitest.config.ts: test projects. `unit` is pure TypeScript and runs anywhere;
// `datapath` loads real BPF programs into the running kernel and `agent` runs
// the agent in network namespaces (root); `control-plane` runs a real etcd and
// kube-apiserver (built by scripts/build-control-plane); `e2e` runs the whole
// system (lab/: control plane, operators, two nodes, backends, clients);
// `node` runs a real node (lab/node.ts: containerd, kubelet, kube-proxy) and
// installs the chart with the image built here (npm run e2e:node).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'datapath',
          include: ['test/datapath/**/*.test.ts'],
          testTimeout: 300_000,
          // BPF programs, pins and namespaces are machine-global: one file at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'agent',
          include: ['test/agent/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
          // Namespaces, pins and attached programs are machine-global: one file at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'control-plane',
          include: ['test/control-plane/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Each file starts its own etcd + kube-apiserver: one at a time on 2 cores.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          // The whole system per file (control plane, nodes, backends): one at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          // One kubelet per machine (its cgroups and host paths are global): one file at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
