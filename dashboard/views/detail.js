// One memory: fields, history with diffs, edit (with if_version), forget,
// recover and similar memories.

import { api, ApiError, seg } from '../api.js';
import { h, fill, field, errorBox, facts, when, num, announce, badge } from '../dom.js';

export function render(root, ctx, [id]) {
  if (!id) {
    fill(root, h('h1', {}, 'Memory'), h('p', {}, 'No memory id given.'));
    return null;
  }
  const status = h('div', { class: 'status', 'aria-live': 'polite' });
  let current = null;

  async function load(note) {
    try {
      const [m, hist] = await Promise.all([
        api(`/api/memory/${seg(id)}`, { query: { include_deleted: true } }),
        api(`/api/memory/${seg(id)}/history`, { query: { limit: 200 } }),
      ]);
      current = m;
      show(m, hist.history, note);
    } catch (e) {
      fill(root, h('h1', {}, 'Memory'), errorBox(e), h('p', {}, h('a', { href: '#/memories' }, 'Back to memories')));
    }
  }

  function show(m, history, note) {
    const deleted = m.is_deleted === 1 || m.is_deleted === true;
    fill(status, note ? h('p', { class: 'ok' }, note) : null);
    fill(root,
      h('p', {}, h('a', { href: '#/memories' }, '← Memories')),
      h('h1', {}, 'Memory ', h('small', { class: 'muted mono' }, m.id)),
      h('div', { class: 'meta' }, badge(m.type, 'type'), ` version ${m.version}`,
        deleted ? badge('deleted') : null, m.pinned ? badge('pinned') : null),
      status,
      h('pre', { class: 'content', 'aria-label': 'Content' }, m.content),
      facts([
        ['Type', m.type], ['Version', String(m.version)], ['Importance', num(m.importance, 2)],
        ['Tags', m.tags || '—'], ['Pinned', m.pinned ? 'yes' : 'no'], ['Who', m.who],
        ['Project', m.project], ['Agent', m.agent], ['User', m.user],
        ['Source', [m.source_type, m.source_id].filter(Boolean).join(' · ') || '—'],
        ['Created', when(m.created_at)], ['Updated', `${when(m.updated_at)}${m.updated_by ? ` by ${m.updated_by}` : ''}`],
        ['Recalled', `${m.access_count} times${m.last_accessed ? `, last ${when(m.last_accessed)}` : ''}`],
        ['Embedding', m.embedding_model || 'none yet'],
        deleted ? ['Deleted', when(m.deleted_at)] : null,
      ]),
      actions(m, deleted),
      h('section', { 'aria-labelledby': 'hist-title' }, h('h2', { id: 'hist-title' }, 'History'), timeline(history)),
      similar(m, deleted));
  }

  function actions(m, deleted) {
    const box = h('section', { class: 'actions-box', 'aria-label': 'Actions' });
    if (!deleted && ctx.can('modify')) box.append(editForm(m));
    if (!deleted && ctx.can('forget')) box.append(forgetForm(m));
    if (deleted && ctx.can('recover')) box.append(recoverForm(m));
    return box;
  }

  function editForm(m) {
    const reason = h('input', { name: 'reason', required: true, placeholder: 'why this change' });
    const content = h('textarea', { name: 'content', rows: 5, required: true }, m.content);
    const tags = h('input', { name: 'tags', value: m.tags || '' });
    const importance = h('input', { name: 'importance', type: 'number', min: 0, max: 1, step: 0.05, value: m.importance });
    const pinned = h('input', { name: 'pinned', id: 'edit-pinned', type: 'checkbox', checked: Boolean(m.pinned) });
    const out = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card edit' },
      h('h2', {}, 'Edit'),
      field('Content', content), field('Tags', tags, 'comma-separated'),
      field('Importance', importance),
      h('div', { class: 'field check' }, pinned, h('label', { for: 'edit-pinned' }, 'Pinned')),
      field('Reason (required)', reason), out,
      h('button', { type: 'submit', class: 'primary' }, `Save as version ${m.version + 1}`));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { reason: reason.value.trim(), if_version: m.version };
      if (content.value !== m.content) body.content = content.value;
      if (tags.value !== (m.tags || '')) body.tags = tags.value;
      if (importance.value !== '' && Number(importance.value) !== m.importance) body.importance = Number(importance.value);
      if (pinned.checked !== Boolean(m.pinned)) body.pinned = pinned.checked;
      try {
        const r = await api(`/api/memory/${seg(id)}`, { method: 'PATCH', body });
        const note = r.status === 'no_changes' ? 'Nothing changed.' : `Saved: version ${r.newVersion}.`;
        announce(note);
        await load(note);
      } catch (e) {
        if (e instanceof ApiError && e.status === 409 && e.body.status === 'version_conflict') {
          await conflict(out, m, content.value);
        } else fill(out, errorBox(e));
      }
    });
    return form;
  }

  // Someone else saved first: show what they changed, keep the draft.
  async function conflict(out, mine, draft) {
    try {
      const [now, hist] = await Promise.all([
        api(`/api/memory/${seg(id)}`, { query: { include_deleted: true } }),
        api(`/api/memory/${seg(id)}/history`, { query: { limit: 1000 } }),
      ]);
      const since = hist.history.slice(-(now.version - mine.version));
      fill(out, h('div', { class: 'conflict', role: 'alert' },
        h('h3', {}, `Version conflict: this memory is now at version ${now.version}, you edited version ${mine.version}.`),
        h('p', {}, 'What changed since you opened it:'),
        h('ol', {}, since.map((e) => h('li', {}, `${e.event} by ${e.changedBy || 'unknown'}${e.reason ? ` (${e.reason})` : ''}`,
          e.oldContent !== null && e.newContent !== null && e.oldContent !== e.newContent ? diff(e.oldContent, e.newContent) : null))),
        h('p', {}, 'Your draft:'), h('pre', { class: 'content' }, draft),
        h('button', { type: 'button', onclick: () => load('Reloaded the current version.') }, 'Load the current version')));
    } catch (e) {
      fill(out, errorBox(e));
    }
  }

  function forgetForm(m) {
    const reason = h('input', { name: 'reason', required: true });
    const force = h('input', { type: 'checkbox', name: 'force', id: 'forget-force' });
    const out = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card' }, h('h2', {}, 'Forget'),
      h('p', { class: 'muted' }, 'A forgotten memory can be recovered for 30 days.'),
      field('Reason (required)', reason),
      m.pinned ? h('div', { class: 'field check' }, force, h('label', { for: 'forget-force' }, 'Force (it is pinned)')) : null,
      out, h('button', { type: 'submit', class: 'danger' }, 'Forget this memory'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api(`/api/memory/${seg(id)}`, { method: 'DELETE', body: { reason: reason.value.trim(), if_version: m.version, force: force.checked || undefined } });
        announce('Forgotten.');
        await load('Forgotten. It can be recovered below.');
      } catch (e) {
        fill(out, errorBox(e));
      }
    });
    return form;
  }

  function recoverForm(m) {
    const reason = h('input', { name: 'reason', required: true });
    const out = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card' }, h('h2', {}, 'Recover'),
      field('Reason (required)', reason), out,
      h('button', { type: 'submit', class: 'primary' }, 'Recover this memory'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await api(`/api/memory/${seg(id)}/recover`, { method: 'POST', body: { reason: reason.value.trim(), if_version: m.version } });
        announce('Recovered.');
        await load(`Recovered: version ${r.newVersion}.`);
      } catch (e) {
        fill(out, errorBox(e));
      }
    });
    return form;
  }

  function similar(m, deleted) {
    const box = h('section', { 'aria-labelledby': 'sim-title' }, h('h2', { id: 'sim-title' }, 'Similar memories'));
    if (deleted) {
      box.append(h('p', { class: 'muted' }, 'Not searched for a forgotten memory.'));
      return box;
    }
    const list = h('div', {}, h('p', { class: 'muted' }, 'Looking…'));
    box.append(list);
    api('/api/memory/similar', { query: { id: m.id, k: 5 } }).then((r) => {
      fill(list, r.results?.length
        ? h('ul', { class: 'cards' }, r.results.map((s) => h('li', { class: 'card' },
          h('span', { class: 'score' }, num(s.score, 2)), ' ',
          h('a', { href: `#/memory/${encodeURIComponent(s.id)}` }, s.content))))
        : h('p', { class: 'muted' }, r.embedded === false ? 'This memory has no vector yet.' : 'None found.'));
    }).catch((e) => fill(list, errorBox(e)));
    return box;
  }

  load();
  return null;
}

function timeline(history) {
  if (!history.length) return h('p', { class: 'muted' }, 'No history.');
  return h('ol', { class: 'timeline' }, history.map((e) => h('li', { class: `event event-${e.event}` },
    h('div', { class: 'meta' }, badge(e.event, 'event'), h('time', { datetime: e.createdAt }, when(e.createdAt)),
      ` by ${e.changedBy || 'unknown'}${e.actorType ? ` (${e.actorType})` : ''}`),
    e.reason ? h('p', { class: 'reason' }, `Reason: ${e.reason}`) : null,
    e.event === 'updated' && e.oldContent !== null && e.newContent !== null && e.oldContent !== e.newContent
      ? diff(e.oldContent, e.newContent) : null)));
}

/** A word-level diff of two texts as <del>/<ins> (text only). */
export function diff(a, b) {
  const x = a.split(/(\s+)/);
  const y = b.split(/(\s+)/);
  const box = h('p', { class: 'diff', 'aria-label': 'Content change' });
  if (x.length * y.length > 4_000_000) {
    box.append(h('del', {}, a), ' ', h('ins', {}, b));
    return box;
  }
  // Longest common subsequence, then walk it.
  const n = x.length;
  const m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  const push = (tag, text) => {
    const last = box.lastChild;
    if (tag && last && last.nodeName.toLowerCase() === tag) last.textContent += text;
    else box.append(tag ? h(tag, {}, text) : text);
  };
  while (i < n && j < m) {
    if (x[i] === y[j]) { push(null, x[i]); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) push('del', x[i++]);
    else push('ins', y[j++]);
  }
  while (i < n) push('del', x[i++]);
  while (j < m) push('ins', y[j++]);
  return box;
}
