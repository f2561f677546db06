// The dashboard: sign-in (team mode), navigation by role, hash routes.

import { api, token, onUnauthorized } from './api.js';
import { h, fill, announce } from './dom.js';
import * as memories from './views/memories.js';
import * as detail from './views/detail.js';
import * as live from './views/live.js';
import * as health from './views/health.js';
import * as performance from './views/performance.js';
import * as access from './views/access.js';

// Each view, the permission it needs, and whether it is in the menu.
const VIEWS = [
  { path: 'memories', label: 'Memories', needs: 'recall', view: memories },
  { path: 'memory', label: 'Memory', needs: 'recall', view: detail, hidden: true },
  { path: 'live', label: 'Live', needs: 'recall', view: live },
  { path: 'health', label: 'Health', needs: 'diagnostics', view: health },
  { path: 'performance', label: 'Performance', needs: 'analytics', view: performance },
  { path: 'access', label: 'Access', needs: 'admin', view: access },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const identity = document.getElementById('identity');
const login = document.getElementById('login');
let me = null;
let cleanup = null;

/** What the signed-in caller may do. */
const can = (p) => Boolean(me?.permissions?.includes(p));

function showLogin(message) {
  cleanup?.();
  cleanup = null;
  me = null;
  document.body.classList.add('signed-out');
  nav.replaceChildren();
  identity.replaceChildren();
  main.replaceChildren();
  login.hidden = false;
  document.getElementById('login-error').textContent = message || '';
  document.getElementById('login-token').focus();
}

async function signIn() {
  try {
    me = await api('/api/auth/whoami');
  } catch (e) {
    if (e.status !== 401) fill(main, h('p', { class: 'error', role: 'alert' }, `The daemon did not answer: ${e.message}`));
    return;
  }
  login.hidden = true;
  document.body.classList.remove('signed-out');
  const who = me.claims
    ? `${me.claims.sub} · ${me.role}${scopeText(me.claims.scope)}`
    : `${me.mode} mode · ${me.role}`;
  fill(identity, h('span', { class: 'who', title: 'Signed in as' }, who),
    token.get() ? h('button', { type: 'button', onclick: signOut }, 'Sign out') : null);
  fill(nav, VIEWS.filter((v) => !v.hidden && can(v.needs)).map((v) =>
    h('a', { href: `#/${v.path}`, 'data-view': v.path }, v.label)));
  route();
}

function scopeText(scope) {
  const parts = Object.entries(scope || {}).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`);
  return parts.length ? ` · ${parts.join(', ')}` : '';
}

function signOut() {
  token.clear();
  showLogin('Signed out.');
}

function route() {
  if (!me) return;
  const [path, ...rest] = (location.hash.replace(/^#\/?/, '') || 'memories').split('/');
  const entry = VIEWS.find((v) => v.path === path) ?? VIEWS[0];
  cleanup?.();
  cleanup = null;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === (entry.hidden ? 'memories' : entry.path)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  if (!can(entry.needs)) {
    fill(main, h('h1', {}, entry.label), h('p', { role: 'alert' }, `Your role (${me.role}) may not use this view.`));
    return;
  }
  const ctx = { me, can, navigate: (to) => { location.hash = to; } };
  cleanup = entry.view.render(main, ctx, rest.map(decodeURIComponent)) || null;
  document.title = `${entry.label} · signet-rs`;
  announce(`${entry.label} view`);
}

onUnauthorized((message) => {
  if (token.get()) token.clear();
  showLogin(message ? `Token refused: ${message}` : 'This server needs an access token.');
});

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = document.getElementById('login-token');
  const t = input.value.trim();
  if (!t) return;
  token.set(t);
  input.value = '';
  await signIn();
});

window.addEventListener('hashchange', route);
signIn();
