// Health: diagnostics, embeddings, the pipeline queue, and (admin) repairs.

import { api } from '../api.js';
import { h, fill, errorBox, facts, num, badge, confirmButton, announce, when } from '../dom.js';

const REFRESH_MS = 10_000;
const DOMAINS = ['queue', 'storage', 'index', 'provider', 'mutation', 'duplicate'];
const REPAIRS = [
  ['requeue-dead-jobs', 'Requeue dead jobs', {}],
  ['release-leases', 'Release stale leases', {}],
  ['check-fts', 'Check and repair the keyword index', { repair: true }],
  ['re-embed', 'Re-embed memories without a vector', { batchSize: 500 }],
  ['clean-orphans', 'Clean orphaned vectors and jobs', {}],
  ['deduplicate', 'Merge duplicate memories', {}],
  ['retention-sweep', 'Run the retention sweep now', {}],
];

export function render(root, ctx) {
  const diag = h('section', { 'aria-labelledby': 'diag-title' }, h('h2', { id: 'diag-title' }, 'Diagnostics'), h('p', { class: 'muted' }, 'Loading…'));
  const emb = h('section', { 'aria-labelledby': 'emb-title' }, h('h2', { id: 'emb-title' }, 'Embeddings'));
  const queue = h('section', { 'aria-labelledby': 'queue-title' }, h('h2', { id: 'queue-title' }, 'Pipeline'));
  const repairs = ctx.can('admin') ? repairBox(() => refresh()) : null;
  const stamp = h('p', { class: 'muted', role: 'status' });
  fill(root, h('h1', {}, 'Health'), stamp, diag, h('div', { class: 'grid2' }, emb, queue), repairs);

  async function refresh() {
    const [d, e, p] = await Promise.allSettled([
      api('/api/diagnostics'), api('/api/embeddings/status'), api('/api/pipeline/status'),
    ]);
    stamp.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    fill(diag, h('h2', { id: 'diag-title' }, 'Diagnostics'), d.status === 'fulfilled' ? diagnostics(d.value) : errorBox(d.reason));
    fill(emb, h('h2', { id: 'emb-title' }, 'Embeddings'), e.status === 'fulfilled' ? embeddings(e.value) : errorBox(e.reason));
    fill(queue, h('h2', { id: 'queue-title' }, 'Pipeline'), p.status === 'fulfilled' ? pipeline(p.value) : errorBox(p.reason));
  }
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

function diagnostics(d) {
  const c = d.composite ?? {};
  return [
    h('p', { class: 'composite' }, 'Composite ', h('strong', {}, num(c.score, 2)), ' ', badge(c.status ?? 'unknown')),
    h('ul', { class: 'domains' }, DOMAINS.filter((k) => d[k]).map((k) => {
      const v = d[k];
      const rest = Object.entries(v).filter(([f, x]) => !['score', 'status'].includes(f) && (typeof x !== 'object' || x === null));
      return h('li', { class: 'card domain' }, h('h3', {}, k, ' ', badge(v.status ?? 'unknown')),
        h('p', {}, 'score ', h('strong', {}, num(v.score, 2))),
        facts(rest.map(([f, x]) => [f, x === null ? '—' : typeof x === 'number' && !Number.isInteger(x) ? num(x, 3) : String(x)])));
    })),
    h('p', { class: 'muted' }, `Measured ${when(d.timestamp)}`),
  ];
}

function embeddings(e) {
  const p = e.provider ?? {};
  return [
    h('p', {}, 'Coverage ', h('strong', {}, `${num((e.coverage ?? 0) * 100, 1)} %`), ` (${e.embedded} of ${e.memories})`),
    facts([
      ['Provider', `${p.provider ?? '—'} · ${p.model ?? '—'}`],
      ['State', p.state ?? (p.available ? 'ready' : 'unavailable')],
      ['Dimensions', String(p.dimensions ?? e.index?.dimensions ?? '—')],
      ['Waiting to embed', String(e.pending ?? 0)],
      ['Success rate', `${num((p.successRate ?? 0) * 100, 1)} % of ${p.calls ?? 0} calls`],
      ['Vector index', e.index ? `${e.index.vectors} vectors, ${e.index.encoding}` : '—'],
      p.error ? ['Last error', p.error] : null,
    ]),
  ];
}

function pipeline(p) {
  const q = p.queues?.memory ?? {};
  return [
    h('p', {}, 'Mode ', h('strong', {}, p.mode ?? '—')),
    h('table', { class: 'queue' }, h('caption', {}, 'Job queue'),
      h('thead', {}, h('tr', {}, ['pending', 'leased', 'completed', 'failed', 'dead'].map((k) => h('th', { scope: 'col' }, k)))),
      h('tbody', {}, h('tr', {}, ['pending', 'leased', 'completed', 'failed', 'dead'].map((k) =>
        h('td', { class: k === 'dead' && q[k] > 0 ? 'bad' : '' }, String(q[k] ?? 0)))))),
    p.stats?.lastError ? h('p', { class: 'error' }, `Last error: ${p.stats.lastError}`) : null,
  ];
}

function repairBox(after) {
  const out = h('div', { 'aria-live': 'polite' });
  return h('section', { 'aria-labelledby': 'repair-title', class: 'card' },
    h('h2', { id: 'repair-title' }, 'Repair'),
    h('p', { class: 'muted' }, 'Each action asks to confirm, runs once, and is written to the audit history.'),
    h('ul', { class: 'repairs' }, REPAIRS.map(([action, label, body]) => h('li', {},
      confirmButton(label, `${label}?`, async () => {
        try {
          const r = await api(`/api/repair/${action}`, { method: 'POST', body });
          const text = r.message ?? `${action}: ${JSON.stringify(r)}`;
          fill(out, h('p', { class: 'ok' }, text));
          announce(text);
          after();
        } catch (e) {
          fill(out, errorBox(e));
        }
      })))),
    out);
}
