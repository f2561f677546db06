// Small SVG line charts (no library): series of numbers over time.

import { h } from './dom.js';

const W = 320;
const H = 120;
const PAD = { l: 40, r: 8, t: 8, b: 18 };

/**
 * A line chart. `series` = [{name, values: [number|null], cls}]; `unit`
 * labels the y axis. The chart is an <svg role=img> with a text summary.
 */
export function lineChart({ title, series, unit = '' }) {
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === 'number'));
  const max = Math.max(1e-9, ...all) * 1.1;
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i) => PAD.l + (i * (W - PAD.l - PAD.r)) / (n - 1);
  const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const latest = series.map((s) => {
    const v = [...s.values].reverse().find((x) => typeof x === 'number');
    return `${s.name} ${v === undefined ? '—' : fmt(v)}${unit}`;
  }).join(', ');
  const svg = h('svg:svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${latest}`, class: 'chart' });
  for (const f of [0, 0.5, 1]) {
    const v = (max / 1.1) * f;
    svg.append(h('svg:line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(h('svg:text', { x: PAD.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
  }
  for (const s of series) {
    let d = '';
    s.values.forEach((v, i) => {
      if (typeof v !== 'number') return;
      d += `${d ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    // One sample so far: a level line, so the chart is never empty.
    if (d && !d.includes('L')) d += `L${(W - PAD.r).toFixed(1)},${d.split(',')[1]}`;
    if (d) svg.append(h('svg:path', { d, class: `line ${s.cls || ''}` }));
  }
  const legend = h('ul', { class: 'legend' },
    series.map((s) => h('li', {}, h('span', { class: `swatch ${s.cls || ''}`, 'aria-hidden': 'true' }), s.name)));
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title, h('span', { class: 'muted' }, ` — ${latest}`)), svg, legend);
}

function fmt(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
