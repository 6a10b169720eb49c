// ui.js - small DOM helpers shared by the views: element builder, formatting,
// state badges, progress bars, toasts and dialogs. Text always goes in as
// text nodes, never as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function mib(n) {
  if (n === null || n === undefined) return '—';
  if (n >= 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + ' TiB';
  if (n >= 1024) return (n / 1024).toFixed(1) + ' GiB';
  return Math.round(n) + ' MiB';
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  return mib(n / 1048576);
}

export function rate(n) {
  if (n === null || n === undefined) return '—';
  if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB/s';
  if (n >= 1024) return (n / 1024).toFixed(1) + ' KiB/s';
  return Math.round(n) + ' B/s';
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString();
}

export function ago(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return '—';
  const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  return d.toLocaleString();
}

export function badge(state) {
  return h('span', { class: 'badge state-' + state, 'data-state': state }, state);
}

export function progress(pct, state, label) {
  const p = Math.max(0, Math.min(100, pct | 0));
  return h('div', {
    class: 'bar bar-' + state, role: 'progressbar', 'aria-valuemin': 0,
    'aria-valuemax': 100, 'aria-valuenow': p, 'aria-label': label || 'progress',
  }, h('div', { class: 'fill', style: 'width:' + p + '%' }), h('span', {}, p + ' %'));
}

export function link(href, text) {
  return h('a', { href }, text);
}

export function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty || 'Nothing here yet.');
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows));
}

let toastBox = null;

export function toast(msg, kind) {
  if (!toastBox || !document.body.contains(toastBox)) {
    toastBox = h('div', { class: 'toasts', role: 'status' });
    document.body.append(toastBox);
  }
  const t = h('div', { class: 'toast toast-' + (kind || 'info') }, msg);
  toastBox.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// A modal dialog; body is a list of nodes; resolves with the button value.
// validate(form) returns '' when the primary button may be used.
export function dialog(title, body, buttons, validate) {
  return new Promise((resolve) => {
    const form = h('form', { method: 'dialog' });
    const bar = h('div', { class: 'buttons' });
    const dlg = h('dialog', { 'aria-label': title }, form);
    const btns = buttons.map(([value, text, cls]) =>
      h('button', { value, class: cls || '', type: 'submit' }, text));
    const check = () => {
      if (!validate) return;
      const bad = validate(form);
      btns[0].disabled = bad !== '';
    };
    append(form, [h('h2', {}, title), body, bar]);
    append(bar, btns);
    form.addEventListener('input', check);
    dlg.addEventListener('close', () => {
      const v = dlg.returnValue;
      const data = new FormData(form);
      dlg.remove();
      resolve(v && v !== 'cancel' ? { value: v, data } : null);
    });
    document.body.append(dlg);
    dlg.showModal();
    check();
  });
}
