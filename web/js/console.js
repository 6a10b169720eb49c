// console.js - a VM's consoles in the page: the serial console in xterm.js
// and the graphical console in noVNC, each over a websocket the manager
// relays to the VM's agent after a one-use ticket (POST .../console|vnc).
import { Terminal } from '../vendor/xterm/xterm.js';
import RFB from '../vendor/novnc/core/rfb.js';
import { api, enc, allowed, me } from './api.js';
import { h } from './ui.js';

function wsUrl(path) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}

const LIVE = ['running', 'paused', 'stopping'];

export function serialConsole(name) {
  const status = h('span', { class: 'cstatus', id: 'serial-status' }, 'not connected');
  const box = h('div', { class: 'term', id: 'serial-term' });
  const reconnect = h('button', { id: 'serial-reconnect', hidden: true }, 'Reconnect');
  const el = h('div', {}, h('div', { class: 'toolbar' }, status, reconnect), box);
  let term = null;
  let ws = null;
  let shown = false;
  let vmState = '';
  const encoder = new TextEncoder();

  function say(text) {
    status.textContent = text;
  }
  async function connect() {
    disconnect();
    if (!allowed('operator')) {
      say('Consoles need the operator role; you are ' + me.role + '.');
      return;
    }
    if (!LIVE.includes(vmState)) {
      say('The VM is ' + (vmState || 'not running') + ': start it to use its console.');
      return;
    }
    if (!term) {
      term = new Terminal({ convertEol: false, scrollback: 5000, fontSize: 14, cursorBlink: true });
      term.open(box);
      term.onData((d) => { if (ws && ws.readyState === 1) ws.send(encoder.encode(d)); });
    }
    term.reset();
    say('connecting…');
    try {
      // What the guest printed before we came: the kept serial log.
      const log = await api('GET', '/vms/' + enc(name) + '/serial');
      term.write(log.data.replace(/\r?\n/g, '\r\n'));
      const t = await api('POST', '/vms/' + enc(name) + '/console', {});
      ws = new WebSocket(wsUrl(t.path));
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => { say('connected'); reconnect.hidden = true; term.focus(); };
      ws.onmessage = (e) => term.write(new Uint8Array(e.data));
      ws.onclose = () => { say('disconnected'); reconnect.hidden = false; ws = null; };
    } catch (e) {
      say('cannot connect: ' + e.message);
      reconnect.hidden = false;
    }
  }
  function disconnect() {
    if (ws) {
      ws.onclose = null;
      ws.close();
      ws = null;
    }
  }
  reconnect.addEventListener('click', connect);
  return {
    el,
    show() { shown = true; connect(); },
    hide() { shown = false; disconnect(); say('not connected'); },
    state(s) {
      const was = vmState;
      vmState = s;
      if (shown && !LIVE.includes(was) && LIVE.includes(s)) connect();
      if (shown && LIVE.includes(was) && !LIVE.includes(s)) say('The VM is ' + s + '.');
    },
  };
}

export function vncConsole(name) {
  const status = h('span', { class: 'cstatus', id: 'vnc-status' }, 'not connected');
  const screen = h('div', { class: 'screen', id: 'vnc-screen' });
  const reconnect = h('button', { id: 'vnc-reconnect', hidden: true }, 'Reconnect');
  const cad = h('button', { id: 'vnc-cad', disabled: true }, 'Send Ctrl+Alt+Del');
  const el = h('div', {}, h('div', { class: 'toolbar' }, status, cad, reconnect), screen);
  let rfb = null;
  let shown = false;
  let vmState = '';
  let hasDisplay = true;

  function say(text) {
    status.textContent = text;
  }
  async function connect() {
    disconnect();
    if (!allowed('operator')) {
      say('Consoles need the operator role; you are ' + me.role + '.');
      return;
    }
    if (!hasDisplay) {
      say('This VM has no graphical console (it was created without one); use the serial console.');
      return;
    }
    if (!LIVE.includes(vmState)) {
      say('The VM is ' + (vmState || 'not running') + ': start it to see its screen.');
      return;
    }
    say('connecting…');
    try {
      const t = await api('POST', '/vms/' + enc(name) + '/vnc', {});
      if (!shown) return;
      rfb = new RFB(screen, wsUrl(t.path), {});
      rfb.scaleViewport = true;
      rfb.addEventListener('connect', () => { say('connected'); cad.disabled = false; reconnect.hidden = true; });
      rfb.addEventListener('disconnect', (e) => {
        say(e.detail.clean ? 'disconnected' : 'connection lost');
        cad.disabled = true;
        reconnect.hidden = false;
        rfb = null;
      });
      rfb.addEventListener('securityfailure', (e) => say('refused: ' + (e.detail.reason || 'security failure')));
    } catch (e) {
      say('cannot connect: ' + e.message);
      reconnect.hidden = false;
    }
  }
  function disconnect() {
    if (rfb) {
      const r = rfb;
      rfb = null;
      r.disconnect();
    }
  }
  cad.addEventListener('click', () => rfb && rfb.sendCtrlAltDel());
  reconnect.addEventListener('click', connect);
  return {
    el,
    show() { shown = true; connect(); },
    hide() { shown = false; disconnect(); say('not connected'); },
    state(s, display) {
      const was = vmState;
      vmState = s;
      hasDisplay = display;
      if (shown && !LIVE.includes(was) && LIVE.includes(s)) connect();
    },
  };
}
