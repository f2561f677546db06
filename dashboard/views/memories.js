// Memories: the filtered, paginated list and the recall agents get.

import { api } from '../api.js';
import { h, fill, field, errorBox, when, num, announce, badge } from '../dom.js';

const PAGE = 25;
const TYPES = ['fact', 'preference', 'decision', 'rationale', 'daily-log', 'episodic', 'procedural', 'semantic', 'system', 'session_summary'];
// Kept across visits within the tab (back from a memory's page).
const state = { filters: {}, page: 0, query: '' };

export function render(root, ctx) {
  const f = state.filters;
  const input = (name, attrs = {}) => h('input', { name, value: f[name] ?? '', ...attrs });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter memories' },
    field('Type', h('select', { name: 'type' }, h('option', { value: '' }, 'any'),
      TYPES.map((t) => h('option', { value: t, selected: f.type === t }, t)))),
    field('Tags', input('tags', { placeholder: 'a,b (all of)' })),
    field('Who', input('who')),
    field('Project', input('project')),
    field('Pinned', h('select', { name: 'pinned' },
      [['', 'any'], ['true', 'pinned'], ['false', 'not pinned']].map(([v, l]) =>
        h('option', { value: v, selected: (f.pinned ?? '') === v }, l)))),
    field('From', input('since', { type: 'date' })),
    field('To', input('until', { type: 'date' })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
      h('button', { type: 'reset' }, 'Clear')));
  const search = h('form', { class: 'search', role: 'search' },
    field('Search as an agent would (recall)', h('input', { name: 'q', type: 'search', value: state.query, placeholder: 'When did Calvin travel to Tokyo?' })),
    h('button', { type: 'submit', class: 'primary' }, 'Search'));
  const counts = h('p', { class: 'counts', 'aria-live': 'polite' });
  const list = h('div', { class: 'list' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  fill(root, h('h1', {}, 'Memories'), search, h('details', { class: 'filter-box', open: Object.keys(f).length > 0 }, h('summary', {}, 'Filters'), form), counts, list, pager);

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.filters = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ''));
    state.page = 0;
    load();
  });
  form.addEventListener('reset', () => {
    state.filters = {};
    state.page = 0;
    setTimeout(load);
  });
  search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.query = new FormData(search).get('q').trim();
    state.page = 0;
    load();
  });

  function filterQuery() {
    const q = { ...state.filters };
    if (q.since) q.since = `${q.since}T00:00:00.000Z`;
    if (q.until) q.until = `${q.until}T23:59:59.999Z`;
    return q;
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    list.setAttribute('aria-busy', 'true');
    try {
      if (state.query) await showRecall(mine);
      else await showPage(mine);
    } catch (e) {
      if (mine === seq) fill(list, errorBox(e));
    } finally {
      list.removeAttribute('aria-busy');
    }
  }

  async function showPage(mine) {
    const r = await api('/api/memories', { query: { ...filterQuery(), limit: PAGE, offset: state.page * PAGE } });
    if (mine !== seq) return;
    const pages = Math.max(1, Math.ceil(r.count / PAGE));
    fill(counts, `${r.count.toLocaleString()} matching`,
      h('span', { class: 'muted' }, ` · ${r.stats.total.toLocaleString()} live · ${r.stats.withEmbeddings.toLocaleString()} embedded · ${r.stats.critical.toLocaleString()} critical`));
    fill(list, r.memories.length ? h('ul', { class: 'cards' }, r.memories.map((m) => card(m))) : h('p', { class: 'muted' }, 'No memories match.'));
    const prev = h('button', { type: 'button', disabled: state.page === 0, onclick: () => { state.page--; load(); } }, '← Newer');
    const next = h('button', { type: 'button', disabled: state.page + 1 >= pages, onclick: () => { state.page++; load(); } }, 'Older →');
    fill(pager, prev, h('span', {}, ` Page ${state.page + 1} of ${pages.toLocaleString()} `), next);
    announce(`${r.count} memories match`);
  }

  async function showRecall(mine) {
    const { since, until, ...rest } = filterQuery();
    const body = { query: state.query, limit: 20, ...rest, since, until };
    if (body.pinned) body.pinned = body.pinned === 'true';
    const r = await api('/api/memory/recall', { method: 'POST', body });
    if (mine !== seq) return;
    fill(counts, `${r.results.length} results for “${r.query}”`, h('span', { class: 'muted' }, ` · ${r.method} recall`),
      ' ', h('button', { type: 'button', class: 'link', onclick: () => { state.query = ''; search.reset(); search.q.value = ''; load(); } }, 'Back to the list'));
    fill(list, r.results.length
      ? h('ol', { class: 'cards results' }, r.results.map((m) => card(m, m)))
      : h('p', { class: 'muted' }, 'Nothing found.'));
    pager.replaceChildren();
    announce(`${r.results.length} results`);
  }

  function card(m, hit) {
    const pinned = m.pinned === true || m.pinned === 1;
    return h('li', { class: 'card memory' },
      h('div', { class: 'meta' },
        hit ? h('span', { class: 'score', title: 'score' }, num(hit.score, 2)) : null,
        hit ? badge(hit.source, 'source') : null,
        badge(m.type, 'type'),
        pinned ? badge('pinned') : null,
        m.project ? h('span', {}, `project ${m.project}`) : null,
        m.who ? h('span', {}, `by ${m.who}`) : null,
        h('time', { datetime: m.created_at }, when(m.created_at))),
      h('a', { class: 'content', href: `#/memory/${encodeURIComponent(m.id)}` }, m.content),
      m.tags ? h('div', { class: 'tags' }, m.tags.split(',').map((t) => h('span', { class: 'tag' }, t))) : null);
  }

  load();
  return null;
}
