// report.ts: the demo's HTML report: one self-contained page (inline SVG, no
// scripts, no network) with the measurements, a chart of the flow
// distribution against the weights, and the timeline of new connections
// (ok and failed) with the failover and scale-out marked. Pure: returns text.
import { pct, timeline, type DemoSummary, type TrafficSample } from './model.js';

const esc = (s: string): string => s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]!);

function distributionChart(d: DemoSummary['distribution']): string {
  const rows = Object.entries(d);
  const w = 640;
  const rowH = 34;
  const h = rows.length * rowH + 30;
  const x0 = 150;
  const scale = (w - x0 - 70) / Math.max(0.01, ...rows.flatMap(([, r]) => [r.share, r.expected]));
  const bars = rows
    .map(([name, r], i) => {
      const y = 10 + i * rowH;
      return `<text x="0" y="${y + 16}" class="lbl">${esc(name)} ${esc(r.address)}</text>
<rect x="${x0}" y="${y}" width="${(r.share * scale).toFixed(1)}" height="14" class="got"/>
<rect x="${x0}" y="${y + 15}" width="${(r.expected * scale).toFixed(1)}" height="8" class="want"/>
<text x="${(x0 + r.share * scale + 6).toFixed(1)}" y="${y + 12}" class="val">${pct(r.share)} (${r.flows})</text>`;
    })
    .join('\n');
  return `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="flow distribution">${bars}
<rect x="${x0}" y="${h - 14}" width="12" height="8" class="got"/><text x="${x0 + 16}" y="${h - 6}" class="val">share of flows</text>
<rect x="${x0 + 130}" y="${h - 14}" width="12" height="8" class="want"/><text x="${x0 + 146}" y="${h - 6}" class="val">share by weight (final backends)</text></svg>`;
}

function timelineChart(samples: readonly TrafficSample[], events: DemoSummary['events']): string {
  const series = timeline(samples);
  const w = 760;
  const h = 240;
  const pad = { l: 46, r: 10, t: 10, b: 28 };
  const tMax = Math.max(1, samples.at(-1)?.t ?? 1);
  const yMax = Math.max(1, ...series.map((p) => p.ok + p.failed));
  const x = (t: number): number => pad.l + (t / tMax) * (w - pad.l - pad.r);
  const y = (v: number): number => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
  const line = (pick: (p: { ok: number; failed: number }) => number): string => series.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(pick(p)).toFixed(1)}`).join(' ');
  const marks = events
    .filter((e) => e.kind === 'kill' || e.kind === 'add' || e.kind === 'programmed')
    .map((e) => `<line x1="${x(e.t).toFixed(1)}" x2="${x(e.t).toFixed(1)}" y1="${pad.t}" y2="${h - pad.b}" class="ev-${e.kind}"><title>${esc(`${e.t.toFixed(2)} s: ${e.text}`)}</title></line>`)
    .join('\n');
  const ticks = Array.from({ length: 6 }, (_, i) => (tMax * i) / 5)
    .map((t) => `<text x="${x(t).toFixed(1)}" y="${h - 8}" class="val" text-anchor="middle">${t.toFixed(0)} s</text>`)
    .join('');
  return `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="timeline">
<line x1="${pad.l}" x2="${w - pad.r}" y1="${h - pad.b}" y2="${h - pad.b}" class="axis"/>
<text x="0" y="${pad.t + 10}" class="val">${yMax.toFixed(0)}/s</text><text x="0" y="${h - pad.b}" class="val">0</text>${ticks}
${marks}
<path d="${line((p) => p.ok)}" class="ok"/>
<path d="${line((p) => p.failed)}" class="failed"/></svg>`;
}

export function renderReport(summary: DemoSummary, samples: readonly TrafficSample[]): string {
  const s = summary;
  const failover = Object.entries(s.failoverMs).map(([n, ms]) => `${esc(n)}: ${ms === null ? 'n/a' : `${ms} ms`}`).join(', ');
  const rows: [string, string][] = [
    ['VIP', `${s.vip.name} ${s.vip.address}:${s.vip.port}, ${s.vip.mode}, table of ${s.vip.tableSize} slots, ${s.nodes.length} load-balancer nodes behind ECMP`],
    ['Failover (backend killed to the node routing around it in its datapath)', failover],
    ['New connections failed during the failover', s.failedDuringFailover === null ? 'n/a' : String(s.failedDuringFailover)],
    ['Established flows broken at the scale-out', `${s.broken ?? 'n/a'} of ${s.flowsMeasured} (${pct(s.moved)} of them on slots that moved; table slots moved ${pct(s.movedSlots)}, theoretical minimum ${pct(s.minimum)})`],
    ['New connections', `${s.requests.ok} ok, ${s.requests.failed} failed`],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xdplb demo report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:820px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td{padding:.25em .8em .25em 0;vertical-align:top}td:first-child{color:#555}
.lbl{font:12px monospace}.val{font:11px system-ui;fill:#444}
.got{fill:#2a7ab0}.want{fill:#b8c9d6}.axis{stroke:#888}
.ok{fill:none;stroke:#2a7ab0;stroke-width:1.5}.failed{fill:none;stroke:#c0392b;stroke-width:1.5}
.ev-kill{stroke:#c0392b;stroke-dasharray:4 3}.ev-add{stroke:#16a085;stroke-dasharray:4 3}.ev-programmed{stroke:#999;stroke-dasharray:1 3}
li{font:12px monospace}
</style></head><body>
<h1>xdplb demo report</h1>
<p>${s.complete ? 'A complete run' : 'An interrupted run'} of ${s.durationSeconds.toFixed(0)} s: a real kube-apiserver and etcd, two operator replicas, ${s.nodes.length} load-balancer nodes running the XDP datapath, backends serving HTTP, and a client opening new connections through an ECMP route.</p>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>
<h2>Distribution of new flows over the run</h2>
${distributionChart(s.distribution)}
<h2>Timeline: new connections per second (blue ok, red failed)</h2>
<p>Red dashed: a backend killed; green dashed: a backend added; dotted: a node programmed a new table.</p>
${timelineChart(samples, s.events)}
<h2>Events</h2>
<ul>${s.events.map((e) => `<li>${e.t.toFixed(2)} s ${esc(e.text)}</li>`).join('\n')}</ul>
</body></html>
`;
}
