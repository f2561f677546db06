// Drives the dashboard in Debian's headless chromium (playwright-core).
// Run by tests/api/dashboard.rs, which starts the daemons and passes:
//   LOCAL_URL   a local-mode daemon (empty workspace)
//   TEAM_URL    a team-mode daemon, with ADMIN_TOKEN and AGENT_TOKEN
//   SHOTS       the directory for screenshots (under target/)
//   CHROMIUM    the browser binary (default /usr/bin/chromium)
// Every check that fails is printed; the exit code is the count of them.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const LOCAL = env('LOCAL_URL');
const TEAM = env('TEAM_URL');
const ADMIN = env('ADMIN_TOKEN');
const AGENT = env('AGENT_TOKEN');
const SHOTS = env('SHOTS');
mkdirSync(SHOTS, { recursive: true });

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok || !detail ? '' : `: ${detail}`}`);
  if (!ok) failures++;
}

// A client outside the browser (like curl).
async function http(base, method, path, body, tok) {
  const headers = { 'content-type': 'application/json' };
  if (tok) headers.authorization = `Bearer ${tok}`;
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
}

const XSS = '<img src=x onerror="window.__xss=1;fetch(\'/xss-probe\')"><script>window.__xss=2</script>';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});

// A page that records dialogs, console errors (CSP violations among
// them) and requests that leave the daemon's API.
async function openPage(base, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const seen = { dialogs: [], errors: [], stray: [], bytes: 0 };
  page.on('dialog', (d) => { seen.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  // A refused call (a 409 shown to the user, a 401 that brings the
  // prompt back) is logged by chromium too; anything else is a fault.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) seen.errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== base || u.pathname.includes('xss') || u.pathname === '/x') seen.stray.push(r.url());
  });
  page.on('response', async (r) => {
    const len = Number(r.headers()['content-length'] || 0);
    seen.bytes += len;
  });
  return { page, context, seen };
}

// Wait for a selector; on a timeout, show what the page says instead.
async function see(page, selector, timeout = 30_000) {
  try {
    return await page.waitForSelector(selector, { timeout });
  } catch (e) {
    const text = await page.textContent('body').catch(() => '');
    throw new Error(`${selector} did not appear; the page says: ${text.replace(/\s+/g, ' ').slice(0, 1500)}`);
  }
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

async function noOverflow(page, what) {
  const { sw, w } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: window.innerWidth }));
  check(sw <= w, `${what}: nothing wider than the ${w}px viewport`, `scrollWidth ${sw}`);
}

// Every visible form control has a label a screen reader can read.
async function labelled(page, what) {
  const bare = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.name || el.id || el.outerHTML.slice(0, 60)));
  check(bare.length === 0, `${what}: every control has a label`, bare.join(', '));
}

async function local() {
  // Data written by a client outside the browser (the newest last).
  for (let i = 0; i < 30; i++) {
    await http(LOCAL, 'POST', '/api/memory/remember', {
      content: `Routine note ${i}: the nightly build finished in ${10 + i} minutes`, type: i % 3 ? 'fact' : 'decision', project: i % 2 ? 'atlas' : 'zephyr',
    });
  }
  const calvin = await http(LOCAL, 'POST', '/api/memory/remember', {
    content: 'Calvin flew to Tokyo in May for the design review', tags: 'travel,japan', who: 'calvin', project: 'atlas',
  });
  const xss = await http(LOCAL, 'POST', '/api/memory/remember', { content: XSS, who: 'mallory', project: 'atlas' });
  const id = calvin.body.id;

  const { page, context, seen } = await openPage(LOCAL);
  const first = await page.goto(`${LOCAL}/`);
  const csp = first.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), 'the page has a CSP without inline script', csp);
  await see(page, '.cards .card');
  check(seen.bytes < 300 * 1024, `first load under 300 KB (${Math.round(seen.bytes / 1024)} KB)`);
  const counts = await page.textContent('.counts');
  check(/32 matching/.test(counts), 'the list counts every memory', counts);
  check(await page.locator('.cards .card').count() === 25, 'the first page holds 25 memories');

  // The stored script stays text.
  const xssCard = page.locator('.cards .card', { hasText: 'onerror' });
  check(await xssCard.count() === 1, 'the XSS memory is listed');
  check((await xssCard.locator('.content').textContent()) === XSS, 'the XSS memory renders as its text');
  check(await page.locator('main img').count() === 0, 'no <img> element came from a memory');
  check(await page.evaluate(() => window.__xss) === undefined, 'no script from a memory ran');
  await shot(page, 'memories');

  // Pagination and filters, server-side.
  await page.click('text=Older →');
  await see(page, 'text=Page 2 of 2');
  check(await page.locator('.cards .card').count() === 7, 'page 2 holds the rest');
  await page.click('summary:has-text("Filters")');
  await page.selectOption('select[name=type]', 'decision');
  await page.fill('input[name=project]', 'zephyr');
  await page.click('text=Apply filters');
  await page.waitForFunction(() => /matching/.test(document.querySelector('.counts')?.textContent || '') && !/32 matching/.test(document.querySelector('.counts').textContent));
  const filtered = await page.textContent('.counts');
  check(/^5 matching/.test(filtered), 'type and project filters narrow the list', filtered);
  await page.click('button[type=reset]');
  await see(page, 'text=32 matching');

  // Search runs the recall agents get.
  await page.fill('input[name=q]', 'When did Calvin travel to Tokyo?');
  await page.click('form.search button');
  await see(page, 'ol.results');
  const top = page.locator('ol.results .card').first();
  check((await top.textContent()).includes('Calvin flew to Tokyo'), 'search finds the stored memory first');
  check(/^\d\.\d\d$/.test(await top.locator('.score').textContent()), 'a result shows its score');
  check(['keyword', 'vector', 'hybrid'].includes(await top.locator('.badge-source').textContent()), 'a result shows its source');
  await shot(page, 'search');

  // Detail, edit with a reason, history.
  await top.locator('a.content').click();
  await see(page, 'pre.content');
  check(page.url().endsWith(`#/memory/${id}`), 'the result opens the memory');
  await page.fill('textarea[name=content]', 'Calvin flew to Tokyo in June for the design review');
  await page.fill('form.edit input[name=reason]', 'the trip moved to June');
  await page.click('text=Save as version 2');
  await see(page, 'main .status:has-text("Saved: version 2.")');
  const shown = await page.textContent('pre.content');
  check(shown.includes('in June'), 'the new version is shown', shown);
  const timeline = page.locator('.timeline li');
  check(await timeline.count() === 2, 'history shows created and updated', await page.locator('.timeline').textContent());
  const upd = timeline.nth(1);
  check((await upd.textContent()).includes('the trip moved to June'), 'history shows the reason');
  check((await upd.locator('ins').textContent()).includes('June') && (await upd.locator('del').textContent()).includes('May'), 'history shows the content diff');
  check((await upd.textContent()).includes('dashboard'), 'history names who changed it');
  await shot(page, 'detail');

  // Someone else saves first: a 409 shows what changed.
  const other = await http(LOCAL, 'PATCH', `/api/memory/${id}`, { content: 'Calvin flew to Osaka in June for the design review', reason: 'city fixed elsewhere', if_version: 2 });
  check(other.status === 200, 'a second client updates the memory', JSON.stringify(other.body));
  await page.fill('textarea[name=content]', 'Calvin flew to Kyoto in June');
  await page.fill('form.edit input[name=reason]', 'my late edit');
  await page.click('text=Save as version 3');
  await see(page, '.conflict');
  const conflict = await page.textContent('.conflict');
  check(/now at version 3/.test(conflict) && conflict.includes('city fixed elsewhere') && conflict.includes('Osaka'), 'a version conflict shows what changed', conflict);
  await page.click('text=Load the current version');
  await see(page, 'text=Save as version 4');

  // Forget, then recover.
  await page.fill('form:has(h2:text("Forget")) input[name=reason]', 'wrong person');
  await page.click('text=Forget this memory');
  await see(page, 'main button:has-text("Recover this memory")');
  check(await page.locator('.badge-deleted').count() >= 1, 'a forgotten memory is marked deleted');
  check((await http(LOCAL, 'GET', `/api/memory/${id}?include_deleted=true`)).body.is_deleted === 1, 'the daemon holds it as deleted');
  await page.fill('form:has(h2:text("Recover")) input[name=reason]', 'it was the right person');
  await page.click('text=Recover this memory');
  await see(page, 'main button:has-text("Forget this memory")');
  const back = (await http(LOCAL, 'GET', `/api/memory/${id}`)).body;
  check(back.is_deleted === 0 && back.version === 5, 'recovered at version 5', JSON.stringify(back));
  check((await page.locator('.timeline li').count()) === 5, 'history shows all five events');

  // The XSS memory's own page: still text.
  await page.goto(`${LOCAL}/#/memory/${xss.body.id}`);
  await see(page, 'pre.content');
  check((await page.textContent('pre.content')) === XSS, 'the XSS memory page shows its text');

  // Live: an event from a client outside the browser appears within 2 s.
  await page.goto(`${LOCAL}/#/live`);
  await see(page, '.stream-state[data-state=open]');
  const t0 = Date.now();
  await http(LOCAL, 'POST', '/api/memory/remember', { content: 'a live event from curl', project: 'atlas' });
  const arrived = await page.waitForSelector('.events li:has-text("a live event from curl")', { timeout: 2000 }).then(() => true, () => false);
  check(arrived, `a remember appears in the live view within 2 s (${Date.now() - t0} ms)`);
  // Paused, then resumed: what happened meanwhile arrives (Last-Event-ID),
  // and nothing seen before comes twice.
  await page.getByRole('button', { name: 'Pause', exact: true }).click();
  await see(page, '.stream-state[data-state=paused]');
  await http(LOCAL, 'POST', '/api/memory/remember', { content: 'written while the feed was paused', project: 'atlas' });
  await page.getByRole('button', { name: 'Resume', exact: true }).click();
  await see(page, '.events li:has-text("written while the feed was paused")', 5_000);
  check(await page.locator('.events li:has-text("a live event from curl")').count() === 1, 'resuming replays what was missed, and nothing twice');
  // Filtered to another project, it does not.
  await page.fill('input[name=project]', 'zephyr');
  await page.click('form.filters button[type=submit]');
  await see(page, '.stream-state[data-state=open]');
  await http(LOCAL, 'POST', '/api/memory/remember', { content: 'an atlas event the filter hides', project: 'atlas' });
  await http(LOCAL, 'POST', '/api/memory/remember', { content: 'a zephyr event the filter keeps', project: 'zephyr' });
  await see(page, '.events li:has-text("a zephyr event the filter keeps")');
  check(await page.locator('.events li:has-text("an atlas event the filter hides")').count() === 0, 'the project filter hides other projects');
  await shot(page, 'live');

  // Health, with a confirmed repair.
  await page.goto(`${LOCAL}/#/health`);
  await see(page, '.composite');
  check(await page.locator('.domain').count() === 6, 'six diagnostic domains');
  check((await page.textContent('main')).includes('Coverage'), 'embedding coverage is shown');
  check(await page.locator('table.queue td').count() === 5, 'the queue shows five states');
  await page.click('text=Requeue dead jobs');
  const confirm = page.getByRole('button', { name: 'Confirm', exact: true });
  check(await confirm.count() === 1, 'a repair asks to confirm first');
  await confirm.click();
  await see(page, 'section[aria-labelledby=repair-title] .ok');
  await shot(page, 'health');

  // Performance charts.
  await page.goto(`${LOCAL}/#/performance`);
  await page.waitForFunction(() => document.querySelectorAll('svg.chart path.line').length >= 5);
  check(await page.locator('svg.chart').count() >= 4, 'latency charts per operation and the request rate are drawn');
  check(await page.locator('table tbody tr').count() > 3, 'requests by route are listed');
  await shot(page, 'performance');

  // Access (local mode: admin).
  await page.goto(`${LOCAL}/#/access`);
  await see(page, 'text=Mode');
  check((await page.textContent('main')).includes('local mode'), 'access explains local mode');
  await http(LOCAL, 'POST', '/api/hooks/session-start', { harness: 'claude-code', sessionKey: 'sess-dash-1', project: 'atlas' });
  await page.reload();
  await see(page, 'td:has-text("sess-dash-1")');
  check(true, 'a live harness session is listed');
  await shot(page, 'access');

  // Keyboard: the skip link comes first, then the menu.
  await page.goto(`${LOCAL}/#/memories`);
  await see(page, '.cards .card');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.className) === 'skip', 'Tab reaches the skip link first');
  await labelled(page, 'memories');
  await page.goto(`${LOCAL}/#/memory/${id}`);
  await see(page, 'pre.content');
  await labelled(page, 'memory detail');

  check(seen.dialogs.length === 0, 'no dialog opened', seen.dialogs.join(' | '));
  check(seen.stray.length === 0, 'no request left the daemon', seen.stray.join(' '));
  check(seen.errors.length === 0, 'no console error (CSP violations included)', seen.errors.join(' | '));
  await context.close();

  // 390 px wide.
  const phone = await openPage(LOCAL, { width: 390, height: 844 });
  for (const [view, ready] of [['memories', '.cards .card'], [`memory/${id}`, 'pre.content'], ['live', '.stream-state'],
    ['health', '.composite'], ['performance', 'svg.chart'], ['access', 'text=Mode']]) {
    await phone.page.goto(`${LOCAL}/#/${view}`);
    await phone.page.waitForSelector(ready);
    await noOverflow(phone.page, `${view.split('/')[0]} at 390 px`);
  }
  await phone.page.goto(`${LOCAL}/#/memories`);
  await see(phone.page, '.cards .card');
  await shot(phone.page, 'memories-390');
  check(phone.seen.errors.length === 0, 'no console error at 390 px', phone.seen.errors.join(' | '));
  await phone.context.close();
}

async function team() {
  const alpha = await http(TEAM, 'POST', '/api/memory/remember', { content: 'team memory in project alpha', project: 'alpha' }, ADMIN);
  await http(TEAM, 'POST', '/api/memory/remember', { content: 'team memory in project beta', project: 'beta' }, ADMIN);
  const { page, context, seen } = await openPage(TEAM);
  await page.goto(`${TEAM}/`);
  await see(page, '#login:not([hidden])');
  check(await page.locator('#nav a').count() === 0, 'without a token: the prompt, no views');
  await shot(page, 'login');

  await page.fill('#login-token', 'not-a-token');
  await page.click('#login button');
  await see(page, '#login-error:has-text("Token refused")');
  check(true, 'a bad token is refused at the prompt');

  await page.fill('#login-token', AGENT);
  await page.click('#login button');
  await see(page, '.cards .card');
  const menu = await page.locator('#nav a').allTextContents();
  check(menu.join(',') === 'Memories,Live', 'an agent token sees Memories and Live only', menu.join(','));
  check(await page.evaluate(() => sessionStorage.getItem('signet.token')) !== null, 'the token is kept in sessionStorage');
  await page.goto(`${TEAM}/#/access`);
  await see(page, 'text=may not use this view');
  check(await page.locator('main form').count() === 0, 'the admin view shows no forms to an agent');
  for (const [method, path, body] of [['POST', '/api/auth/token', { sub: 'x', role: 'admin' }], ['GET', '/api/diagnostics'], ['POST', '/api/repair/release-leases', {}]]) {
    const r = await http(TEAM, method, path, body, AGENT);
    check(r.status === 403, `the server still refuses the agent: ${method} ${path}`, String(r.status));
  }
  // The live view streams with the token in a header.
  await page.goto(`${TEAM}/#/live`);
  await see(page, '.stream-state[data-state=open]');
  await http(TEAM, 'POST', '/api/memory/remember', { content: 'team live event', project: 'alpha' }, ADMIN);
  await see(page, '.events li:has-text("team live event")');
  check(true, 'the live view streams with the bearer token');

  // Revoked mid-session: back to the prompt on the next call.
  const claims = JSON.parse(Buffer.from(AGENT.split('.')[0], 'base64url').toString());
  const rv = await http(TEAM, 'POST', '/api/auth/revoke', { jti: claims.jti }, ADMIN);
  check(rv.status === 200, 'the admin revokes the agent token', JSON.stringify(rv.body));
  await page.goto(`${TEAM}/#/memories`);
  await see(page, '#login:not([hidden])');
  check(await page.evaluate(() => sessionStorage.getItem('signet.token')) === null, 'a 401 drops the token and shows the prompt');

  // An admin sees everything and can mint a token (shown once).
  await page.fill('#login-token', ADMIN);
  await page.click('#login button');
  await see(page, '.cards .card');
  const adminMenu = await page.locator('#nav a').allTextContents();
  check(adminMenu.join(',') === 'Memories,Live,Health,Performance,Access', 'an admin sees every view', adminMenu.join(','));
  await page.goto(`${TEAM}/#/access`);
  await page.fill('input[name=sub]', 'ci-reader');
  await page.selectOption('select[name=role]', 'readonly');
  await page.fill('input[name=project]', 'alpha');
  await page.getByRole('button', { name: 'Mint', exact: true }).click();
  await see(page, '#minted-token');
  const minted = await page.inputValue('#minted-token');
  const who = await http(TEAM, 'GET', '/api/auth/whoami', undefined, minted);
  check(who.status === 200 && who.body.role === 'readonly' && who.body.claims.scope.project === 'alpha', 'the minted token works with its role and scope', JSON.stringify(who.body));
  await shot(page, 'access-team');
  await page.click('text=Sign out');
  await see(page, '#login:not([hidden])');

  // The read-only token it minted: its project's memories only, and no
  // edit, forget or recover on a memory's page.
  await page.fill('#login-token', minted);
  await page.click('#login button');
  await see(page, 'text=may not use this view');
  await page.goto(`${TEAM}/#/memories`);
  await see(page, '.cards .card');
  const listed = await page.locator('.cards .card .content').allTextContents();
  check(listed.every((c) => !c.includes('beta')) && listed.some((c) => c.includes('project alpha')), 'a project-scoped token lists its project only', listed.join(' | '));
  await page.goto(`${TEAM}/#/memory/${alpha.body.id}`);
  await see(page, 'pre.content');
  check(await page.locator('main form').count() === 0, 'a read-only token gets no edit, forget or recover');
  await page.click('text=Sign out');
  await see(page, '#login:not([hidden])');
  check(seen.errors.length === 0, 'no console error in team mode', seen.errors.join(' | '));
  check(seen.dialogs.length === 0, 'no dialog in team mode');
  await context.close();
}

try {
  await local();
  await team();
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
  failures++;
} finally {
  await browser.close();
}
console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(Math.min(failures, 100));
