// app.js - the UI's shell: login, navigation, the live state store fed by
// the manager's event stream, and the hash router that mounts each view.
import { api, session, openStream, loadRoutes, loadMe, me, has, ApiError } from './api.js';
import { h, replace, progress, badge, link, ago } from './ui.js';
import { dashboardView } from './views/dashboard.js';
import { hostsView, hostView } from './views/hosts.js';
import { vmsView } from './views/vms.js';
import { vmView } from './views/vm.js';
import { createView } from './views/create.js';
import { storageView, networksView, tasksView } from './views/misc.js';

// The latest snapshot from the stream and who wants it.
export const store = {
  state: { hosts: [], vms: [], tasks: [], events: [], stats: { hosts: {}, vms: {} } },
  subs: new Set(),
  set(s) {
    this.state = s;
    for (const fn of this.subs) fn(s);
  },
};

const routes = [
  [/^\/$/, dashboardView],
  [/^\/hosts$/, hostsView],
  [/^\/hosts\/([^/]+)$/, hostView],
  [/^\/vms$/, vmsView],
  [/^\/vms\/new$/, createView],
  [/^\/vms\/([^/]+)$/, vmView],
  [/^\/storage$/, storageView],
  [/^\/networks$/, networksView],
  [/^\/tasks$/, tasksView],
];

const nav = [
  ['#/', 'Dashboard'], ['#/hosts', 'Hosts'], ['#/vms', 'Virtual machines'],
  ['#/storage', 'Storage'], ['#/networks', 'Networks'], ['#/tasks', 'Tasks'],
];

let current = null;	// { view, unsub }
let closeStream = null;
let shell = null;

function loginView(root, message) {
  const err = h('p', { class: 'error', id: 'login-error', role: 'alert' }, message || '');
  const remember = h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'remember', id: 'remember' }), ' Keep me signed in on this browser');
  const tokenForm = h('form', { class: 'login', id: 'login-token' },
    h('label', { for: 'token' }, 'API token'),
    h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password' }),
    h('button', { type: 'submit', class: 'primary' }, 'Log in with token'));
  const pwForm = h('form', { class: 'login', id: 'login-password', hidden: true },
    h('label', { for: 'user' }, 'User name'),
    h('input', { id: 'user', name: 'user', autocomplete: 'username' }),
    h('label', { for: 'password' }, 'Password'),
    h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password' }),
    h('label', { for: 'otp', hidden: true, id: 'otp-label' }, 'One-time code'),
    h('input', { id: 'otp', name: 'otp', hidden: true, inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6' }),
    h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  const canPw = has('POST', '/login');
  const tabT = h('button', { type: 'button', 'aria-selected': 'true', id: 'use-token' }, 'API token');
  const tabP = h('button', { type: 'button', 'aria-selected': 'false', id: 'use-password' }, 'User and password');
  const pick = (pw) => {
    tokenForm.hidden = pw;
    pwForm.hidden = !pw;
    tabT.setAttribute('aria-selected', String(!pw));
    tabP.setAttribute('aria-selected', String(pw));
    err.textContent = '';
    (pw ? pwForm.user : tokenForm.token).focus();
  };
  tabT.addEventListener('click', () => pick(false));
  tabP.addEventListener('click', () => pick(true));
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const tok = tokenForm.token.value.trim();
    if (!tok) {
      err.textContent = 'Enter an API token.';
      return;
    }
    try {
      await api('GET', '/hosts', undefined, tok);
    } catch (ex) {
      err.textContent = ex.status === 401 ? 'That token is not valid.' : ex.message;
      return;
    }
    session.save(tok, remember.querySelector('input').checked);
    start();
  });
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = pwForm.user.value.trim();
    const password = pwForm.password.value;
    if (!name || !password) {
      err.textContent = 'Enter your user name and password.';
      return;
    }
    const body = { name, password };
    // Users with a TOTP second factor: the manager asks for the code.
    if (!pwForm.otp.hidden) body.otp = pwForm.otp.value.trim();
    try {
      const r = await api('POST', '/login', body, '');
      session.save(r.token, remember.querySelector('input').checked);
      start();
    } catch (ex) {
      if (ex.data && ex.data.otp_required) {
        pwForm.otp.hidden = false;
        pwForm.querySelector('#otp-label').hidden = false;
        pwForm.otp.focus();
        err.textContent = 'Enter the one-time code from your authenticator app.';
        return;
      }
      err.textContent = ex.message;
    }
  });
  replace(root, h('main', { class: 'login-page' },
    h('h1', {}, 'cvirt'),
    canPw ? h('div', { class: 'login-tabs' }, tabT, tabP) : null,
    h('p', { class: 'muted' }, 'cvirt up prints where the admin API token is.'),
    tokenForm, pwForm, remember, err));
  tokenForm.token.focus();
}

function logout(message, ended) {
  // Ends a password session on the manager too (API tokens stay valid).
  if (!ended && session.token && has('POST', '/logout')) api('POST', '/logout', {}).catch(() => {});
  session.clear();
  if (closeStream) closeStream();
  closeStream = null;
  unmount();
  shell = null;
  loginView(document.getElementById('app'), message);
}

function unmount() {
  if (!current) return;
  store.subs.delete(current.update);
  if (current.view.unmount) current.view.unmount();
  current = null;
}

function taskPanel(s) {
  const rows = s.tasks.slice(0, 6).map((t) => h('tr', { dataset: { task: t.id } },
    h('td', {}, t.kind), h('td', {}, t.vm ? link('#/vms/' + t.vm, t.vm) : '—'),
    h('td', {}, badge(t.state)), h('td', { class: 'pcell' }, progress(t.progress, t.state, 'task ' + t.id)),
    h('td', {}, ago(t.updated)), h('td', { class: 'err' }, t.error || '')));
  return h('table', { class: 'compact' }, h('tbody', {}, rows));
}

function buildShell(root) {
  const status = h('span', { class: 'live', id: 'live' }, 'connecting…');
  const who = me.name ? h('span', { class: 'who', id: 'whoami' }, me.name + ' (' + me.role + ')') : null;
  const main = h('main', { id: 'view', tabindex: '-1' });
  const tasks = h('section', { class: 'taskpanel', 'aria-label': 'Recent tasks' });
  const links = nav.map(([href, text]) => h('a', { href }, text));
  replace(root,
    h('header', {},
      h('a', { class: 'brand', href: '#/' }, 'cvirt'),
      h('nav', { 'aria-label': 'Main' }, links),
      status, who,
      h('button', { class: 'link', id: 'logout', onclick: () => logout('Logged out.') }, 'Log out')),
    main,
    h('footer', {}, h('h2', {}, 'Recent tasks'), tasks));
  store.subs.add((s) => replace(tasks, taskPanel(s)));
  shell = { main, status, links };
}

function route() {
  if (!shell) return;
  const path = ((location.hash || '#/').slice(1) || '/').split('?')[0];
  unmount();
  for (const a of shell.links) {
    const target = a.getAttribute('href').slice(1);
    a.classList.toggle('active', target === '/' ? path === '/' : path.startsWith(target));
  }
  for (const [re, make] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const view = make(...m.slice(1).map(decodeURIComponent));
    replace(shell.main, view.el);
    current = { view, update: (s) => view.update(s) };
    store.subs.add(current.update);
    view.update(store.state);
    return;
  }
  replace(shell.main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ' + path + '.'));
}

async function start() {
  const root = document.getElementById('app');
  try {
    await loadMe();
  } catch (e) {
    if (e.status === 401) return;	// cvirt-unauthorized shows the login page
  }
  buildShell(root);
  closeStream = openStream((s) => store.set(s), (st) => {
    shell.status.textContent = st === 'live' ? 'live' : st === 'polling' ? 'polling (no live stream free)' : 'reconnecting…';
    shell.status.className = 'live ' + st;
  });
  route();
}

async function boot() {
  const root = document.getElementById('app');
  await loadRoutes();
  window.addEventListener('hashchange', route);
  window.addEventListener('cvirt-unauthorized', () => {
    if (shell) logout('Your session is no longer valid; log in again.', true);
  });
  if (!session.token) {
    loginView(root);
    return;
  }
  try {
    await api('GET', '/health');
    start();
  } catch (e) {
    loginView(root, e instanceof ApiError ? e.message : String(e));
  }
}

boot();
