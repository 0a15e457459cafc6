// node-lab.test.ts: the pure parts of the lab's real node (lab/node-config.ts,
// lab/node-teardown.ts): the teardown script is valid bash that names only the
// node's dir, writes back exactly the recorded sysctls and removes only the
// paths the node created; the generated configs parse and carry the settings
// this machine needs (PLATFORM.md: cgroupfs on cgroup v1, restrict_oom_score_adj).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cniConfig, containerdConfig, kubeletConfig, kubeProxyConfig, type NodeLayout } from '../../lab/node-config.js';
import { teardownScript } from '../../lab/node-teardown.js';

const layout: NodeLayout = {
  dir: '/tmp/xdplb-node-1-abc', name: 'n', address: '10.244.0.1', podCidr: '10.244.0.0/24', bridge: 'xlbn1',
  pauseImage: 'localhost/xdplb-pause:x', kubeletPort: 1, kubeletHealthzPort: 2, proxyHealthzPort: 3, proxyMetricsPort: 4,
  kubeconfig: '/tmp/k', caFile: '/tmp/ca',
};

describe('lab node teardown script', () => {
  const script = teardownScript({
    dir: layout.dir, bridge: layout.bridge, sysctls: { 'kernel.panic': '1', 'kernel.panic_on_oops': '0' },
    createdPaths: ["/var/lib/kubelet", "/sys/fs/bpf/it's"], nftTablesBefore: ['ip filter'], privateMounts: ['/sys/fs/bpf'],
  });

  it('is valid bash', () => {
    expect(() => execFileSync('bash', ['-n'], { input: script })).not.toThrow();
  });

  it('writes back the recorded sysctls, removes the created paths (quoted) and makes the mount private again', () => {
    expect(script).toContain("sysctl -qw 'kernel.panic=1'");
    expect(script).toContain("sysctl -qw 'kernel.panic_on_oops=0'");
    expect(script).toContain(`rm -rf '/var/lib/kubelet' '/sys/fs/bpf/it'\\''s'`);
    expect(script).toContain("mount --make-private '/sys/fs/bpf'");
    expect(script).toContain('ip:filter');
  });

  it('kills only processes naming the dir with a trailing slash (not a sibling dir with the same prefix)', () => {
    expect(script).toContain(`dir='${layout.dir}'`);
    expect(script).toContain('*"$dir/"*');
  });
});

describe('lab node configs', () => {
  it('containerd: own root, state and socket under the dir, the local pause image, restrict_oom_score_adj, cgroupfs', () => {
    const c = containerdConfig(layout);
    for (const want of [`root = "${layout.dir}/containerd/root"`, `state = "${layout.dir}/containerd/state"`,
      `address = "${layout.dir}/containerd/containerd.sock"`, 'sandbox_image = "localhost/xdplb-pause:x"',
      'restrict_oom_score_adj = true', 'SystemdCgroup = false', 'netns_mounts_under_state_dir = true']) expect(c).toContain(want);
  });

  it('CNI, kubelet and kube-proxy configs are JSON with the node address, cgroupfs and nftables', () => {
    const cni = JSON.parse(cniConfig(layout)) as { plugins: { bridge: string; ipam: { ranges: { gateway: string }[][] } }[] };
    expect(cni.plugins[0]!.bridge).toBe('xlbn1');
    expect(cni.plugins[0]!.ipam.ranges[0]![0]!.gateway).toBe('10.244.0.1');
    expect(JSON.parse(kubeletConfig(layout))).toMatchObject({ cgroupDriver: 'cgroupfs', failCgroupV1: false, failSwapOn: false, address: '10.244.0.1' });
    expect(JSON.parse(kubeProxyConfig(layout))).toMatchObject({ mode: 'nftables', clusterCIDR: '10.244.0.0/24' });
  });
});
