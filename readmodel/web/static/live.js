/* smstally dashboard: live updates over Server-Sent Events.
 *
 * Every `event: campaign` carries a CampaignStats record as JSON. Each element under
 * [data-campaign="<id>"] that has a data-field gets the new value, formatted exactly
 * like the server-side filters of readmodel/web/format.py (same rounding on the same
 * doubles). Text is only ever set with textContent. No library, no build step.
 */
(function () {
  'use strict';

  var DASH = '\u2014';

  /* Contract §4: status -> category (kept identical to processors/catalog.py). */
  var STATUS_CATEGORY = {
    PENDING: 'waiting',
    PROVIDER_ACCEPTED: 'receipt',
    DELIVERED: 'receipt',
    SOFT_BOUNCE: 'temporary_error',
    PROVIDER_ERROR: 'temporary_error',
    HARD_BOUNCE: 'permanent_error',
    UNKNOWN: 'unknown',
    NOT_SENT: 'not_sent'
  };
  /* Contract §6: the numerator of each rate. */
  var RATE_NUMERATORS = {
    receipt: ['DELIVERED', 'PROVIDER_ACCEPTED'],
    delivery: ['DELIVERED'],
    waiting: ['PENDING'],
    temporary_error: ['SOFT_BOUNCE', 'PROVIDER_ERROR'],
    permanent_error: ['HARD_BOUNCE'],
    unknown: ['UNKNOWN']
  };
  var PROGRESS_SEGMENTS = ['receipt', 'temporary_error', 'permanent_error', 'unknown'];
  /* Contract §11: the delivery-time buckets and their upper bounds (null: the open last one). */
  var DELIVERY_BOUNDS = [5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 259200];
  var BREAKDOWN_CATEGORIES = ['receipt', 'temporary_error', 'permanent_error', 'waiting'];
  var COUNT_FIELDS = { sent: 1, not_sent: 1, unsubscribed: 1, launch_list_size: 1, version: 1 };
  var TIME_FIELDS = { created_at: 1, launched_at: 1, first_sent_at: 1, last_event_at: 1, updated_at: 1 };
  var CHART_INTERVAL_MS = 2000;

  /* ------------------------------------------------------------ formatters */

  function isNum(x) { return typeof x === 'number' && isFinite(x); }

  function group(n) {
    var sign = n < 0 ? '-' : '';
    var s = String(Math.abs(n));
    var out = '';
    while (s.length > 3) { out = ',' + s.slice(-3) + out; s = s.slice(0, -3); }
    return sign + s + out;
  }

  function num(x) {
    if (!isNum(x)) return DASH;
    return group(Number.isInteger(x) ? x : Math.floor(x + 0.5));
  }

  function pct(x) {
    if (!isNum(x)) return DASH;
    if (x <= 0) return '0%';
    if (x >= 1) return '100%';
    var p = Math.floor(x * 1000 + 0.5);
    if (p <= 0) return '<0.1%';
    if (p >= 1000) return '>99.9%';
    return Math.floor(p / 10) + '.' + (p % 10) + '%';
  }

  function credits(x) {
    if (!isNum(x)) return DASH;
    var cents = Math.floor(Math.abs(x) * 100 + 0.5);
    var sign = x < 0 && cents ? '-' : '';
    var whole = Math.floor(cents / 100), frac = cents % 100;
    var out = sign + group(whole);
    if (frac) out += '.' + (frac < 10 ? '0' + frac : String(frac)).replace(/0+$/, '');
    return out;
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function utc(ms) {
    if (!isNum(ms)) return null;
    var d = new Date(Math.floor(Math.trunc(ms) / 1000) * 1000);
    return isNaN(d.getTime()) ? null : d;
  }
  function ymdhm(d) {
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
      ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
  }
  function dt(ms) { var d = utc(ms); return d ? ymdhm(d) + ' UTC' : DASH; }
  function dtShort(ms) { var d = utc(ms); return d ? ymdhm(d) : DASH; }
  function dts(ms) { var d = utc(ms); return d ? ymdhm(d) + ':' + pad(d.getUTCSeconds()) + ' UTC' : DASH; }
  function iso(ms) {
    if (!isNum(ms)) return '';
    var d = new Date(Math.trunc(ms));
    return isNaN(d.getTime()) ? '' : d.toISOString();
  }

  function reltime(ms, nowMs) {
    if (!isNum(ms)) return DASH;
    var now = isNum(nowMs) ? nowMs : Date.now();
    var delta = (now - ms) / 1000;
    var future = delta < 0;
    var s = Math.abs(delta), v, unit;
    if (s < 45) return 'just now';
    if (s < 3600) {
      v = Math.floor(s / 60 + 0.5) || 1; unit = 'min';
      if (v >= 60) { v = 1; unit = 'h'; }
    } else if (s < 86400) {
      v = Math.floor(s / 3600 + 0.5); unit = 'h';
      if (v >= 24) { v = 1; unit = 'd'; }
    } else {
      v = Math.floor(s / 86400 + 0.5); unit = 'd';
    }
    return future ? 'in ' + v + ' ' + unit : v + ' ' + unit + ' ago';
  }

  var TIME_FORMATS = { dt: dt, dt_short: dtShort, dts: dts, reltime: function (ms) { return reltime(ms); } };

  /* ------------------------------------------------------------ figures */

  function count(rec, status) {
    var v = (rec.status_counts || {})[status];
    return isNum(v) ? v : 0;
  }
  function catCount(rec, cat) {
    var n = 0;
    for (var s in STATUS_CATEGORY) {
      if (Object.prototype.hasOwnProperty.call(STATUS_CATEGORY, s) && STATUS_CATEGORY[s] === cat) n += count(rec, s);
    }
    return n;
  }
  function reasonCount(rec, reason) {
    var v = (rec.not_sent_by_reason || {})[reason];
    return isNum(v) ? v : 0;
  }
  function share(part, whole) {
    if (!isNum(part) || !isNum(whole)) return null;
    return whole ? part / whole : 0;
  }
  function contacts(rec) { return (rec.sent || 0) + (rec.not_sent || 0); }
  function rate(rec, name) {
    if (name === 'errors') return rate(rec, 'temporary_error') + rate(rec, 'permanent_error');
    var v = (rec.rates || {})[name];
    if (isNum(v)) return v;
    var sent = rec.sent || 0;
    if (!sent) return 0;
    if (name === 'unsubscribe') return (rec.unsubscribed || 0) / sent;
    var nums = RATE_NUMERATORS[name] || [], n = 0;
    for (var i = 0; i < nums.length; i++) n += count(rec, nums[i]);
    return n / sent;
  }
  function progress(rec) {
    var sent = rec.sent || 0, x = 0, segs = {};
    for (var i = 0; i < PROGRESS_SEGMENTS.length; i++) {
      var cat = PROGRESS_SEGMENTS[i];
      var w = sent ? rate(rec, cat) * 100 : 0;
      w = Math.max(0, Math.min(w, 100 - x));
      segs[cat] = { x: Math.round(x * 1000) / 1000, w: Math.round(w * 1000) / 1000 };
      x += w;
    }
    var done = sent ? 1 - rate(rec, 'waiting') : 0;
    return { done: Math.max(0, Math.min(done, 1)), segments: segs };
  }

  /* Delivery time (format.py: _delivery_counts, delivered_within, delivery_percentile). */
  function deliveryCounts(rec) {
    var b = rec.delivery_seconds || {}, out = [];
    for (var i = 0; i < DELIVERY_BOUNDS.length; i++) {
      var v = b['le_' + DELIVERY_BOUNDS[i]];
      out.push(isNum(v) ? v : 0);
    }
    var last = b['gt_' + DELIVERY_BOUNDS[DELIVERY_BOUNDS.length - 1]];
    out.push(isNum(last) ? last : 0);
    return out;
  }
  function sum(xs) { var n = 0; for (var i = 0; i < xs.length; i++) n += xs[i]; return n; }
  function deliveredWithin(rec, seconds) {
    var counts = deliveryCounts(rec), total = sum(counts), within = 0;
    if (!total) return null;
    for (var i = 0; i < DELIVERY_BOUNDS.length; i++) if (DELIVERY_BOUNDS[i] <= seconds) within += counts[i];
    return within / total;
  }
  function duration(seconds) {
    var units = [['d', 86400], ['h', 3600], ['min', 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1] && seconds % units[i][1] === 0) return (seconds / units[i][1]) + ' ' + units[i][0];
    }
    return seconds + ' s';
  }
  function deliveryPercentile(rec, percent) {
    var counts = deliveryCounts(rec), total = sum(counts), cumulative = 0;
    if (!total) return DASH;
    for (var i = 0; i < DELIVERY_BOUNDS.length; i++) {
      cumulative += counts[i];
      if (cumulative * 100 >= percent * total) return '\u2264 ' + duration(DELIVERY_BOUNDS[i]);
    }
    return '> ' + duration(DELIVERY_BOUNDS[DELIVERY_BOUNDS.length - 1]);
  }
  function meterWidth(fraction) { return isNum(fraction) ? Math.floor(fraction * 10000 + 0.5) / 100 : 0; }

  /* A breakdown table's cells as text (format.py: breakdown_rows), largest first. */
  function breakdownRows(m) {
    var rows = [];
    for (var key in (m || {})) {
      if (!Object.prototype.hasOwnProperty.call(m, key)) continue;
      var counts = m[key] || {}, total = 0;
      for (var s in counts) if (Object.prototype.hasOwnProperty.call(counts, s) && isNum(counts[s])) total += counts[s];
      rows.push({ key: String(key), counts: counts, total: total });
    }
    rows.sort(function (a, b) { return b.total - a.total || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0); });
    return rows.map(function (r) {
      var rec = { status_counts: r.counts }, cells = [r.key, num(r.total)];
      for (var i = 0; i < BREAKDOWN_CATEGORIES.length; i++) cells.push(pct(share(catCount(rec, BREAKDOWN_CATEGORIES[i]), r.total)));
      return cells;
    });
  }

  /* The text of a data-field for a record, or null for a field we do not know. */
  function fieldText(rec, field, format) {
    var i = field.indexOf(':');
    var kind = i < 0 ? field : field.slice(0, i);
    var arg = i < 0 ? '' : field.slice(i + 1);
    switch (kind) {
      case 'rate': return pct(rate(rec, arg));
      case 'count': return num(count(rec, arg));
      case 'share': return pct(share(count(rec, arg), rec.sent || 0));
      case 'cat': return num(catCount(rec, arg));
      case 'reason': return num(reasonCount(rec, arg));
      case 'reason_share': return pct(share(reasonCount(rec, arg), contacts(rec)));
      case 'contacts': return num(contacts(rec));
      case 'credits': return credits(rec.credits);
      case 'done': return pct(progress(rec).done);
      case 'not_sent_share': return pct(share(rec.not_sent || 0, contacts(rec)));
      case 'within': return pct(deliveredWithin(rec, Number(arg)));
      case 'pctl': return deliveryPercentile(rec, Number(arg));
    }
    if (COUNT_FIELDS[field]) return num(rec[field]);
    if (TIME_FIELDS[field]) return (TIME_FORMATS[format] || dt)(rec[field]);
    return null;
  }

  /* The numeric value behind a row, to dim rows that are zero. */
  function fieldValue(rec, field) {
    var i = field.indexOf(':');
    var kind = i < 0 ? field : field.slice(0, i);
    var arg = i < 0 ? '' : field.slice(i + 1);
    if (kind === 'count') return count(rec, arg);
    if (kind === 'cat') return catCount(rec, arg);
    if (kind === 'reason') return reasonCount(rec, arg);
    if (COUNT_FIELDS[field]) return rec[field] || 0;
    return null;
  }

  function visible(rec, cond, el) {
    var waiting = count(rec, 'PENDING');
    if (cond === 'waiting') return waiting > 0;
    if (cond === 'final') return (rec.sent || 0) > 0 && waiting === 0;
    if (cond === 'nothing_sent') return !(rec.sent || 0);
    if (cond === 'error_warning') {
      var t = parseFloat(el.getAttribute('data-threshold'));
      if (!isFinite(t)) t = 0.03;
      return (rec.sent || 0) > 0 && rate(rec, 'errors') > t;
    }
    if (cond === 'delivered') return deliveredWithin(rec, 0) !== null;
    if (cond.indexOf('breakdown:') === 0) {
      var m = rec[cond.slice('breakdown:'.length)];
      return !!m && typeof m === 'object' && Object.keys(m).length > 0;
    }
    var v = fieldValue(rec, cond);
    return v === null ? null : v > 0;
  }

  /* ------------------------------------------------------------ DOM updates */

  function flash(el) {
    el.classList.remove('flash');
    void el.offsetWidth; // restart the animation
    el.classList.add('flash');
    if (el._flashTimer) clearTimeout(el._flashTimer);
    el._flashTimer = setTimeout(function () { el.classList.remove('flash'); }, 1500);
  }

  function updateBar(el, rec) {
    var p = progress(rec);
    var rects = el.querySelectorAll('[data-seg]'), changed = false;
    for (var i = 0; i < rects.length; i++) {
      var s = p.segments[rects[i].getAttribute('data-seg')];
      if (!s) continue;
      var x = String(s.x), w = String(s.w);
      if (rects[i].getAttribute('x') !== x || rects[i].getAttribute('width') !== w) {
        rects[i].setAttribute('x', x);
        rects[i].setAttribute('width', w);
        changed = true;
      }
    }
    var label = pct(p.done) + ' final, ' + pct(rate(rec, 'waiting')) + ' waiting';
    el.setAttribute('aria-label', label);
    el.setAttribute('title', label);
    return changed;
  }

  /* Rebuilt only when a cell changes; text only ever through textContent. */
  function updateBreakdown(tbody, rec) {
    var rows = breakdownRows(rec[tbody.getAttribute('data-breakdown')]);
    var sig = JSON.stringify(rows);
    if (tbody._sig === undefined) tbody._sig = JSON.stringify(Array.prototype.map.call(tbody.rows, function (tr) {
      return Array.prototype.map.call(tr.cells, function (td) { return td.textContent; });
    }));
    if (tbody._sig === sig) return false;
    tbody._sig = sig;
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    for (var i = 0; i < rows.length; i++) {
      var tr = document.createElement('tr');
      for (var j = 0; j < rows[i].length; j++) {
        var td = document.createElement('td');
        if (j > 0) td.className = j === 1 ? 'num strong' : 'num';
        td.textContent = rows[i][j];
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    flash(tbody);
    return true;
  }

  function applyRecord(root, rec) {
    var changed = false;
    var fields = root.querySelectorAll('[data-field]');
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i], field = el.getAttribute('data-field');
      if (field === 'progress') { if (updateBar(el, rec)) changed = true; continue; }
      var text = fieldText(rec, field, el.getAttribute('data-format'));
      if (text === null) continue;
      if (TIME_FIELDS[field]) {
        if (el.hasAttribute('data-reltime') && isNum(rec[field])) el.setAttribute('data-reltime', String(rec[field]));
        if (el.tagName === 'TIME' && isNum(rec[field])) { el.setAttribute('datetime', iso(rec[field])); el.setAttribute('title', dts(rec[field])); }
      }
      if (el.textContent !== text) {
        el.textContent = text;
        if (field !== 'updated_at' && field !== 'version') { flash(el); changed = true; }
      }
    }
    var rows = root.querySelectorAll('[data-row]');
    for (var j = 0; j < rows.length; j++) {
      var v = fieldValue(rec, rows[j].getAttribute('data-row'));
      if (v !== null) rows[j].classList.toggle('zero', v === 0);
    }
    var meters = root.querySelectorAll('[data-meter]');
    for (var mi = 0; mi < meters.length; mi++) {
      var spec = meters[mi].getAttribute('data-meter');
      var width = String(meterWidth(deliveredWithin(rec, Number(spec.slice(spec.indexOf(':') + 1)))));
      if (meters[mi].getAttribute('width') !== width) meters[mi].setAttribute('width', width);
    }
    var tables = root.querySelectorAll('[data-breakdown]');
    for (var ti = 0; ti < tables.length; ti++) if (updateBreakdown(tables[ti], rec)) changed = true;
    var vis = root.querySelectorAll('[data-visible]');
    for (var k = 0; k < vis.length; k++) {
      var show = visible(rec, vis[k].getAttribute('data-visible'), vis[k]);
      if (show !== null) vis[k].hidden = !show;
    }
    return changed;
  }

  /* ------------------------------------------------------------ chart refresh */

  function refreshChart(root) {
    var src = root.getAttribute('data-chart-src');
    var box = root.querySelector('[data-chart]');
    if (!src || !box || !window.fetch || !window.DOMParser) return;
    var st = root._chart || (root._chart = { last: 0, timer: null, busy: false });
    if (st.timer) return; // already scheduled
    var wait = Math.max(0, st.last + CHART_INTERVAL_MS - Date.now());
    st.timer = setTimeout(function () {
      st.timer = null;
      if (st.busy) { refreshChart(root); return; }
      st.busy = true;
      st.last = Date.now();
      fetch(src, { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) return;
          var doc = new DOMParser().parseFromString(text, 'image/svg+xml');
          var svg = doc.documentElement;
          if (!svg || svg.nodeName.toLowerCase() !== 'svg' || doc.getElementsByTagName('parsererror').length) return;
          var node = document.importNode(svg, true);
          while (box.firstChild) box.removeChild(box.firstChild);
          box.appendChild(node);
        })
        .catch(function () { /* keep the current chart */ })
        .then(function () { st.busy = false; });
    }, wait);
  }

  /* ------------------------------------------------------------ campaign list */

  function maybeAnnounce(rec) {
    var list = document.querySelector('[data-list]');
    var banner = document.querySelector('[data-new-campaigns]');
    if (!list || !banner || !banner.hidden) return;
    if (/[?&]cursor=/.test(window.location.search)) return; // not the first page
    var kind = list.getAttribute('data-kind') || '';
    if (kind && rec.kind !== kind) return;
    var q = (list.getAttribute('data-q') || '').toLowerCase();
    if (q) {
      var hay = ((rec.name || '') + '\n' + (rec.campaign_id || '')).toLowerCase();
      if (hay.indexOf(q) < 0) return;
    }
    banner.hidden = false;
  }

  function onCampaign(rec) {
    if (!rec || typeof rec.campaign_id !== 'string') return;
    var roots = document.querySelectorAll('[data-campaign]'), found = false;
    for (var i = 0; i < roots.length; i++) {
      var root = roots[i];
      if (root.getAttribute('data-campaign') !== rec.campaign_id) continue;
      found = true;
      var have = parseInt(root.getAttribute('data-version'), 10);
      if (isNum(rec.version) && isFinite(have) && rec.version < have) continue; // stale
      if (isNum(rec.version)) root.setAttribute('data-version', String(rec.version));
      var changed = applyRecord(root, rec);
      if (changed && root.hasAttribute('data-chart-src')) refreshChart(root);
    }
    if (!found) maybeAnnounce(rec);
  }

  /* ------------------------------------------------------------ connection */

  var LABELS = { connecting: 'Connecting\u2026', live: 'Live', reconnecting: 'Reconnecting\u2026', offline: 'Offline, retrying' };

  function setState(state) {
    var els = document.querySelectorAll('[data-live]');
    for (var i = 0; i < els.length; i++) {
      els[i].setAttribute('data-state', state);
      var label = els[i].querySelector('[data-live-label]');
      if (label) label.textContent = LABELS[state] || state;
      els[i].title = state === 'live' ? 'Live: figures update as events arrive' : (LABELS[state] || state);
    }
  }

  var retryMs = 2000;
  function connect() {
    if (!window.EventSource) { setState('offline'); return; }
    setState('connecting');
    var es = new EventSource('/api/events');
    es.onopen = function () { retryMs = 2000; setState('live'); };
    es.onerror = function () {
      if (es.readyState === 2) { // CLOSED: the browser gave up (e.g. 401); retry ourselves
        setState('offline');
        es.close();
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      } else {
        setState('reconnecting'); // the browser reconnects on its own
      }
    };
    es.addEventListener('campaign', function (ev) {
      var rec;
      try { rec = JSON.parse(ev.data); } catch (e) { return; }
      onCampaign(rec);
    });
  }

  function tickRelative() {
    var els = document.querySelectorAll('[data-reltime]');
    for (var i = 0; i < els.length; i++) {
      var ms = Number(els[i].getAttribute('data-reltime'));
      if (isFinite(ms)) {
        var text = reltime(ms);
        if (els[i].textContent !== text) els[i].textContent = text;
      }
    }
  }

  // Exposed for tests and debugging only; nothing reads it.
  window.smstallyLive = {
    num: num, pct: pct, credits: credits, dt: dt, dtShort: dtShort, dts: dts, reltime: reltime,
    fieldText: fieldText, breakdownRows: breakdownRows, deliveryBounds: DELIVERY_BOUNDS, statusCategory: STATUS_CATEGORY, rateNumerators: RATE_NUMERATORS, onCampaign: onCampaign
  };

  function start() {
    if (!document.querySelector('[data-live]')) return;
    connect();
    setInterval(tickRelative, 30000);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
