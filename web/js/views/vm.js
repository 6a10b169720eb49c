// vm.js - one VM: actions, configuration, disks, NICs, snapshots, backups,
// events, usage charts, and its serial and graphical consoles.
import { api, enc, allowed } from '../api.js';
import { h, replace, badge, link, mib, table, toast, dialog, ago, when } from '../ui.js';
import { chartSet } from '../charts.js';
import { eventRows } from './dashboard.js';
import { serialConsole, vncConsole } from '../console.js';
import { snapshotsPanel, backupsPanel } from './vmdata.js';

async function act(name, action, body) {
  try {
    const t = await api('POST', '/vms/' + enc(name) + '/' + action, body || {});
    toast(action + ' ' + name + ': task ' + t.id + ' queued');
    return t;
  } catch (e) {
    toast(action + ' ' + name + ': ' + e.message, 'error');
    return null;
  }
}

async function confirmDelete(v) {
  const input = h('input', { name: 'confirm', id: 'confirm-name', autocomplete: 'off', 'aria-label': 'VM name' });
  const r = await dialog('Delete ' + v.name + '?', [
    h('p', {}, 'This removes the VM and its disks from storage. It cannot be undone.'),
    h('label', { for: 'confirm-name' }, 'Type the VM name to confirm'), input,
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'force' }), ' Stop it first if it is running'),
  ], [['delete', 'Delete', 'danger'], ['cancel', 'Cancel']],
  (f) => (f.confirm.value === v.name ? '' : 'type the name'));
  if (!r) return;
  try {
    const t = await api('DELETE', '/vms/' + enc(v.name) + (r.data.get('force') ? '?force=1' : ''));
    toast('delete ' + v.name + ': task ' + t.id + ' queued');
    if (location.hash.startsWith('#/vms/' + encodeURIComponent(v.name))) location.hash = '#/vms';
  } catch (e) {
    toast('delete ' + v.name + ': ' + e.message, 'error');
  }
}

async function migrate(v, s) {
  const targets = s.hosts.filter((x) => x.name !== v.host && x.state === 'up');
  if (!targets.length) {
    toast('No other host is up to migrate ' + v.name + ' to.', 'error');
    return;
  }
  const sel = h('select', { name: 'to', id: 'migrate-to' }, targets.map((x) =>
    h('option', { value: x.name }, x.name + ' (' + x.vms + ' VMs, ' + mib(x.memory_mib) + ')')));
  const r = await dialog('Migrate ' + v.name, [h('p', {}, 'Live-migrate from ' + v.host + ' to:'),
    h('label', { for: 'migrate-to' }, 'Target host'), sel], [['migrate', 'Migrate', 'primary'], ['cancel', 'Cancel']]);
  if (r) act(v.name, 'migrate', { to: r.data.get('to') });
}

async function forceStop(v) {
  const r = await dialog('Force stop ' + v.name + '?', [h('p', {},
    'This pulls the plug: the guest gets no chance to shut down and unsaved data is lost.')],
  [['stop', 'Force stop', 'danger'], ['cancel', 'Cancel']]);
  if (r) act(v.name, 'stop', { force: true });
}

// The buttons that make sense in v's state (compact: the list's row).
export function actionButtons(v, s, compact) {
  if (!allowed('operator')) return [];
  const busy = ['starting', 'stopping', 'migrating'].includes(v.state);
  const b = (label, fn, cls, show) => (show ? h('button', {
    class: cls || '', 'data-action': label.toLowerCase().replace(/[^a-z]+/g, '-'), disabled: busy && label !== 'Force stop',
    onclick: fn, 'aria-label': label + ' ' + v.name,
  }, label) : null);
  const st = v.state;
  const list = [
    b('Start', () => act(v.name, 'start'), 'primary', st === 'stopped' || st === 'failed'),
    b('Shut down', () => act(v.name, 'stop'), '', st === 'running'),
    b('Force stop', () => forceStop(v), 'danger', ['running', 'paused', 'stopping', 'starting', 'failed'].includes(st) && !compact),
    b('Reboot', () => act(v.name, 'reboot'), '', st === 'running' && !compact),
    b('Pause', () => act(v.name, 'pause'), '', st === 'running'),
    b('Resume', () => act(v.name, 'resume'), 'primary', st === 'paused'),
    b('Migrate', () => migrate(v, s), '', st === 'running' && s.hosts.length > 1 && !compact),
    b('Delete', () => confirmDelete(v), 'danger', (st === 'stopped' || st === 'failed') && !compact),
  ];
  return list.filter(Boolean);
}

function tabs(defs) {
  const bar = h('div', { role: 'tablist', class: 'tabs' });
  const panels = [];
  let active = null;
  const select = (i) => {
    defs.forEach((d, k) => {
      bar.children[k].setAttribute('aria-selected', k === i ? 'true' : 'false');
      panels[k].hidden = k !== i;
    });
    if (active !== i && defs[i].onshow) defs[i].onshow();
    if (active !== null && active !== i && defs[active].onhide) defs[active].onhide();
    active = i;
  };
  defs.forEach((d, i) => {
    bar.append(h('button', { role: 'tab', id: 'tab-' + d.id, 'aria-controls': 'panel-' + d.id, onclick: () => select(i) }, d.title));
    panels.push(h('section', { role: 'tabpanel', id: 'panel-' + d.id, 'aria-labelledby': 'tab-' + d.id, hidden: true }, d.el));
  });
  return { bar, panels, select };
}

export function vmView(name) {
  const head = h('div', { class: 'head' });
  const toolbar = h('div', { class: 'toolbar', id: 'vm-actions' });
  const config = h('dl', { class: 'facts' });
  const disks = h('div');
  const nics = h('div');
  const events = h('div');
  const charts = chartSet('vm ' + name);
  const snaps = snapshotsPanel(name);
  const backups = backupsPanel(name);
  const serial = serialConsole(name);
  const vnc = vncConsole(name);
  const t = tabs([
    { id: 'summary', title: 'Summary', el: h('div', {}, h('div', { class: 'cols' }, h('div', {}, h('h2', {}, 'Configuration'), config),
      h('div', {}, h('h2', {}, 'Usage'), charts.el))), onshow: () => charts.redraw() },
    { id: 'hardware', title: 'Disks and NICs', el: h('div', {}, h('h2', {}, 'Disks'), disks, h('h2', {}, 'Network interfaces'), nics) },
    { id: 'snapshots', title: 'Snapshots', el: snaps.el, onshow: snaps.refresh },
    { id: 'backups', title: 'Backups', el: backups.el, onshow: backups.refresh },
    { id: 'events', title: 'Events', el: events },
    { id: 'console', title: 'Serial console', el: serial.el, onshow: serial.show, onhide: serial.hide },
    { id: 'display', title: 'Display', el: vnc.el, onshow: vnc.show, onhide: vnc.hide },
  ]);
  const el = h('div', { class: 'vm' }, head, toolbar, t.bar, t.panels);
  let lastEvent = -1;
  let lastKey = '';
  async function loadEvents() {
    try {
      const all = await api('GET', '/events?limit=500');
      replace(events, table(['When', 'Severity', 'Kind', 'Object', 'Message'],
        eventRows(all.filter((e) => e.object === name)), 'No events for this VM.'));
    } catch (e) {
      replace(events, h('p', { class: 'error' }, e.message));
    }
  }
  api('GET', '/vms/' + enc(name) + '/stats').then((r) => charts.load(r.samples)).catch(() => {});
  function update(s) {
    const v = s.vms.find((x) => x.name === name);
    if (!v) {
      replace(head, h('h1', {}, 'VM ' + name), h('p', { class: 'error' }, 'No such VM (it may have been deleted).'));
      replace(toolbar);
      return;
    }
    const key = JSON.stringify([v, s.hosts.map((x) => [x.name, x.state])]);
    if (key !== lastKey) {
      lastKey = key;
      replace(head, h('h1', {}, name, ' ', badge(v.state)),
        h('p', { class: 'muted' }, v.host ? ['on ', link('#/hosts/' + v.host, v.host)] : 'not running'));
      replace(toolbar, actionButtons(v, s, false));
      replace(config, [['UUID', v.uuid], ['State', v.state], ['Host', v.host || '—'], ['CPUs', v.cpus],
        ['Memory', mib(v.memory_mib)], ['Storage', v.storage], ['Display', v.display === 'vnc' ? 'VGA + VNC' : 'none (serial only)'], ['HA', v.ha ? 'on (' + (v.ha_monitor || 'process') + ')' : 'off'],
        ['Kernel', v.kernel || '—'], ['Initrd', v.initrd || '—'], ['Command line', v.cmdline || '—'],
        ['Created', when(v.created)], ['QEMU pid', v.pid || '—']].map(([k, x]) => [h('dt', {}, k), h('dd', {}, x)]));
      replace(disks, table(['Name', 'Size', 'Format', 'File'], (v.disks || []).map((d) =>
        h('tr', {}, h('td', {}, d.name), h('td', {}, mib(d.size_mib)), h('td', {}, d.format), h('td', {}, d.file))), 'No disks.'));
      replace(nics, table(['MAC', 'Network', 'Address', 'Model'], (v.nics || []).map((n) =>
        h('tr', {}, h('td', {}, n.mac), h('td', {}, n.network), h('td', {}, n.ip || '—'), h('td', {}, n.model))), 'No network interfaces.'));
      serial.state(v.state);
      vnc.state(v.state, v.display === 'vnc');
    }
    const top = s.events.length ? s.events[0].id : 0;
    if (top !== lastEvent) {
      lastEvent = top;
      loadEvents();
    }
    charts.push(s.stats.vms[name]);
  }
  t.select(0);
  return {
    el, update,
    unmount() {
      serial.hide();
      vnc.hide();
    },
  };
}

