// misc.js - storage domains, networks and the task list (live progress).
import { api, has, enc, upload, allowed } from '../api.js';
import { h, replace, table, badge, bytes, progress, ago, link, toast } from '../ui.js';

export function storageView() {
  const body = h('div');
  const el = h('div', {}, h('h1', {}, 'Storage domains'), body);
  let timer = null;
  async function load() {
    try {
      const list = await api('GET', '/storage');
      replace(body, table(['Name', 'Path', 'Used', 'Free', 'Total', 'Hosts'], list.map((d) => {
        const used = d.total_bytes ? (d.total_bytes - d.free_bytes) * 100 / d.total_bytes : 0;
        return h('tr', { dataset: { storage: d.name } }, h('td', {}, d.name), h('td', {}, d.path),
          h('td', { class: 'pcell' }, progress(used, 'used', 'used space of ' + d.name)),
          h('td', {}, bytes(d.free_bytes)), h('td', {}, bytes(d.total_bytes)),
          h('td', {}, (d.hosts || []).map((x) => h('span', { class: 'chip ' + (x.ok ? 'ok' : 'bad'), title: x.error || '' },
            x.host + (x.ok ? '' : ' (unusable)')))));
      }), 'No storage domains.'));
    } catch (e) {
      replace(body, h('p', { class: 'error' }, e.message));
    }
  }
  const isos = isoSection();
  el.append(isos.el);
  load();
  isos.load();
  timer = setInterval(() => { load(); isos.load(); }, 5000);
  return { el, update() {}, unmount() { clearInterval(timer); } };
}

// ISOs of a storage domain's isos/ area: the list, and an upload with a
// progress bar (PUT /storage/S/isos/NAME streams the file to a host).
function isoSection() {
  const sel = h('select', { id: 'iso-storage', 'aria-label': 'Storage domain' });
  const file = h('input', { type: 'file', id: 'iso-file', accept: '.iso,.img', 'aria-label': 'ISO file' });
  const bar = h('progress', { id: 'iso-progress', max: '100', value: '0', hidden: true });
  const pct = h('span', { id: 'iso-pct' });
  const msg = h('span', { id: 'iso-msg', role: 'status' });
  const btn = h('button', { id: 'iso-upload', type: 'button' }, 'Upload ISO');
  const list = h('div', { id: 'iso-list' });
  let busy = false;
  async function load() {
    try {
      const doms = await api('GET', '/storage');
      const keep = sel.value;
      replace(sel, doms.map((d) => h('option', { value: d.name }, d.name)));
      if (keep && doms.some((d) => d.name === keep)) sel.value = keep;
      if (!sel.value) { replace(list, h('p', { class: 'muted' }, 'No storage domains.')); return; }
      const l = await api('GET', '/storage/' + enc(sel.value) + '/isos');
      replace(list, table(['Name', 'Size', 'SHA-256', 'Path'], l.map((f) =>
        h('tr', { dataset: { iso: f.name } }, h('td', {}, f.name), h('td', {}, bytes(f.size_bytes)),
          h('td', { class: 'mono' }, f.sha256 || '-'), h('td', {}, f.path))), 'No ISOs.'));
    } catch (e) {
      replace(list, h('p', { class: 'error' }, e.message));
    }
  }
  sel.addEventListener('change', load);
  btn.addEventListener('click', async () => {
    const f = file.files[0];
    if (busy) return;
    if (!f) { msg.textContent = 'Choose a file first.'; return; }
    if (!/^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$/.test(f.name)) {
      msg.textContent = 'The file name must be 1-200 letters, digits, ".", "_", "-" or "+", not starting with ".".';
      return;
    }
    busy = true;
    btn.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    pct.textContent = '0 %';
    msg.textContent = 'Uploading ' + f.name + '…';
    try {
      const r = await upload('/storage/' + enc(sel.value) + '/isos/' + enc(f.name), f, (p) => {
        bar.value = p;
        pct.textContent = p + ' %';
      });
      msg.textContent = 'Uploaded ' + r.name + ' (sha256 ' + r.sha256 + ').';
      toast('ISO ' + r.name + ' uploaded');
      file.value = '';
      load();
    } catch (e) {
      msg.textContent = e.message;
    } finally {
      busy = false;
      btn.disabled = false;
    }
  });
  const form = allowed('operator') && has('PUT', '/storage/{}/{}/{}')
    ? h('div', { class: 'iso-upload' }, sel, file, btn, bar, pct, msg) : h('div', {}, sel);
  const el = h('section', { id: 'isos' }, h('h2', {}, 'ISO images'), form, list);
  return { el, load };
}

// Networks: the manager's list when it has one, else the networks VMs use.
export function networksView() {
  const body = h('div');
  const el = h('div', {}, h('h1', {}, 'Networks'), body);
  let api_list = null;
  if (has('GET', '/networks')) {
    api('GET', '/networks').then((l) => { api_list = l; }).catch((e) => replace(body, h('p', { class: 'error' }, e.message)));
  }
  function update(s) {
    const use = new Map();
    for (const v of s.vms) for (const n of v.nics || []) {
      const key = n.network || 'user';
      if (!use.has(key)) use.set(key, []);
      use.get(key).push(v.name);
    }
    const names = api_list ? api_list.map((n) => n.name) : [...use.keys()];
    replace(body, h('p', { class: 'muted' }, api_list ? '' : 'NICs use user-mode networking (NAT per VM) unless a network is named.'),
      table(['Network', 'Type', 'Subnet', 'VNI / VLAN', 'VMs'], names.map((n) => {
        const def = api_list ? api_list.find((x) => x.name === n) : null;
        const tag = def && def.vni ? 'VNI ' + def.vni : def && def.vlan ? 'VLAN ' + def.vlan + ' on ' + def.uplink : '—';
        return h('tr', { dataset: { network: n } }, h('td', {}, n), h('td', {}, def ? def.type || '—' : n === 'user' ? 'user-mode NAT' : '—'),
          h('td', {}, def && def.subnet ? def.subnet : '—'), h('td', {}, tag),
          h('td', {}, (use.get(n) || []).map((v) => [link('#/vms/' + enc(v), v), ' '])));
      }), 'No VM has a network interface yet.'));
  }
  return { el, update };
}

export function tasksView() {
  const body = h('div');
  const state = h('select', { id: 'filter-task-state', 'aria-label': 'Filter by state' }, h('option', { value: '' }, 'Any state'),
    ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((k) => h('option', { value: k }, k)));
  const el = h('div', {}, h('h1', {}, 'Tasks'), h('div', { class: 'filters' }, state), body);
  let last = null;
  state.addEventListener('input', () => last && update(last));
  async function cancel(t) {
    try {
      await api('POST', '/tasks/' + t.id + '/cancel', {});
      toast('Task ' + t.id + ' cancelled.');
    } catch (e) {
      toast(e.message, 'error');
    }
  }
  function update(s) {
    last = s;
    const rows = s.tasks.filter((t) => !state.value || t.state === state.value);
    replace(body, table(['#', 'Task', 'VM', 'State', 'Progress', 'Started', 'Updated', 'Error', ''], rows.map((t) =>
      h('tr', { dataset: { task: t.id, kind: t.kind } }, h('td', {}, t.id), h('td', {}, t.kind),
        h('td', {}, t.vm ? link('#/vms/' + enc(t.vm), t.vm) : '—'), h('td', {}, badge(t.state)),
        h('td', { class: 'pcell' }, progress(t.progress, t.state, 'task ' + t.id + ' ' + t.kind)),
        h('td', {}, ago(t.created)), h('td', {}, ago(t.updated)), h('td', { class: 'err' }, t.error || ''),
        h('td', {}, t.state === 'queued' ? h('button', { onclick: () => cancel(t) }, 'Cancel') : null))), 'No tasks yet.'));
  }
  return { el, update };
}
