// create.js - the "Create VM" form: every field checked as the manager
// checks it, messages next to the field, nothing sent until all are valid;
// a refusal from the manager is shown next to the field it names.
import { api } from '../api.js';
import { h, replace, toast } from '../ui.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function intCheck(label, min, max) {
  return (v) => {
    if (v === '') return label + ' is required.';
    if (!/^[0-9]+$/.test(v)) return label + ' must be a whole number.';
    const n = Number(v);
    if (n < min || n > max) return label + ' must be between ' + min + ' and ' + max + '.';
    return '';
  };
}

// A host file in a media area: STORAGE:AREA/NAME or its absolute path on
// the hosts (the manager and the hosts check the rest).
function pathCheck(label) {
  return (v) => {
    if (v === '') return '';
    if (!v.startsWith('/') && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}:[^/]/.test(v)) {
      return label + ' must be STORAGE:kernels/NAME or an absolute path on the hosts (starting with /).';
    }
    if (v.split('/').includes('..')) return label + ' must not contain "..".';
    if (v.length > 4095) return label + ' is longer than 4095 bytes.';
    return '';
  };
}

const FIELDS = [
  { id: 'name', label: 'Name', required: true, help: 'Letters, digits, ".", "_", "-"; up to 63.',
    check: (v) => (v === '' ? 'Name is required.' : NAME_RE.test(v) ? '' :
      'Use letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters.') },
  { id: 'cpus', label: 'CPUs', value: '1', inputmode: 'numeric', check: intCheck('CPUs', 1, 256) },
  { id: 'memory_mib', label: 'Memory (MiB)', value: '256', inputmode: 'numeric', check: intCheck('Memory', 16, 4194304) },
  { id: 'disk_mib', label: 'Disk (MiB)', value: '', inputmode: 'numeric', help: 'Empty: no disk.',
    check: (v) => (v === '' ? '' : intCheck('Disk size', 1, 67108864)(v)) },
  { id: 'kernel', label: 'Kernel', help: 'A file in kernels/ of a storage domain (STORAGE:kernels/NAME, or its path on the hosts), for direct kernel boot.', check: pathCheck('Kernel') },
  { id: 'initrd', label: 'Initrd', check: pathCheck('Initrd') },
  { id: 'cmdline', label: 'Kernel command line', help: 'e.g. console=tty0 console=ttyS0',
    check: (v) => (v.length > 1024 ? 'The command line is longer than 1024 bytes.' : '') },
];

export function createView() {
  const inputs = {};
  const errors = {};
  const rows = FIELDS.map((f) => {
    const input = h('input', { id: 'f-' + f.id, name: f.id, value: f.value || '', inputmode: f.inputmode,
      required: f.required, autocomplete: 'off', 'aria-describedby': 'e-' + f.id + (f.help ? ' h-' + f.id : '') });
    inputs[f.id] = input;
    errors[f.id] = h('span', { class: 'field-error', id: 'e-' + f.id, role: 'alert' });
    input.addEventListener('blur', () => checkField(f));
    input.addEventListener('input', () => { if (errors[f.id].textContent) checkField(f); });
    return h('div', { class: 'field', dataset: { field: f.id } },
      h('label', { for: 'f-' + f.id }, f.label), input,
      f.help ? h('small', { id: 'h-' + f.id }, f.help) : null, errors[f.id]);
  });
  const storage = h('select', { id: 'f-storage', name: 'storage' });
  const host = h('select', { id: 'f-host', name: 'host' }, h('option', { value: '' }, 'Any (the scheduler picks)'));
  const ha = h('input', { type: 'checkbox', id: 'f-ha', name: 'ha' });
  const start = h('input', { type: 'checkbox', id: 'f-start', name: 'start' });
  const display = h('input', { type: 'checkbox', id: 'f-display', name: 'display', checked: true });
  errors.storage = h('span', { class: 'field-error', id: 'e-storage', role: 'alert' });
  errors.host = h('span', { class: 'field-error', id: 'e-host', role: 'alert' });
  const formError = h('p', { class: 'error', id: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create');
  const form = h('form', { class: 'form', id: 'create-form', novalidate: true }, rows,
    h('div', { class: 'field' }, h('label', { for: 'f-storage' }, 'Storage domain'), storage, errors.storage),
    h('div', { class: 'field' }, h('label', { for: 'f-host' }, 'Define on host'), host, errors.host),
    h('div', { class: 'field' }, h('label', { class: 'check' }, ha, ' Highly available (restart elsewhere if its host fails)')),
    h('div', { class: 'field' }, h('label', { class: 'check' }, display, ' Graphical console (VGA card, shown in the Display tab)')),
    h('div', { class: 'field' }, h('label', { class: 'check' }, start, ' Start after creation')),
    formError, h('div', { class: 'buttons' }, submit, h('a', { class: 'button', href: '#/vms' }, 'Cancel')));
  const el = h('div', {}, h('h1', {}, 'Create a virtual machine'), form);

  function checkField(f) {
    const msg = f.check(inputs[f.id].value.trim());
    errors[f.id].textContent = msg;
    inputs[f.id].setAttribute('aria-invalid', msg ? 'true' : 'false');
    return msg === '';
  }

  // Which field a refusal from the manager is about.
  function fieldOf(msg) {
    const m = msg.toLowerCase();
    const keys = ['memory_mib', 'disk_mib', 'cmdline', 'initrd', 'kernel', 'cpus', 'storage', 'host', 'name'];
    for (const k of keys) if (m.includes(k)) return k;
    if (m.includes('memory')) return 'memory_mib';
    if (m.includes('disk')) return 'disk_mib';
    if (m.includes('already exists') || m.includes('vm "')) return 'name';
    return null;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.textContent = '';
    errors.storage.textContent = '';
    errors.host.textContent = '';
    let ok = true;
    for (const f of FIELDS) ok = checkField(f) && ok;
    if (!ok) {
      const bad = FIELDS.find((f) => errors[f.id].textContent);
      inputs[bad.id].focus();
      return;
    }
    const body = { name: inputs.name.value.trim(), cpus: Number(inputs.cpus.value), memory_mib: Number(inputs.memory_mib.value) };
    for (const k of ['kernel', 'initrd', 'cmdline']) if (inputs[k].value.trim()) body[k] = inputs[k].value.trim();
    if (inputs.disk_mib.value.trim()) body.disk_mib = Number(inputs.disk_mib.value);
    if (storage.value) body.storage = storage.value;
    if (host.value) body.host = host.value;
    if (ha.checked) body.ha = true;
    body.display = display.checked ? 'vnc' : 'none';
    submit.disabled = true;
    try {
      const vm = await api('POST', '/vms', body);
      toast('Created VM ' + vm.name + '.');
      if (start.checked) await api('POST', '/vms/' + encodeURIComponent(vm.name) + '/start', {});
      location.hash = '#/vms/' + encodeURIComponent(vm.name);
    } catch (ex) {
      const k = fieldOf(ex.message);
      if (k && errors[k]) {
        errors[k].textContent = ex.message;
        if (inputs[k]) {
          inputs[k].setAttribute('aria-invalid', 'true');
          inputs[k].focus();
        }
      } else {
        formError.textContent = 'The manager refused: ' + ex.message;
      }
    } finally {
      submit.disabled = false;
    }
  });

  let filled = false;
  function update(s) {
    if (filled || !s.hosts.length) return;
    filled = true;
    const domains = new Map();
    for (const x of s.hosts) for (const d of x.storage || []) if (!domains.has(d.name)) domains.set(d.name, d);
    replace(storage, [...domains.keys()].map((n) => h('option', { value: n }, n)));
    for (const x of s.hosts) if (x.state === 'up') host.append(h('option', { value: x.name }, x.name));
  }
  return { el, update };
}
