// pushgate UI enhancements. Every page works without this script; it adds a
// live filter, relative times that keep up, copy buttons and the "/" key.
(function () {
  'use strict';

  // The server's clock, so that "3 min ago" agrees with the server even if
  // this machine's clock is off.
  var skew = (+document.body.getAttribute('data-now') || Date.now()) - Date.now();

  // ago mirrors the server's rules (format.go).
  function ago(ms) {
    if (ms < 0) return 'in the future';
    var s = Math.floor(ms / 1000);
    var d;
    if (s < 5) d = 'a moment';
    else if (s < 60) d = s + ' s';
    else if (s < 3600) d = Math.floor(s / 60) + ' min';
    else if (s < 48 * 3600) {
      var m = Math.floor((s % 3600) / 60);
      d = Math.floor(s / 3600) + ' h' + (m && s < 10 * 3600 ? ' ' + m + ' min' : '');
    } else d = Math.floor(s / 86400) + ' days';
    return d + ' ago';
  }

  function updateTimes(root) {
    var now = Date.now() + skew;
    var els = (root || document).querySelectorAll('time[data-rel]');
    for (var i = 0; i < els.length; i++) {
      var t = Date.parse(els[i].getAttribute('datetime'));
      if (!isNaN(t)) els[i].textContent = ago(now - t);
    }
  }
  setInterval(updateTimes, 15000);

  // Copy buttons.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain HTTP: the Clipboard API is unavailable; copy a selection.
    return new Promise(function (resolve, reject) {
      var ta = document.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'visually-hidden';
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(ta);
      if (ok) resolve(); else reject(new Error('copy failed'));
    });
  }
  var copyButtons = document.querySelectorAll('[data-copy]');
  for (var i = 0; i < copyButtons.length; i++) {
    copyButtons[i].hidden = false;
    copyButtons[i].addEventListener('click', function (e) {
      var btn = e.currentTarget;
      var src = document.getElementById(btn.getAttribute('data-copy'));
      if (!src) return;
      copyText(src.textContent).then(function () {
        btn.textContent = 'Copied';
      }, function () {
        btn.textContent = 'Select and copy';
        var range = document.createRange();
        range.selectNodeContents(src);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      });
      setTimeout(function () { btn.textContent = 'Copy'; }, 2000);
    });
  }

  // Live filter on the overview: fetch the filtered page and swap in its
  // results, keeping the focus in the box.
  var form = document.getElementById('filter');
  var input = document.getElementById('q');
  if (form && input) {
    var timer = null;
    var seq = 0;
    var apply = function () {
      var params = new URLSearchParams(new FormData(form));
      var keys = [];
      params.forEach(function (v, k) { if (v === '') keys.push(k); });
      keys.forEach(function (k) { params.delete(k); });
      params.delete('page');
      var qs = params.toString();
      var url = form.getAttribute('action') + (qs ? '?' + qs : '');
      var mine = ++seq;
      document.body.classList.add('loading');
      fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== seq) return; // a newer filter is on its way
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById('results');
          var cur = document.getElementById('results');
          if (fresh && cur) {
            cur.replaceWith(fresh);
            updateTimes(fresh);
            history.replaceState(null, '', url);
            document.title = doc.title;
          }
        })
        .catch(function () { /* the form still works by submitting */ })
        .then(function () { if (mine === seq) document.body.classList.remove('loading'); });
    };
    input.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(apply, 250);
    });
    form.addEventListener('change', function (e) {
      if (e.target !== input) apply();
    });
  }

  // Filter of families on a group page.
  var famFilter = document.getElementById('fam-filter');
  if (famFilter) {
    famFilter.hidden = false;
    famFilter.addEventListener('input', function () {
      var q = famFilter.value.trim().toLowerCase();
      var items = document.querySelectorAll('.family[data-name], .toc li[data-name]');
      for (var i = 0; i < items.length; i++) {
        items[i].hidden = q !== '' && items[i].getAttribute('data-name').toLowerCase().indexOf(q) < 0;
      }
    });
  }

  // "/" focuses the filter box, as on many sites.
  document.addEventListener('keydown', function (e) {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var box = input || famFilter;
    if (!box) return;
    e.preventDefault();
    box.focus();
    box.select();
  });
})();
