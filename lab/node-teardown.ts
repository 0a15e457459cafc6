// node-teardown.ts: undoing what the lab's real node (lab/node.ts) did to the
// machine. At start the node records what it will change (sysctls kubelet
// sets, host paths kubelet creates whatever its root dir) and writes ONE
// teardown script into its temp dir; stop(), the process exit hook, the
// watchdog (test process killed) and the next start's sweep (a dead pid in
// the dir's name) all run that same script. It is idempotent and kills, in
// order: the node's processes (every command line naming the dir: kubelet,
// containerd, shims, kube-proxy, kube-scheduler), then every process left in
// the pods' cgroups; then removes kube-proxy's nftables tables, the KUBE-* and
// CNI-* iptables chains, the mounts under the dir, the pods' cgroup dirs, the
// CNI bridge, restores the sysctls and removes the created paths and the dir.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Sysctls kubelet, kube-proxy or the bridge CNI set on the host (seen here: PLATFORM-additions.md). */
export const NODE_SYSCTLS = [
  'kernel.panic',
  'kernel.panic_on_oops',
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv6.conf.all.forwarding',
] as const;

/** Host paths kubelet creates whatever --root-dir says. */
export const KUBELET_HOST_PATHS = ['/var/lib/kubelet', '/var/log/containers', '/var/log/pods'] as const;

/** Cgroup dirs of the pods (kubelet, cgroupfs driver) and containerd, in every hierarchy. */
export const NODE_CGROUPS = ['kubepods', 'k8s.io'] as const;

export function readSysctl(key: string): string | null {
  try {
    return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
  } catch {
    return null;
  }
}

export interface TeardownPlan {
  dir: string;
  bridge: string;
  /** Values to write back (only keys that exist). */
  sysctls: Record<string, string>;
  /** Host paths that did not exist before the node started. */
  createdPaths: string[];
  /** nftables tables ("family name") that existed before the node started. */
  nftTablesBefore: string[];
  /** Mounts the node made shared, made private again. */
  privateMounts: string[];
}

/** The nftables tables now, as "family name" lines. */
export function nftTables(): string[] {
  try {
    return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).split('\n')
      .map((l) => l.replace(/^table /, '').trim()).filter((l) => l !== '');
  } catch {
    return [];
  }
}

const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

export function teardownScript(p: TeardownPlan): string {
  const sysctls = Object.entries(p.sysctls).map(([k, v]) => `sysctl -qw ${q(`${k}=${v}`)} || true`).join('\n');
  return `#!/bin/bash
# Teardown of the lab node in ${p.dir} (lab/node-teardown.ts). Idempotent.
dir=${q(p.dir)}
bridge=${q(p.bridge)}
self=$$

victims() {
  local p args
  for p in /proc/[0-9]*; do
    [ "\${p#/proc/}" = "$self" ] && continue
    mapfile -d '' args < "$p/cmdline" 2>/dev/null || continue
    [[ "\${args[*]}" == *"$dir/"* ]] && echo "\${p#/proc/}"
  done
}
pod_procs() {
  local c
  for c in ${NODE_CGROUPS.map((c) => `/sys/fs/cgroup/*/${c}`).join(' ')}; do
    [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
}
# kubelet first (it would restart containers), then everything naming the dir
# (containerd, shims, kube-proxy, kube-scheduler), then what runs in the pods.
for _ in $(seq 1 20); do
  v="$(victims) $(pod_procs)"
  [ -z "\${v// /}" ] && break
  kill -KILL $v 2>/dev/null
  sleep 0.2
done

nft delete table ip kube-proxy 2>/dev/null
nft delete table ip6 kube-proxy 2>/dev/null
for ipt in iptables ip6tables; do
  for t in filter nat mangle raw; do
    rules=$($ipt -t $t -S 2>/dev/null) || continue
    # Jumps into our chains from the others, then the chains themselves.
    grep -E '^-A ' <<<"$rules" | grep -Ev '^-A (KUBE-|CNI-)' | grep -E -- '-j (KUBE-|CNI-)' | while read -r line; do
      eval "$ipt -t $t \${line/#-A/-D}" 2>/dev/null
    done
    for c in $(grep -oE '^-N (KUBE-|CNI-)[^ ]*' <<<"$rules" | cut -d' ' -f2); do $ipt -t $t -F "$c" 2>/dev/null; done
    for c in $(grep -oE '^-N (KUBE-|CNI-)[^ ]*' <<<"$rules" | cut -d' ' -f2); do $ipt -t $t -X "$c" 2>/dev/null; done
  done
done

# iptables-nft made its tables (filter, nat, ...) for kubelet: gone if they were not there before and hold no rule.
nft list tables 2>/dev/null | while read -r _ fam name; do
  case " ${p.nftTablesBefore.map((t) => t.replace(' ', ':')).join(' ')} " in *" $fam:$name "*) continue ;; esac
  case $name in filter|nat|mangle|raw|security) ;; *) continue ;; esac
  nft -j list table "$fam" "$name" 2>/dev/null | grep -q '"rule"' || nft delete table "$fam" "$name" 2>/dev/null
done

# Mounts under the dir (pods' volumes, rootfs, network namespaces), deepest first.
for _ in 1 2 3; do
  m=$(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [ -z "$m" ] && break
  for x in $m; do umount -l "$x" 2>/dev/null; done
done

for _ in 1 2 3 4 5; do
  left=0
  for c in ${NODE_CGROUPS.map((c) => `/sys/fs/cgroup/*/${c}`).join(' ')}; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$c" ] && left=1
  done
  [ $left = 0 ] && break
  sleep 0.2
done

ip link delete "$bridge" 2>/dev/null
${p.privateMounts.map((m) => `mount --make-private ${q(m)} 2>/dev/null`).join('\n')}
${sysctls}
rm -rf ${p.createdPaths.map(q).join(' ')} 2>/dev/null
rm -rf "$dir"
exit 0
`;
}
