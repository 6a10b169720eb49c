// dashboard.js - the cluster at a glance: hosts with usage, VMs by state,
// recent tasks and events.
import { h, replace, badge, link, mib, table, progress, ago } from '../ui.js';

export function meter(label, pct, text) {
  const p = pct === null || pct === undefined ? null : Math.max(0, Math.min(100, pct));
  return h('div', { class: 'meter' },
    h('span', { class: 'mlabel' }, label),
    h('div', { class: 'mbar', role: 'meter', 'aria-label': label, 'aria-valuemin': 0,
      'aria-valuemax': 100, 'aria-valuenow': p === null ? 0 : Math.round(p) },
    h('div', { style: 'width:' + (p === null ? 0 : p) + '%' })),
    h('span', { class: 'mtext' }, text));
}

export function hostUsage(host, st) {
  const cpu = st && st.cpu_pct !== null ? st.cpu_pct : null;
  const memPct = st && st.mem_mib !== null && host.memory_mib ? st.mem_mib * 100 / host.memory_mib : null;
  return [
    meter('CPU', cpu, cpu === null ? '—' : cpu.toFixed(0) + ' % of ' + host.cpus),
    meter('Memory', memPct, st && st.mem_mib !== null ? mib(st.mem_mib) + ' / ' + mib(host.memory_mib) : mib(host.memory_mib)),
  ];
}

export function eventRows(events) {
  return events.map((e) => h('tr', { class: 'sev-' + e.severity },
    h('td', {}, ago(e.time)), h('td', {}, e.severity), h('td', {}, e.kind),
    h('td', {}, e.object), h('td', {}, e.message)));
}

export function dashboardView() {
  const hosts = h('div', { class: 'cards' });
  const vms = h('div', { class: 'counts' });
  const tasks = h('div');
  const events = h('div');
  const el = h('div', { class: 'dashboard' },
    h('h1', {}, 'Cluster'),
    h('section', { 'aria-label': 'Hosts' }, h('h2', {}, 'Hosts'), hosts),
    h('section', { 'aria-label': 'Virtual machines' }, h('h2', {}, 'Virtual machines'), vms),
    h('div', { class: 'cols' },
      h('section', {}, h('h2', {}, 'Recent tasks'), tasks),
      h('section', {}, h('h2', {}, 'Recent events'), events)));
  function update(s) {
    replace(hosts, s.hosts.length ? s.hosts.map((x) => h('article', { class: 'card host-card', dataset: { host: x.name } },
      h('h3', {}, link('#/hosts/' + x.name, x.name), ' ', badge(x.maintenance ? 'maintenance' : x.state)),
      h('p', { class: 'muted' }, x.accel.toUpperCase() + ' · ' + x.cpus + ' CPUs · ' + x.vms + ' VMs'),
      hostUsage(x, s.stats.hosts[x.name]))) : h('p', { class: 'empty' }, 'No hosts have registered yet.'));
    const by = {};
    for (const v of s.vms) by[v.state] = (by[v.state] || 0) + 1;
    const states = ['running', 'paused', 'starting', 'stopping', 'migrating', 'stopped', 'failed'];
    replace(vms, h('a', { class: 'count', href: '#/vms' }, h('strong', {}, s.vms.length), ' total'),
      states.filter((k) => by[k]).map((k) => h('a', { class: 'count', href: '#/vms?state=' + k },
        h('strong', {}, by[k]), ' ', badge(k))));
    replace(tasks, table(['Task', 'VM', 'State', 'Progress', 'Updated'], s.tasks.slice(0, 8).map((t) =>
      h('tr', {}, h('td', {}, t.kind), h('td', {}, t.vm || '—'), h('td', {}, badge(t.state)),
        h('td', { class: 'pcell' }, progress(t.progress, t.state, 'task ' + t.id)), h('td', {}, ago(t.updated)))),
    'No tasks yet.'));
    replace(events, table(['When', 'Severity', 'Kind', 'Object', 'Message'], eventRows(s.events.slice(0, 8)), 'No events yet.'));
  }
  return { el, update };
}
