// The live event stream (`/sse`) over fetch, so the bearer token goes in a
// header (EventSource cannot send one). Reconnects with Last-Event-ID, so
// nothing the daemon still holds in its ring is missed.

import { headers, signalUnauthorized, withQuery } from './api.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Parse one SSE block ("field:value" lines) into {id, event, data}. */
export function parseBlock(block) {
  const out = { id: null, event: 'message', data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') out.id = value;
    else if (field === 'event') out.event = value;
    else if (field === 'data') out.data.push(value);
  }
  return out.data.length ? { ...out, data: out.data.join('\n') } : null;
}

/**
 * Open the stream. `onEvent({id, event, data})` per event; `onState(s)`
 * with 'connecting' | 'open' | 'reconnecting' | 'closed'. `after`: resume
 * after this event id (the daemon replays what its ring still holds).
 */
export function openStream({ query, onEvent, onState = () => {}, after = null }) {
  let lastId = after;
  let stopped = false;
  let ctrl = null;
  let backoff = 500;
  (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      onState(lastId ? 'reconnecting' : 'connecting');
      try {
        const h = headers({ accept: 'text/event-stream' });
        if (lastId) h['last-event-id'] = lastId;
        const r = await fetch(withQuery('/sse', query), { headers: h, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
        if (r.status === 401) { signalUnauthorized(); break; }
        if (!r.ok || !r.body) throw new Error(`stream refused (${r.status})`);
        onState('open');
        backoff = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let m;
          while ((m = /\r?\n\r?\n/.exec(buf))) {
            const ev = parseBlock(buf.slice(0, m.index));
            buf = buf.slice(m.index + m[0].length);
            if (!ev) continue;
            if (ev.id) lastId = ev.id;
            onEvent(ev);
          }
        }
      } catch (e) {
        if (stopped) break;
      }
      if (stopped) break;
      onState('reconnecting');
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
    onState('closed');
  })();
  return {
    close() { stopped = true; ctrl?.abort(); },
    /** The id of the last event received (to resume from). */
    lastId: () => lastId,
  };
}
