// Live: the event stream as it happens, filtered by type and project.

import { openStream } from '../events.js';
import { h, fill, field, when } from '../dom.js';

const TYPES = ['memory.created', 'memory.updated', 'memory.deleted', 'memory.recovered', 'job.completed', 'job.dead', 'pipeline.status'];
const KEEP = 200;
const chosen = new Set(TYPES.filter((t) => t !== 'pipeline.status'));
let project = '';

export function render(root) {
  const state = h('p', { class: 'stream-state', role: 'status' }, 'connecting…');
  const list = h('ol', { class: 'events', 'aria-label': 'Events, newest first' });
  const boxes = TYPES.map((t) => {
    const id = `type-${t.replace('.', '-')}`;
    return h('span', { class: 'check' },
      h('input', { type: 'checkbox', id, value: t, checked: chosen.has(t) }),
      h('label', { for: id }, t));
  });
  const proj = h('input', { name: 'project', value: project, placeholder: 'any' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter events' },
    h('fieldset', {}, h('legend', {}, 'Event types'), boxes),
    field('Project', proj),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('button', { type: 'button', onclick: () => list.replaceChildren() }, 'Clear list')));
  fill(root, h('h1', {}, 'Live'), form, h('div', { class: 'stream-bar' }, state), list);

  let stream = null;
  const connect = (after = null) => {
    stream?.close();
    const types = [...chosen];
    stream = openStream({
      query: { types: types.length === TYPES.length ? '' : types.join(','), project },
      after,
      onState: (s) => {
        if (s === 'closed' && paused) s = 'paused';
        state.textContent = { open: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', closed: 'closed', paused: 'paused' }[s] ?? s;
        state.dataset.state = s;
      },
      onEvent: (ev) => {
        list.prepend(row(ev));
        while (list.children.length > KEEP) list.lastChild.remove();
      },
    });
  };
  // Pause keeps the place: resuming asks for what happened since
  // (Last-Event-ID), as a dropped connection does.
  let paused = null;
  const pause = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  pause.addEventListener('click', () => {
    if (paused === null) {
      paused = stream?.lastId() ?? '';
      stream?.close();
      pause.textContent = 'Resume';
      pause.setAttribute('aria-pressed', 'true');
    } else {
      const after = paused || null;
      paused = null;
      pause.textContent = 'Pause';
      pause.setAttribute('aria-pressed', 'false');
      connect(after);
    }
  });
  state.after(' ', pause);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    chosen.clear();
    for (const b of form.querySelectorAll('input[type=checkbox]:checked')) chosen.add(b.value);
    project = proj.value.trim();
    paused = null;
    pause.textContent = 'Pause';
    pause.setAttribute('aria-pressed', 'false');
    connect();
  });
  connect();
  return () => stream?.close();
}

function row(ev) {
  let data = {};
  try { data = JSON.parse(ev.data); } catch { data = { raw: ev.data }; }
  const link = data.id && ev.event.startsWith('memory.')
    ? h('a', { href: `#/memory/${encodeURIComponent(data.id)}`, class: 'mono' }, data.id) : null;
  const summary = data.content ?? data.raw ?? (ev.event === 'pipeline.status' ? JSON.stringify(data.queues ?? data) : data.error ?? data.kind ?? '');
  return h('li', { class: 'event', 'data-event': ev.event },
    h('div', { class: 'meta' }, h('span', { class: 'badge' }, ev.event), h('span', { class: 'muted' }, `#${ev.id ?? '—'}`),
      h('time', {}, when(data.updated_at || data.created_at || new Date().toISOString())),
      data.project ? h('span', {}, `project ${data.project}`) : null, data.who ? h('span', {}, `by ${data.who}`) : null, link),
    summary ? h('p', { class: 'content' }, String(summary).slice(0, 500)) : null);
}
