// vms.js - the VM list with filters (name, state, host) and per-row actions.
import { h, replace, badge, link, mib, table } from '../ui.js';
import { actionButtons } from './vm.js';
import { allowed } from '../api.js';

export function vmsView() {
  const q = new URLSearchParams((location.hash.split('?')[1]) || '');
  const text = h('input', { type: 'search', id: 'filter-name', placeholder: 'Filter by name', 'aria-label': 'Filter by name', value: q.get('q') || '' });
  const state = h('select', { id: 'filter-state', 'aria-label': 'Filter by state' },
    h('option', { value: '' }, 'Any state'),
    ['running', 'paused', 'starting', 'stopping', 'migrating', 'stopped', 'failed'].map((k) =>
      h('option', { value: k, selected: q.get('state') === k }, k)));
  const host = h('select', { id: 'filter-host', 'aria-label': 'Filter by host' }, h('option', { value: '' }, 'Any host'));
  const body = h('div');
  const count = h('span', { class: 'muted' });
  const el = h('div', {},
    h('div', { class: 'head' }, h('h1', {}, 'Virtual machines'), allowed('operator') ? h('a', { class: 'button primary', href: '#/vms/new', id: 'create-vm' }, 'Create VM') : null),
    h('div', { class: 'filters' }, text, state, host, count), body);
  let last = null;
  let lastKey = '';
  const cpuCells = new Map();
  const cpuText = (st) => (st && st.cpu_pct !== null ? st.cpu_pct.toFixed(0) + ' %' : '—');
  for (const f of [text, state, host]) f.addEventListener('input', () => last && update(last));
  function update(s) {
    last = s;
    // Rebuild the table only when the rows change (not for each usage
    // sample), so buttons under the pointer stay put.
    const key = JSON.stringify([s.vms, s.hosts.map((x) => [x.name, x.state]), text.value, state.value, host.value]);
    if (key === lastKey) {
      for (const [n, td] of cpuCells) td.textContent = cpuText(s.stats.vms[n]);
      return;
    }
    lastKey = key;
    cpuCells.clear();
    const hosts = [...new Set(s.hosts.map((x) => x.name))];
    if (host.options.length !== hosts.length + 1) {
      const keep = host.value;
      replace(host, h('option', { value: '' }, 'Any host'), hosts.map((n) => h('option', { value: n, selected: n === keep }, n)));
    }
    const needle = text.value.trim().toLowerCase();
    const rows = s.vms.filter((v) => (!needle || v.name.toLowerCase().includes(needle)) &&
      (!state.value || v.state === state.value) && (!host.value || v.host === host.value));
    count.textContent = rows.length + ' of ' + s.vms.length;
    replace(body, table(['Name', 'State', 'Host', 'CPUs', 'Memory', 'CPU use', 'Actions'], rows.map((v) => {
      const st = s.stats.vms[v.name];
      return h('tr', { dataset: { vm: v.name } },
        h('td', {}, link('#/vms/' + encodeURIComponent(v.name), v.name)), h('td', {}, badge(v.state)),
        h('td', {}, v.host ? link('#/hosts/' + v.host, v.host) : '—'), h('td', {}, v.cpus), h('td', {}, mib(v.memory_mib)),
        cpuCell(v.name, st),
        h('td', { class: 'actions' }, actionButtons(v, s, true)));
    }), s.vms.length ? 'No VM matches these filters.' : 'No VMs yet: create one.'));
  }
  function cpuCell(name, st) {
    const td = h('td', { class: 'cpu' }, cpuText(st));
    cpuCells.set(name, td);
    return td;
  }
  return { el, update };
}
