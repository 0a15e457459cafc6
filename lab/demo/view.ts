// view.ts: the demo's live terminal view, rendered as a string from the
// demo's state (pure; the caller writes it with a cursor-home escape). Bars
// show each backend's share of the new flows of the last few seconds next to
// the share its weight asks for.
import { expectedShares, flowsBetween, pct, rateOver, sampleAt, shortDigest, type BackendInfo, type DemoEvent, type NodeTable, type TrafficSample } from './model.js';

export interface ViewState {
  readonly vip: { name: string; address: string; port: number; mode: string };
  readonly t: number;
  readonly duration: number;
  readonly backends: readonly BackendInfo[];
  readonly samples: readonly TrafficSample[];
  readonly nodes: Readonly<Record<string, NodeTable>>;
  readonly events: readonly DemoEvent[];
  readonly width: number;
  readonly color: boolean;
}

const WINDOW = 5; // seconds of flows the bars show

export function renderView(s: ViewState): string {
  const c = (code: string, text: string): string => (s.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const lines: string[] = [];
  const last = s.samples.at(-1);
  const rate = rateOver(s.samples, 2);
  lines.push(`${c('1', 'xdplb demo')}  t=${s.t.toFixed(1)}s of ${s.duration}s   VIP ${s.vip.name} ${s.vip.address}:${s.vip.port} (${s.vip.mode}) · ${Object.keys(s.nodes).length} nodes · Ctrl-C ends it`);
  lines.push(`new connections/s ${c('32', rate.ok.toFixed(0).padStart(4))} ok ${c(rate.failed > 0 ? '31' : '2', rate.failed.toFixed(0).padStart(3))} failed   total ${last?.ok ?? 0} ok, ${last?.failed ?? 0} failed`);
  lines.push('');
  lines.push(c('1', `Share of new flows, last ${WINDOW} s`) + c('2', '   (| = the share its weight asks for)'));
  const flows = last === undefined ? {} : flowsBetween(sampleAt(s.samples, last.t - WINDOW), last);
  const total = Object.values(flows).reduce((a, b) => a + b, 0);
  const expected = expectedShares(s.backends);
  const barWidth = Math.max(10, Math.min(50, s.width - 48));
  for (const b of s.backends) {
    const share = total > 0 ? (flows[b.name] ?? 0) / total : 0;
    const filled = Math.round(share * barWidth);
    const mark = Math.min(barWidth - 1, Math.round((expected[b.name] ?? 0) * barWidth));
    let bar = '';
    for (let i = 0; i < barWidth; i++) bar += i === mark && (expected[b.name] ?? 0) > 0 ? '|' : i < filled ? '█' : '·';
    const state = b.state === 'serving' ? '' : c('31', ` ${b.state}`);
    lines.push(`  ${b.name.padEnd(4)} ${b.address.padEnd(11)} w${String(b.weight).padEnd(4)} ${c(b.state === 'serving' ? '36' : '31', bar)} ${pct(share).padStart(6)}${state}`);
  }
  lines.push('');
  lines.push(c('1', 'Tables on the nodes') + c('2', '   (the operator publishes one; each node programs it and checks its digest)'));
  const digests = new Set(Object.values(s.nodes).map((n) => n.digest));
  for (const [name, n] of Object.entries(s.nodes)) {
    lines.push(`  ${name.padEnd(4)} ${shortDigest(n.digest)}  programmed ${n.generation}x  serving ${n.serving ?? '-'} backends${digests.size === 1 ? c('32', '  = same table') : c('33', '  (updating)')}`);
  }
  lines.push('');
  lines.push(c('1', 'Events'));
  for (const e of s.events.slice(-10)) {
    const color = e.kind === 'kill' || e.kind === 'warn' ? '31' : e.kind === 'measure' ? '1;32' : e.kind === 'add' ? '36' : '0';
    lines.push(`  ${e.t.toFixed(1).padStart(6)}s  ${c(color, e.text)}`);
  }
  return lines.map((l) => (s.color ? `${l}\x1b[K` : l)).join('\n');
}
