// hosts.js - the host list and one host's detail: facts, usage charts,
// storage, its VMs, and maintenance mode.
import { api, enc, allowed } from '../api.js';
import { h, replace, badge, link, mib, table, toast, ago } from '../ui.js';
import { chartSet } from '../charts.js';
import { hostUsage } from './dashboard.js';

export function hostsView() {
  const body = h('div');
  const el = h('div', {}, h('h1', {}, 'Hosts'), body);
  function update(s) {
    replace(body, table(['Name', 'State', 'Accel', 'CPUs', 'Memory', 'VMs', 'Usage', 'Last seen'],
      s.hosts.map((x) => h('tr', { dataset: { host: x.name } },
        h('td', {}, link('#/hosts/' + x.name, x.name)), h('td', {}, badge(x.state)),
        h('td', {}, x.accel), h('td', {}, x.cpus), h('td', {}, mib(x.memory_mib)),
        h('td', {}, x.vms), h('td', { class: 'usage' }, hostUsage(x, s.stats.hosts[x.name])),
        h('td', {}, ago(x.last_seen)))), 'No hosts have registered yet.'));
  }
  return { el, update };
}

export function hostView(name) {
  const head = h('div', { class: 'head' });
  const facts = h('dl', { class: 'facts' });
  const storage = h('div');
  const vms = h('div');
  const charts = chartSet('host ' + name);
  const maint = h('button', { id: 'maintenance', hidden: !allowed('admin') }, 'Maintenance…');
  const el = h('div', {}, head,
    h('div', { class: 'toolbar' }, maint),
    h('section', {}, h('h2', {}, 'Usage'), charts.el),
    h('div', { class: 'cols' },
      h('section', {}, h('h2', {}, 'Facts'), facts),
      h('section', {}, h('h2', {}, 'Storage'), storage)),
    h('section', {}, h('h2', {}, 'Virtual machines'), vms));
  let host = null;
  maint.addEventListener('click', async () => {
    if (!host) return;
    const on = host.state !== 'maintenance';
    try {
      await api('POST', '/hosts/' + enc(name) + '/maintenance', { enabled: on });
      toast('Host ' + name + (on ? ' entered' : ' left') + ' maintenance mode.');
    } catch (e) {
      toast(e.message, 'error');
    }
  });
  api('GET', '/hosts/' + enc(name) + '/stats').then((r) => charts.load(r.samples)).catch(() => {});
  function update(s) {
    host = s.hosts.find((x) => x.name === name) || null;
    if (!host) {
      replace(head, h('h1', {}, 'Host ' + name), h('p', { class: 'error' }, 'No such host.'));
      return;
    }
    replace(head, h('h1', {}, 'Host ', name, ' ', badge(host.state)));
    maint.textContent = host.state === 'maintenance' ? 'Leave maintenance mode' : 'Enter maintenance mode';
    replace(facts, [['State', host.state], ['Acceleration', host.accel + (host.accel_reason ? ' (' + host.accel_reason + ')' : '')],
      ['CPUs', host.cpus], ['Memory', mib(host.memory_mib)], ['Agent', host.url], ['Version', host.version || '—'],
      ['Last seen', ago(host.last_seen)]].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    replace(storage, table(['Domain', 'Path', 'Usable'], (host.storage || []).map((d) =>
      h('tr', {}, h('td', {}, d.name), h('td', {}, d.path), h('td', {}, d.ok ? 'yes' : 'no'))), 'No storage.'));
    replace(vms, table(['Name', 'State', 'CPUs', 'Memory'], s.vms.filter((v) => v.host === name).map((v) =>
      h('tr', {}, h('td', {}, link('#/vms/' + v.name, v.name)), h('td', {}, badge(v.state)),
        h('td', {}, v.cpus), h('td', {}, mib(v.memory_mib)))), 'No VMs run here.'));
    charts.push(s.stats.hosts[name]);
  }
  return { el, update };
}
