// DOM helpers. Every string becomes a text node or an attribute value:
// nothing the server returns is ever parsed as HTML.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'required', 'open']);

/** Create an element: h('a', {href: '#/x', onclick: fn}, 'text', child, [more]). */
export function h(tag, props, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(tag.indexOf(':') + 1))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Append children (strings as text; null, false and undefined skipped). */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Tell screen readers (and tests) what just happened. */
export function announce(message) {
  const live = document.getElementById('announce');
  if (live) live.textContent = message;
}

/** A timestamp as local date and time. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** A number with a fixed count of decimals ('—' when missing). */
export function num(v, digits = 0) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '—';
}

/** A labelled field: <div><label for=id>text</label>control</div>. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint ? h('small', { class: 'muted' }, hint) : null);
}

/** An error message block (role=alert), or nothing. */
export function errorBox(err) {
  if (!err) return null;
  return h('p', { class: 'error', role: 'alert' }, err.message || String(err));
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

/** A status badge: healthy / degraded / unhealthy and friends. */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z0-9-]/gi, '')}` }, text);
}

/**
 * A button that asks to confirm inline (no browser dialog): first click
 * shows "Confirm" and "Cancel", the confirm runs `action`.
 */
export function confirmButton(label, question, action, { danger = false } = {}) {
  const wrap = h('span', { class: 'confirm' });
  const start = h('button', { type: 'button', class: danger ? 'danger' : '' }, label);
  const reset = () => fill(wrap, start);
  start.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: danger ? 'danger' : 'primary' }, 'Confirm');
    const no = h('button', { type: 'button' }, 'Cancel');
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try { await action(); } finally { reset(); }
    });
    no.addEventListener('click', () => { reset(); start.focus(); });
    fill(wrap, h('span', { class: 'question' }, question), ' ', yes, ' ', no);
    yes.focus();
  });
  reset();
  return wrap;
}
