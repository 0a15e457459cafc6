// agent-config.ts: the standalone config of one VIP, as the agent tests
// write it: its address, mode and port 80, an optional table size, flow
// table and TCP health check, and its backends with weights.
export interface VipConfigOptions {
  readonly address: string;
  readonly mode: 'ipip' | 'l2dsr';
  readonly backends: readonly { readonly address: string; readonly weight?: number }[];
  readonly tableSize?: number;
  readonly flowTable?: boolean;
  /** A TCP check on port 80 every 100 ms, threshold 2 both ways. */
  readonly healthCheck?: boolean;
}

export function vipConfig(o: VipConfigOptions): string {
  const lines = ['vips:', '  - name: web', `    address: ${o.address}`, `    mode: ${o.mode}`];
  if (o.tableSize !== undefined) lines.push(`    tableSize: ${o.tableSize}`);
  lines.push('    ports: [{ port: 80 }]');
  if (o.flowTable === true) lines.push('    flowTable: true');
  if (o.healthCheck === true) lines.push('    healthCheck: { type: tcp, port: 80, intervalMs: 100, timeoutMs: 80, unhealthyThreshold: 2, healthyThreshold: 2 }');
  lines.push('    backends:');
  for (const b of o.backends) lines.push(`      - { address: ${b.address}${b.weight === undefined ? '' : `, weight: ${b.weight}`} }`);
  return `${lines.join('\n')}\n`;
}
