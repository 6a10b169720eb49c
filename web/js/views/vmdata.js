// vmdata.js - a VM's snapshots and backups tabs: list, create, revert or
// restore, delete. Shown only when the manager has those routes.
import { api, enc, has, allowed } from '../api.js';
import { h, replace, table, toast, dialog, when, mib } from '../ui.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

async function askName(title, what) {
  const input = h('input', { name: 'name', id: 'snap-name', required: true, autocomplete: 'off' });
  const err = h('p', { class: 'field-error', id: 'snap-name-error' });
  const r = await dialog(title, [h('label', { for: 'snap-name' }, what + ' name'), input, err],
    [['ok', 'Create', 'primary'], ['cancel', 'Cancel']], (f) => {
      const v = f.name.value;
      err.textContent = v && !NAME_RE.test(v) ? 'Letters, digits, ".", "_" and "-", starting with a letter or digit (at most 63).' : '';
      return v && NAME_RE.test(v) ? '' : 'bad';
    });
  return r ? r.data.get('name') : null;
}

async function run(label, method, path, body) {
  try {
    const t = await api(method, path, body);
    toast(label + (t && t.id ? ': task ' + t.id + ' queued' : ': done'));
    return true;
  } catch (e) {
    toast(label + ': ' + e.message, 'error');
    return false;
  }
}

export function snapshotsPanel(vm) {
  const list = h('div');
  const create = h('button', { class: 'primary', id: 'snapshot-create', hidden: !allowed('operator') }, 'Take snapshot');
  const el = h('div', {}, h('div', { class: 'toolbar' }, create), list);
  const base = '/vms/' + enc(vm) + '/snapshots';
  async function refresh() {
    if (!has('GET', '/vms/{}/snapshots')) {
      create.hidden = true;
      replace(list, h('p', { class: 'empty' }, 'This manager does not offer snapshots.'));
      return;
    }
    try {
      const snaps = await api('GET', base);
      replace(list, table(['Name', 'Created', 'VM state', 'Actions'], snaps.map((s) => h('tr', { dataset: { snapshot: s.name } },
        h('td', {}, s.name), h('td', {}, when(s.created)), h('td', {}, s.vm_state || (s.running ? 'running' : 'stopped')),
        h('td', { class: 'actions' }, allowed('operator') ? [
          h('button', { onclick: () => revert(s.name) }, 'Revert'),
          h('button', { class: 'danger', onclick: () => remove(s.name) }, 'Delete')] : null))), 'No snapshots yet.'));
    } catch (e) {
      replace(list, h('p', { class: 'error' }, e.message));
    }
  }
  async function revert(name) {
    const r = await dialog('Revert ' + vm + ' to ' + name + '?', [h('p', {}, 'The disks go back to this snapshot; changes since are lost.')],
      [['ok', 'Revert', 'danger'], ['cancel', 'Cancel']]);
    if (r && await run('revert to ' + name, 'POST', base + '/' + enc(name) + '/revert', {})) setTimeout(refresh, 1000);
  }
  async function remove(name) {
    const r = await dialog('Delete snapshot ' + name + '?', [h('p', {}, 'The snapshot is removed from the disks.')],
      [['ok', 'Delete', 'danger'], ['cancel', 'Cancel']]);
    if (r && await run('delete snapshot ' + name, 'DELETE', base + '/' + enc(name))) setTimeout(refresh, 1000);
  }
  create.addEventListener('click', async () => {
    const name = await askName('Snapshot of ' + vm, 'Snapshot');
    if (name && await run('snapshot ' + name, 'POST', base, { name })) setTimeout(refresh, 1000);
  });
  return { el, refresh };
}

export function backupsPanel(vm) {
  const list = h('div');
  const create = h('button', { class: 'primary', id: 'backup-create', hidden: !allowed('operator') }, 'Back up now');
  const el = h('div', {}, h('div', { class: 'toolbar' }, create), list);
  async function refresh() {
    if (!has('GET', '/backups') || !has('POST', '/vms/{}/backups')) {
      create.hidden = true;
      replace(list, h('p', { class: 'empty' }, 'This manager does not offer backups.'));
      return;
    }
    try {
      const items = await api('GET', '/backups?vm=' + enc(vm));
      replace(list, table(['Backup', 'State', 'Created', 'Storage', 'Size', 'Actions'], items.map((b) => h('tr', { dataset: { backup: b.id } },
        h('td', {}, b.id), h('td', {}, b.state), h('td', {}, when(b.created)), h('td', {}, b.storage),
        h('td', {}, b.size_bytes ? mib(b.size_bytes / 1048576) : '—'),
        h('td', { class: 'actions' }, !allowed('operator') ? null : [
          h('button', { onclick: () => restore(b), disabled: b.state !== 'ok' }, 'Restore as new VM'),
          h('button', { onclick: () => run('verify ' + b.id, 'POST', '/backups/' + enc(b.id) + '/verify', {}), disabled: b.state !== 'ok' }, 'Verify'),
          h('button', { class: 'danger', onclick: () => remove(b) }, 'Delete')]))), 'No backups yet.'));
    } catch (e) {
      replace(list, h('p', { class: 'error' }, e.message));
    }
  }
  async function restore(b) {
    const input = h('input', { name: 'name', id: 'restore-name', autocomplete: 'off', value: vm + '-restored' });
    const err = h('p', { class: 'field-error', id: 'restore-name-error' });
    const r = await dialog('Restore backup ' + b.id, [h('p', {}, 'The backup becomes a new, stopped VM (a full copy of its disks).'),
      h('label', { for: 'restore-name' }, 'New VM name'), input, err], [['ok', 'Restore', 'primary'], ['cancel', 'Cancel']], (f) => {
      const v = f.name.value;
      err.textContent = NAME_RE.test(v) ? '' : 'Letters, digits, ".", "_" and "-", starting with a letter or digit (at most 63).';
      return NAME_RE.test(v) ? '' : 'bad';
    });
    if (r) run('restore ' + b.id, 'POST', '/backups/' + enc(b.id) + '/restore', { name: r.data.get('name') });
  }
  async function remove(b) {
    const r = await dialog('Delete backup ' + b.id + '?', [h('p', {}, 'Its files are removed from storage.')],
      [['ok', 'Delete', 'danger'], ['cancel', 'Cancel']]);
    if (r && await run('delete backup ' + b.id, 'DELETE', '/backups/' + enc(b.id))) setTimeout(refresh, 1000);
  }
  create.addEventListener('click', async () => {
    if (await run('backup of ' + vm, 'POST', '/vms/' + enc(vm) + '/backups', {})) setTimeout(refresh, 1000);
  });
  return { el, refresh };
}
