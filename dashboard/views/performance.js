// Performance: latency percentiles per operation, requests and errors,
// drawn from /api/analytics as it refreshes.

import { api } from '../api.js';
import { h, fill, errorBox, num } from '../dom.js';
import { lineChart } from '../chart.js';

const REFRESH_MS = 5_000;
const KEEP = 60;
// Samples kept while the tab is open (across visits to the view).
const samples = [];

export function render(root) {
  const charts = h('div', { class: 'charts' });
  const table = h('div', {});
  const stamp = h('p', { class: 'muted', role: 'status' });
  fill(root, h('h1', {}, 'Performance'), stamp, charts, h('h2', {}, 'Requests by route'), table);

  async function refresh() {
    try {
      const [latency, usage] = await Promise.all([api('/api/analytics/latency'), api('/api/analytics/usage')]);
      const endpoints = Object.entries(usage.endpoints ?? {});
      const requests = endpoints.reduce((s, [, v]) => s + v.count, 0);
      const errors = endpoints.reduce((s, [, v]) => s + v.errors, 0);
      samples.push({ at: Date.now(), latency, requests, errors });
      while (samples.length > KEEP) samples.shift();
      draw(endpoints, requests, errors);
      stamp.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s (last ${samples.length} samples).`;
    } catch (e) {
      fill(charts, errorBox(e));
    }
  }

  function draw(endpoints, requests, errors) {
    const ops = Object.keys(samples.at(-1).latency).sort();
    const rate = (key) => samples.map((s, i) => (i === 0 ? null
      : Math.max(0, (s[key] - samples[i - 1][key]) / ((s.at - samples[i - 1].at) / 1000))));
    fill(charts,
      h('p', { class: 'totals' }, h('strong', {}, requests.toLocaleString()), ' requests, ',
        h('strong', { class: errors ? 'bad' : '' }, errors.toLocaleString()), ' errors since start'),
      ops.map((op) => lineChart({
        title: `${op} latency (ms, n=${samples.at(-1).latency[op].count})`,
        unit: ' ms',
        series: ['p50', 'p95', 'p99'].map((p, i) => ({ name: p, cls: `s${i}`, values: samples.map((s) => s.latency[op]?.[p] ?? null) })),
      })),
      lineChart({ title: 'Requests and errors per second', series: [
        { name: 'requests/s', cls: 's0', values: rate('requests') },
        { name: 'errors/s', cls: 's2', values: rate('errors') },
      ] }));
    endpoints.sort((a, b) => b[1].count - a[1].count);
    fill(table, h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Route', 'Requests', 'Errors', 'Mean ms'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, endpoints.map(([route, v]) => h('tr', {},
        h('td', { class: 'mono' }, route), h('td', {}, v.count.toLocaleString()),
        h('td', { class: v.errors ? 'bad' : '' }, v.errors.toLocaleString()),
        h('td', {}, num(v.totalLatencyMs / Math.max(1, v.count), 2))))))));
  }

  // A second sample soon, so rates have a first value.
  refresh();
  const soon = setTimeout(refresh, 1_000);
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearTimeout(soon);
    clearInterval(timer);
  };
}
