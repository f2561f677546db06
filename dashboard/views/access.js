// Access (admin): the auth mode, minting and revoking tokens, and the live
// harness sessions.

import { api, seg } from '../api.js';
import { h, fill, field, errorBox, facts, when, announce, badge } from '../dom.js';

const ROLES = ['agent', 'readonly', 'operator', 'admin'];

export function render(root, ctx) {
  const status = h('section', { 'aria-labelledby': 'auth-title' }, h('h2', { id: 'auth-title' }, 'Auth'));
  const sessions = h('section', { 'aria-labelledby': 'sess-title' }, h('h2', { id: 'sess-title' }, 'Sessions'));
  const tokens = ctx.me.mode === 'local'
    ? h('section', { class: 'card' }, h('h2', {}, 'Tokens'),
      h('p', {}, 'This daemon runs in local mode: no tokens are needed or accepted. Set auth.mode to team or hybrid in agent.yaml to hand out tokens.'))
    : h('div', { class: 'grid2' }, mintForm(), revokeForm());
  fill(root, h('h1', {}, 'Access'), status, tokens, sessions);

  api('/api/auth/status').then((s) => fill(status, h('h2', { id: 'auth-title' }, 'Auth'), facts([
    ['Mode', s.mode],
    ['Token lifetime', `${s.defaultTokenTtlSeconds} s (sessions ${s.sessionTokenTtlSeconds} s)`],
    ['Secret', s.secretPresent ? 'present' : 'none'],
    ['Trusted proxies', (s.trustedProxies ?? []).join(', ') || 'none'],
    ['Rate limits', Object.entries(s.rateLimits ?? {}).map(([k, v]) => `${k} ${v.max}/${v.windowMs / 1000}s`).join(' · ')],
  ]))).catch((e) => status.append(errorBox(e)));

  async function loadSessions() {
    try {
      const r = await api('/api/sessions');
      const head = ['Session', 'Harness', 'Agent', 'Project', 'Started', 'Last seen', 'Prompts', 'Hooks'];
      fill(sessions, h('h2', { id: 'sess-title' }, `Sessions (${r.count})`),
        r.sessions.length
          ? h('div', { class: 'scroll' }, h('table', {},
            h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, r.sessions.map(sessionRow))))
          : h('p', { class: 'muted' }, 'No harness session is live.'));
    } catch (e) {
      sessions.append(errorBox(e));
    }
  }

  function sessionRow(s) {
    const toggle = h('button', {
      type: 'button',
      class: 'small',
      'aria-label': `${s.bypassed ? 'Resume' : 'Bypass'} hooks for ${s.key}`,
      onclick: async () => {
        try {
          await api(`/api/sessions/${seg(s.key)}/bypass`, { method: 'POST', body: { enabled: !s.bypassed } });
          loadSessions();
        } catch (e) {
          sessions.append(errorBox(e));
        }
      },
    }, s.bypassed ? 'Resume' : 'Bypass');
    return h('tr', {},
      h('td', { class: 'mono' }, s.key), h('td', {}, s.harness), h('td', {}, s.agentId),
      h('td', {}, s.project ?? '—'), h('td', {}, when(s.startedAt)), h('td', {}, when(s.lastSeenAt)),
      h('td', {}, String(s.prompts)),
      h('td', {}, s.bypassed ? badge('bypassed') : 'on', ' ', toggle));
  }
  loadSessions();
  const timer = setInterval(loadSessions, 15_000);
  return () => clearInterval(timer);
}

function mintForm() {
  const sub = h('input', { name: 'sub', required: true, placeholder: 'e.g. ci-agent' });
  const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const project = h('input', { name: 'project', placeholder: 'any' });
  const agent = h('input', { name: 'agent', placeholder: 'any' });
  const user = h('input', { name: 'user', placeholder: 'any' });
  const ttl = h('input', { name: 'ttl', type: 'number', min: 60, step: 60, placeholder: 'default' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card' }, h('h2', {}, 'Mint a token'),
    field('Subject', sub), field('Role', role),
    h('fieldset', {}, h('legend', {}, 'Scope (empty = everything)'), field('Project', project), field('Agent', agent), field('User', user)),
    field('Lifetime (seconds)', ttl), out,
    h('button', { type: 'submit', class: 'primary' }, 'Mint'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const scope = Object.fromEntries([['project', project], ['agent', agent], ['user', user]]
      .map(([k, el]) => [k, el.value.trim()]).filter(([, v]) => v));
    const body = { sub: sub.value.trim(), role: role.value, scope };
    if (ttl.value) body.ttlSeconds = Number(ttl.value);
    try {
      const r = await api('/api/auth/token', { method: 'POST', body });
      const shown = h('input', { readonly: true, value: r.token, id: 'minted-token', class: 'mono', 'aria-describedby': 'minted-note' });
      fill(out, h('div', { class: 'minted', role: 'alert' },
        h('label', { for: 'minted-token' }, `Token for ${r.sub} (${r.role}), expires ${when(r.expiresAt)}`), shown,
        h('p', { id: 'minted-note' }, 'Shown once: copy it now. Its id (for revoking) is ', h('code', {}, r.jti ?? '—'), '.'),
        h('button', { type: 'button', onclick: async () => {
          try { await navigator.clipboard.writeText(r.token); announce('Copied.'); } catch { shown.select(); }
        } }, 'Copy')));
      shown.select();
    } catch (e) {
      fill(out, errorBox(e));
    }
  });
  return form;
}

function revokeForm() {
  const jti = h('input', { name: 'jti', placeholder: 'token id' });
  const sub = h('input', { name: 'sub', placeholder: 'every token of a subject' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card' }, h('h2', {}, 'Revoke'),
    field('Token id (jti)', jti), field('or Subject', sub), out,
    h('button', { type: 'submit', class: 'danger' }, 'Revoke'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    if (jti.value.trim()) body.jti = jti.value.trim();
    if (sub.value.trim()) body.sub = sub.value.trim();
    if (!body.jti && !body.sub) { fill(out, h('p', { class: 'error', role: 'alert' }, 'Give a token id or a subject.')); return; }
    try {
      await api('/api/auth/revoke', { method: 'POST', body });
      fill(out, h('p', { class: 'ok' }, `Revoked ${body.jti ? `token ${body.jti}` : `every token of ${body.sub} issued until now`}.`));
      form.reset();
    } catch (e) {
      fill(out, errorBox(e));
    }
  });
  return form;
}
