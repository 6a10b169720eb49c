// api.js - the REST client: bearer token kept across reloads, JSON in/out,
// {"error"} turned into ApiError, and the live state stream.

const KEY = 'cvirt.token';

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data || null;	// the reply's JSON, e.g. {otp_required}
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
  },
  save(token, remember) {
    sessionStorage.setItem(KEY, token);
    if (remember) localStorage.setItem(KEY, token);
    else localStorage.removeItem(KEY);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
};

// Routes this manager has (from its OpenAPI document), so the UI offers only
// what works instead of probing and getting 404s.
let routes = null;

export async function loadRoutes() {
  const r = await fetch('/api/v1/openapi.json');
  const doc = await r.json();
  routes = new Set();
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const m of Object.keys(ops)) {
      routes.add(m.toUpperCase() + ' ' + path.replace(/\{[^}]*\}/g, '{}'));
    }
  }
}

// has('POST', '/vms/{}/migrate')
export function has(method, path) {
  return routes !== null && routes.has(method + ' ' + path);
}

export async function api(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  const tok = token === undefined ? session.token : token;
  if (tok) headers.Authorization = 'Bearer ' + tok;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch('/api/v1' + path, init);
  } catch (e) {
    throw new ApiError(0, 'cannot reach the manager: ' + e.message);
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!r.ok) {
    const msg = data && data.error ? data.error : r.status + ' ' + r.statusText;
    if (r.status === 401) window.dispatchEvent(new CustomEvent('cvirt-unauthorized'));
    throw new ApiError(r.status, msg, data);
  }
  return data;
}

export const enc = encodeURIComponent;

// PUT a File as the body of path (a media upload), with progress:
// onProgress(percent) as it goes; resolves to the manager's answer.
// XMLHttpRequest, as fetch reports no upload progress.
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', '/api/v1' + path);
    x.setRequestHeader('Accept', 'application/json');
    if (session.token) x.setRequestHeader('Authorization', 'Bearer ' + session.token);
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.floor(e.loaded * 100 / e.total)); };
    x.onerror = () => reject(new ApiError(0, 'cannot reach the manager'));
    x.onload = () => {
      let data = null;
      try { data = x.responseText ? JSON.parse(x.responseText) : null; } catch (e) { data = null; }
      if (x.status >= 200 && x.status < 300) { onProgress(100); resolve(data); return; }
      if (x.status === 401) window.dispatchEvent(new CustomEvent('cvirt-unauthorized'));
      reject(new ApiError(x.status, data && data.error ? data.error : x.status + ' ' + x.statusText));
    };
    x.send(file);
  });
}

// Who is logged in (GET /session); the UI hides what the role may not do.
export const me = { name: '', role: '' };
const RANK = { viewer: 1, operator: 2, admin: 3 };

export async function loadMe() {
  me.name = '';
  me.role = '';
  if (!has('GET', '/session')) return;
  const r = await api('GET', '/session');
  me.name = r.name;
  me.role = r.role;
}

// allowed('operator'): true when the role is at least that (or unknown).
export function allowed(min) {
  return !me.role || (RANK[me.role] || 0) >= RANK[min];
}

// Server-sent events: trade the token for a one-use ticket, then listen to
// "vms" (the VM list, sent when it changes) and "state" (the rest).
// onState(snapshot) on every change; onStatus('live'|'reconnecting'|'polling').
// When the manager has no stream to spare (503) the UI polls every 2 s and
// tries the stream again every 30 s.
export function openStream(onState, onStatus) {
  let es = null;
  let closed = false;
  let timer = null;
  let vms = null;
  let state = null;
  let polls = 0;
  const emit = () => { if (vms && state) onState({ ...state, vms }); };

  async function connect() {
    if (closed) return;
    let t;
    try {
      t = await api('POST', '/stream/ticket');
    } catch (e) {
      if (e.status === 503) poll();
      else retry();
      return;
    }
    if (closed) return;
    es = new EventSource(t.path);
    es.addEventListener('vms', (e) => {
      vms = JSON.parse(e.data);
      onStatus('live');
      emit();
    });
    es.addEventListener('state', (e) => {
      state = JSON.parse(e.data);
      onStatus('live');
      emit();
    });
    es.onerror = () => {
      es.close();
      es = null;
      retry();
    };
  }
  function retry() {
    if (closed) return;
    onStatus('reconnecting');
    timer = setTimeout(connect, 2000);
  }
  async function poll() {
    if (closed) return;
    onStatus('polling');
    try {
      const [hosts, v, tasks, events] = await Promise.all([api('GET', '/hosts'), api('GET', '/vms'),
        api('GET', '/tasks?limit=30'), api('GET', '/events?limit=30')]);
      vms = v;
      state = { hosts, tasks, events, stats: { hosts: {}, vms: {} } };
      emit();
    } catch (e) {
      onStatus('reconnecting');
    }
    polls = (polls + 1) % 15;
    timer = setTimeout(polls === 0 ? connect : poll, 2000);
  }
  connect();
  return () => {
    closed = true;
    clearTimeout(timer);
    if (es) es.close();
  };
}
