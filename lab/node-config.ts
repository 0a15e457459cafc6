// node-config.ts: the configuration files of the lab's real node
// (lab/node.ts), as text: containerd's (its own root, state and socket, the
// local pause image, restrict_oom_score_adj), the CNI network (a bridge with
// host-local addresses), kubelet's and kube-proxy's. Pure: paths, ports and
// names come in, file contents go out; each setting says why it is there.

export interface NodeLayout {
  /** The node's temp dir; everything the node writes goes under it. */
  dir: string;
  /** The node's name in Kubernetes. */
  name: string;
  /** The node's InternalIP: the CNI bridge's gateway address, on the host. */
  address: string;
  /** The pods' subnet on the bridge (the node's address is its first host). */
  podCidr: string;
  /** The CNI bridge's name on the host. */
  bridge: string;
  /** Image name of the pod sandbox (imported before containerd serves pods). */
  pauseImage: string;
  kubeletPort: number;
  kubeletHealthzPort: number;
  proxyHealthzPort: number;
  proxyMetricsPort: number;
  /** The control plane's admin kubeconfig and CA (kubelet, kube-proxy, kube-scheduler use it). */
  kubeconfig: string;
  caFile: string;
}

export const containerdSocket = (dir: string): string => `${dir}/containerd/containerd.sock`;

export function containerdConfig(l: NodeLayout): string {
  return `# containerd for the lab node: nothing shared with a containerd the machine may run.
version = 2
root = "${l.dir}/containerd/root"
state = "${l.dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "${containerdSocket(l.dir)}"

[ttrpc]
  address = "${containerdSocket(l.dir)}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${l.dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  # No registry is reachable: the pause image is built here and imported.
  sandbox_image = "${l.pauseImage}"
  # The machine lacks CAP_SYS_RESOURCE: a negative oom_score_adj fails and kills every sandbox.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns: the teardown finds them.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # PID 1 is not systemd: cgroupfs, as kubelet's cgroupDriver.
        SystemdCgroup = false
        Root = "${l.dir}/containerd/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${l.dir}/cni/net.d"
`;
}

/** A bridge on the host with the node's address as gateway; no masquerade (pods only talk to the node). */
export function cniConfig(l: NodeLayout): string {
  return `${JSON.stringify({
    cniVersion: '1.0.0',
    name: 'xdplb-lab',
    plugins: [
      {
        type: 'bridge',
        bridge: l.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: l.podCidr, gateway: l.address }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: `${l.dir}/cni/ipam`,
        },
      },
    ],
  }, null, 2)}\n`;
}

export function kubeletConfig(l: NodeLayout): string {
  return `${JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // PID 1 is not systemd and the hierarchies are cgroup v1 (PLATFORM.md).
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${containerdSocket(l.dir)}`,
    address: l.address,
    port: l.kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: l.kubeletHealthzPort,
    // The API server calls in with the admin's certificate (logs, exec); nobody else.
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: l.caFile } },
    authorization: { mode: 'AlwaysAllow' },
    podLogsDir: `${l.dir}/pod-logs`,
    // Images are imported, never pulled: no garbage collection may remove them,
    // and a busy shared disk must not evict the pods under test.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    // Pods' status reaches the API server quickly (tests wait on it).
    nodeStatusUpdateFrequency: '4s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    serializeImagePulls: false,
    resolvConf: '/etc/resolv.conf',
    // No cluster DNS: our pods address the API server by the `kubernetes` Service's IP.
    clusterDNS: [],
    clusterDomain: 'cluster.local',
  }, null, 2)}\n`;
}

export function kubeProxyConfig(l: NodeLayout): string {
  return `${JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: l.kubeconfig },
    hostnameOverride: l.name,
    // One nftables table per family (kube-proxy), removed whole at teardown.
    mode: 'nftables',
    clusterCIDR: l.podCidr,
    healthzBindAddress: `127.0.0.1:${l.proxyHealthzPort}`,
    metricsBindAddress: `127.0.0.1:${l.proxyMetricsPort}`,
    // Leave the machine's conntrack sysctls alone.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    nodePortAddresses: [`${l.address}/32`],
  }, null, 2)}\n`;
}
