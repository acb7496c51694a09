/* Armoire pages: the few things the server cannot do alone.
   - PIN pads (digits kept in a hidden field, only dots shown),
   - user picker on the lock screen, drug list filter, +/- steppers,
   - the scanner field keeps the focus (a USB scanner types wherever the focus is) and
     keeps a DataMatrix's group separators (typed as Ctrl+]),
   - live updates (server-sent events): the operation's progress, the simulated drawers,
     alarms, and the return to the lock screen when the cabinet locks,
   - the on-screen keyboard of the touchscreen's text fields. */
"use strict";
(function () {
  var body = document.body;
  var csrf = body.dataset.csrf;
  var states = JSON.parse(body.dataset.states || "{}");
  function stateLabel(st) { return states[st] || st; }

  /* A browser breaks a line after a hyphen: "A-2-" at a line's end and "2" on the next
     reads as another pocket, or none. Each pocket label (A-2-2) in a message is put in a
     span kept on one line (.nobr): the server's messages on load (#flash, #op-msg,
     .pockets), the live ones as they come. Only text nodes change, never the words. */
  var POCKET = /\b[A-Za-z0-9]+-[0-9]+-[0-9]+\b/g;
  function keepPockets(node) {
    var text = node.data, at = 0, m, parts = [];
    POCKET.lastIndex = 0;
    while ((m = POCKET.exec(text)) !== null) {
      parts.push(document.createTextNode(text.slice(at, m.index)));
      var span = document.createElement("span");
      span.className = "nobr";
      span.textContent = m[0];
      parts.push(span);
      at = m.index + m[0].length;
    }
    if (!parts.length) { return; }
    parts.push(document.createTextNode(text.slice(at)));
    parts.forEach(function (part) { node.parentNode.insertBefore(part, node); });
    node.parentNode.removeChild(node);
  }
  function wrapPockets(root) {
    var walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT), nodes = [];
    for (var n = walk.nextNode(); n; n = walk.nextNode()) {
      if (!(n.parentNode.classList && n.parentNode.classList.contains("nobr"))) { nodes.push(n); }
    }
    nodes.forEach(keepPockets);
  }
  function setText(el, text) {
    el.textContent = text;
    wrapPockets(el);
  }
  document.querySelectorAll("#flash, #op-msg, .pockets").forEach(wrapPockets);

  function fold(s) {
    return (s || "").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }

  /* PIN pads */
  document.querySelectorAll(".pinpad").forEach(function (pad) {
    /* A pad may serve several PIN fields (current, new, again): touching one's dots makes
       the keys type into it. */
    var outputs = pad.querySelectorAll("[data-dots-for]");
    function show() {
      outputs.forEach(function (out) {
        var field = document.getElementById(out.dataset.dotsFor);
        out.textContent = "\u25CF".repeat(field.value.length);
        out.classList.toggle("active", outputs.length > 1 &&
                             out.dataset.dotsFor === pad.dataset.padFor);
      });
    }
    pad.addEventListener("click", function (ev) {
      var key = ev.target.closest("button");
      if (!key || key.type === "submit") { return; }
      if (key.dataset.dotsFor !== undefined) {
        pad.dataset.padFor = key.dataset.dotsFor;
        show();
        return;
      }
      var input = document.getElementById(pad.dataset.padFor);
      if (key.dataset.digit !== undefined && input.value.length < 12) {
        input.value += key.dataset.digit;
      } else if (key.hasAttribute("data-clear")) {
        input.value = "";
      } else if (key.hasAttribute("data-back")) {
        input.value = input.value.slice(0, -1);
      }
      show();
    });
    show();
  });

  /* print buttons (the page's own print style keeps only what is marked printable) */
  document.querySelectorAll("[data-print]").forEach(function (btn) {
    btn.addEventListener("click", function () { window.print(); });
  });

  /* lock screen: touching a name fills the id field */
  document.querySelectorAll("button[data-user]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var field = document.getElementById("user_id");
      field.value = btn.dataset.user;
      document.querySelectorAll("button[data-user]").forEach(function (b) {
        b.classList.toggle("chosen", b === btn);
      });
    });
  });

  /* drug list filter: accents and case do not matter */
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var list = document.getElementById(input.dataset.filter);
    input.addEventListener("input", function () {
      var q = fold(input.value).trim();
      list.querySelectorAll("[data-search]").forEach(function (item) {
        item.classList.toggle("hidden", q !== "" && fold(item.dataset.search).indexOf(q) < 0);
      });
    });
    /* A form shown again after a refusal keeps its choice, which could sit out of sight at
       the list's end: scroll the list (not the page) to it, so the nurse sees what the
       form will send. */
    var chosen = list.querySelector("input:checked");
    var item = chosen && chosen.closest("[data-search]");
    if (item) {
      list.scrollTop += item.getBoundingClientRect().top - list.getBoundingClientRect().top
        - list.clientTop;
    }
  });

  /* steppers */
  document.querySelectorAll("button[data-step]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var input = document.getElementById(btn.dataset.for);
      var min = parseInt(input.min || "0", 10);
      var v = parseInt(input.value || "0", 10);
      if (isNaN(v)) { v = min; }
      input.value = Math.max(min, v + parseInt(btn.dataset.step, 10));
    });
  });

  /* Validation bubbles in the reader's language. Chromium words the bubble of a required
     or out-of-range field in the browser's own language (the kiosk's is not the nurse's),
     so the field is given the server's words (body data-validity) when the browser finds
     it invalid. Those words are cleared at the next input or click in the form, or change of
     a list or box, before the browser checks the form again: the +/- keys set a value without an input
     event, and a stale message would otherwise keep a corrected form from going. */
  var validity = JSON.parse(body.dataset.validity || "{}");
  function invalidText(el) {
    var v = el.validity;
    var choice = el.type === "radio" || el.type === "checkbox" || el.tagName === "SELECT";
    if (v.valueMissing) { return choice ? validity.choose : validity.missing; }
    if (v.badInput) { return validity.number; }
    if (v.rangeUnderflow) { return fill(validity.min || "", { min: el.min }); }
    if (v.rangeOverflow) { return fill(validity.max || "", { max: el.max }); }
    if (v.stepMismatch) { return validity.number; }
    if (v.tooLong) { return fill(validity.long || "", { n: el.maxLength }); }
    if (v.tooShort) { return fill(validity.short || "", { n: el.minLength }); }
    if (v.patternMismatch || v.typeMismatch) { return validity.format; }
    return "";
  }
  function clearInvalid(ev) {
    var form = ev.target && ev.target.form !== undefined ? ev.target.form : null;
    if (!form && ev.target && ev.target.closest) { form = ev.target.closest("form"); }
    if (!form) { return; }
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.setCustomValidity) { el.setCustomValidity(""); }
    });
  }
  if (validity.missing) {
    document.addEventListener("invalid", function (ev) {
      var el = ev.target;
      el.setCustomValidity("");
      var text = invalidText(el);
      if (text) { el.setCustomValidity(text); }
    }, true);
    ["input", "click"].forEach(function (type) {
      document.addEventListener(type, clearInvalid, true);
    });
    /* A text field's change comes when it loses the focus, its typing long since told by
       input events: when the form was refused from elsewhere (the on-screen Entrée, after
       the expiry was typed on a keyboard), the browser moving the focus to the empty scan
       field fired it, and it cleared the French words just given, so Chromium's English
       bubble showed. A list or a box's change is the choice itself: it still clears. */
    document.addEventListener("change", function (ev) {
      var el = ev.target;
      if (el && el.tagName === "INPUT" && el.type !== "radio" && el.type !== "checkbox") {
        return;
      }
      clearInvalid(ev);
    }, true);
  }

  /* the scanner field keeps the focus unless the person taps another field */
  var scan = document.querySelector("input[data-keep-focus]");
  if (scan) {
    scan.focus();
    /* A scanner in keyboard mode types a GS1 DataMatrix's group separator (GS, 0x1D) as
       Ctrl+], which a text field drops: the lot then ran into the next field ("10LOT<GS>17…"
       read as lot "LOT17…"). Put the character itself in the field. By key position, as
       the scanner sends it, whatever the keyboard layout (] is not a key of AZERTY). */
    scan.addEventListener("keydown", function (e) {
      if (e.ctrlKey && !e.altKey && !e.metaKey && e.code === "BracketRight") {
        e.preventDefault();
        scan.setRangeText("\u001d", scan.selectionStart, scan.selectionEnd, "end");
      }
    });
    document.addEventListener("focusout", function () {
      setTimeout(function () {
        var a = document.activeElement;
        if (!a || a === body || !a.matches("input, select, textarea")) { scan.focus(); }
      }, 0);
    });
  }

  /* On-screen keyboard (touchscreen pages only: the pharmacy pages have none in their HTML).
     Shown while a free-text field has the focus, docked at the bottom; the page gets room
     below (padding) and is scrolled so that the field, and the form's button when both fit,
     are above the keys. The keys never take the focus (pointerdown/mousedown are
     cancelled) and type like a keyboard: at the caret, with an `input` event (the drug
     list filters as the nurse types). A physical keyboard or a USB scanner keeps typing as
     before: nothing here listens to key events.
     The scanner field (data-keep-focus) does not open it when it gets the focus (it always
     has it: the keys would hide half the restock page for a field the scanner fills), only
     when the technician touches it, to type an unreadable code by hand.
     A field followed by one with its own pad (the witness id, then her PIN) names it in
     data-osk-next: Enter becomes "Suivant" and moves the focus there, which closes the
     keyboard, since the keys covered that pad; or the next text field (the lot, then the
     expiry), which keeps the keyboard. A field with inputmode="numeric" (the
     expiry date) gets the digits, hyphen and backspace only: a third of the height. */
  var osk = document.getElementById("osk");
  if (osk) {
    var oskField = null;
    var shiftKey = osk.querySelector("[data-osk=shift]");
    var accentKey = osk.querySelector("[data-osk=accents]");
    var enterKey = osk.querySelector("[data-osk=enter]");
    var pointerDown = false;
    var relayoutLater = false;
    var oskFits = function (el) {
      /* a password field too (the pharmacy login's PIN, opened at the cabinet), not the
         badge reader's (data-keep-focus), which a reader types into; a number with no
         − / + beside it (the pharmacy pages' counts and limits) */
      return !!el && el.tagName === "INPUT" && !el.readOnly && !el.disabled &&
        (el.type === "text" || el.type === "search" ||
         (el.type === "password" && !el.hasAttribute("data-keep-focus")) ||
         (el.type === "number" && !el.closest(".stepper")));
    };
    /* Capitals: "off", "once" (the next letter only: a gloved nurse typing a name wants
       one capital, and a sticky one made the rest of it capitals too) or "lock" (a second
       touch, for lots and codes in capitals; a third releases it). No double-tap timing:
       two slow touches lock as well as two quick ones. */
    var setShift = function (state) {
      osk.dataset.shift = state;
      shiftKey.setAttribute("aria-pressed", state === "off" ? "false" : "true");
      shiftKey.textContent = state === "lock" ? "\u21EA" : "\u21E7";
    };
    var setAccents = function (on) {
      osk.classList.toggle("accented", on);
      accentKey.setAttribute("aria-pressed", on ? "true" : "false");
      accentKey.textContent = on ? accentKey.dataset.on : accentKey.dataset.off;
    };
    var submitOf = function (form) {
      if (!form) { return null; }
      return Array.prototype.find.call(form.elements, function (el) {
        return (el.tagName === "BUTTON" || el.tagName === "INPUT") && el.type === "submit";
      }) || null;
    };
    var oskShow = function (field) {
      if (oskField !== field) {
        setShift("off");
        setAccents(false);
      }
      oskField = field;
      relayoutLater = false;
      /* digits alone for a numeric field, whose letters would only cover the page */
      osk.classList.toggle("numeric", field.inputMode === "numeric" || field.inputMode === "decimal");
      var next = !!field.dataset.oskNext;
      var label = next ? enterKey.dataset.next : enterKey.dataset.enter;
      enterKey.setAttribute("aria-label", label);
      enterKey.textContent = label + (next ? " \u21E5" : " \u23CE");
      osk.classList.remove("hidden");
      body.classList.add("osk-open");
      body.style.paddingBottom = osk.offsetHeight + "px";
      /* the field near the top; its form's button too when both fit above the keys (at
         800x480 the waste page's button is beside the witness field, not under it) */
      /* a heading kept at the top (.osk-sticky) takes that much of the room; made sticky
         by osk-open, so measured now */
      var lid = document.querySelector(".osk-sticky");
      var below = 8 + (lid ? lid.offsetHeight : 0);
      var room = window.innerHeight - osk.offsetHeight - 8 - below;
      var box = field.getBoundingClientRect();
      /* the field's label above it too ("Patient (identifiant)" went off the top while
         the patient was typed): field, label and button if they fit, else field and
         button, else field and label, else the field alone */
      var shown = function (el) { return el && el.getClientRects().length ? el.getBoundingClientRect() : null; };
      var label = shown(field.labels && field.labels.length ? field.labels[0] : null);
      if (label && label.top >= box.top) { label = null; }  /* only a label above it */
      var sb = shown(submitOf(field.form));
      var ways = [[box, label, sb], [box, sb], [box, label]];
      var top = box.top;
      for (var i = 0; i < ways.length; i += 1) {
        var parts = ways[i].filter(function (r) { return r; });
        var hi = Math.min.apply(null, parts.map(function (r) { return r.top; }));
        var lo = Math.max.apply(null, parts.map(function (r) { return r.bottom; }));
        if (lo - hi <= room) { top = hi; break; }
      }
      if (Math.abs(top - below) > 1) { window.scrollBy(0, top - below); }
    };
    /* The page's room under the keys goes only once the finger is off the screen: taken
       at once, the page moved under a touch that closed the keyboard (on a name, a PIN
       key), which then ended on another button, and nothing was chosen. */
    var relayout = function () {
      relayoutLater = false;
      if (!oskField) {
        body.classList.remove("osk-open");
        body.style.paddingBottom = "";
      }
    };
    var oskHide = function () {
      oskField = null;
      setShift("off");
      setAccents(false);
      osk.classList.add("hidden");
      if (pointerDown) { relayoutLater = true; } else { relayout(); }
    };
    document.addEventListener("pointerdown", function () { pointerDown = true; }, true);
    var released = function () {
      pointerDown = false;
      if (relayoutLater) { setTimeout(relayout, 0); }  /* after this touch's click */
    };
    document.addEventListener("pointerup", released, true);
    document.addEventListener("pointercancel", released, true);
    var oskInput = function (f, inputType, data) {
      f.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: inputType, data: data }));
    };
    var oskType = function (f, text) {
      if (f.type === "number") {  /* no caret nor setRangeText in a number field */
        f.value = f.value + text;
        oskInput(f, "insertText", text);
        return;
      }
      var start = f.selectionStart === null ? f.value.length : f.selectionStart;
      var end = f.selectionEnd === null ? f.value.length : f.selectionEnd;
      if (f.maxLength >= 0 && f.value.length - (end - start) + text.length > f.maxLength) { return; }
      f.setRangeText(text, start, end, "end");
      oskInput(f, "insertText", text);
    };
    var oskBack = function (f) {
      if (f.type === "number") {
        f.value = f.value.slice(0, -1);
        oskInput(f, "deleteContentBackward", null);
        return;
      }
      var start = f.selectionStart === null ? f.value.length : f.selectionStart;
      var end = f.selectionEnd === null ? f.value.length : f.selectionEnd;
      if (start === end) {
        if (start === 0) { return; }
        start -= 1;
      }
      f.setRangeText("", start, end, "end");
      oskInput(f, "deleteContentBackward", null);
    };
    var oskEnter = function (f) {
      /* as Enter on a keyboard: the page's own key handlers first, then the form's implicit
         submission (its default button's click, so validation and data-busy apply) */
      var ev = new KeyboardEvent("keydown", { key: "Enter", code: "Enter", bubbles: true, cancelable: true });
      if (!f.dispatchEvent(ev) || !f.form) { return; }
      var submit = submitOf(f.form);
      if (submit) {
        if (!submit.disabled) { submit.click(); }
      } else {
        f.form.requestSubmit();
      }
    };
    var oskNext = function (f) {
      var target = document.getElementById(f.dataset.oskNext);
      if (!target) { oskEnter(f); return; }
      /* focusin: a pad is not a text field, the keys go; a text field (the lot's next,
         the expiry) keeps them, shown for it and scrolled by oskShow */
      target.focus({ preventScroll: true });
      if (oskField === target) { return; }
      if (oskField) { oskHide(); }
      target.scrollIntoView({ block: "nearest" });
    };
    var swallow = function (e) { e.preventDefault(); };
    osk.addEventListener("pointerdown", swallow);
    osk.addEventListener("mousedown", swallow);
    osk.addEventListener("click", function (e) {
      var key = e.target.closest("button");
      var f = oskField;
      if (!key || !f) { return; }
      if (document.activeElement !== f) { f.focus({ preventScroll: true }); }
      var action = key.dataset.osk;
      var shift = osk.dataset.shift;
      if (key.dataset.char !== undefined) {
        var letter = key.classList.contains("letter");
        oskType(f, letter && shift !== "off" ? key.dataset.char.toUpperCase() : key.dataset.char);
        if (letter && shift === "once") { setShift("off"); }
      } else if (action === "back") {
        oskBack(f);
      } else if (action === "shift") {
        setShift(shift === "off" ? "once" : shift === "once" ? "lock" : "off");
      } else if (action === "accents") {
        setAccents(!osk.classList.contains("accented"));
      } else if (action === "enter") {
        if (f.dataset.oskNext) { oskNext(f); } else { oskEnter(f); }
      } else if (action === "close") {
        oskHide();
        f.blur();
      }
    });
    document.addEventListener("focusin", function (e) {
      var el = e.target;
      if (oskFits(el) && !el.hasAttribute("data-keep-focus")) {
        if (oskField !== el) { oskShow(el); }
      } else if (!osk.contains(el) && oskField) {
        oskHide();
      }
    });
    document.addEventListener("focusout", function () {
      setTimeout(function () {
        var a = document.activeElement;
        if (oskField && a !== oskField && !osk.contains(a)) { oskHide(); }
      }, 0);
    });
    document.querySelectorAll("input[data-keep-focus]").forEach(function (el) {
      el.addEventListener("click", function () { if (oskFits(el) && oskField !== el) { oskShow(el); } });
    });
    var first = document.activeElement;
    if (oskFits(first) && !first.hasAttribute("data-keep-focus")) { oskShow(first); }
  }

  /* keep the session alive while the person is busy on a page (a pharmacy page opened on
     the kiosk has the cabinet's short inactivity limit too) */
  var lastTouch = 0;
  if (body.dataset.kind === "cabinet" || body.dataset.kind === "pharmacy") {
    document.addEventListener("pointerdown", function () {
      var now = Date.now();
      if (now - lastTouch < 15000) { return; }
      lastTouch = now;
      fetch("/touch", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    });
  }

  function flash(text, kind) {
    var box = document.getElementById("flash");
    var p = document.createElement("p");
    p.className = "flash " + kind;
    p.setAttribute("role", "alert");
    setText(p, text);
    box.appendChild(p);
  }

  function fill(tpl, values) {
    return tpl.replace(/\{(\w+)\}/g, function (m, k) { return values[k] !== undefined ? values[k] : m; });
  }

  /* a form the page exists to send (back from a re-layout task's operation: recording it
     is a POST, never the GET of the page), sent at once; its button stays for a page
     whose script did not run */
  var auto = document.querySelector("form[data-autosubmit]");
  if (auto) { auto.submit(); }

  /* a form that takes a while (the layout search): say so, and do not submit it twice */
  Array.prototype.forEach.call(document.querySelectorAll("form[data-busy]"), function (f) {
    f.addEventListener("submit", function (ev) {
      if (f.classList.contains("busy")) { ev.preventDefault(); return; }
      f.classList.add("busy");
      var b = f.querySelector("button");
      if (b) { b.textContent = f.dataset.busy; }
    });
  });

  /* The controller out of reach (restarting, crashed): say so, in the page's language
     (the text is the server's, in #offline), rather than leave a screen that looks alive.
     A live page learns it from its event stream; any other page (the lock screen) asks
     /healthz now and then. */
  var offline = document.getElementById("offline");
  function setOffline(down) { if (offline) { offline.classList.toggle("hidden", !down); } }
  window.addEventListener("offline", function () { setOffline(true); });
  if (!body.dataset.live || !window.EventSource) {
    setInterval(function () {
      fetch("/healthz", { cache: "no-store", credentials: "same-origin" }).then(
        function (r) { setOffline(!r.ok); }, function () { setOffline(true); });
    }, 10000);
    return;
  }

  /* live updates */
  var opEl = document.getElementById("operation");
  var source = new EventSource("/events");
  source.onopen = function () { setOffline(false); };
  var lang = document.documentElement.lang;

  function onOperation(m) {
    if (!opEl) { return; }
    var values = { drawer: m.drawer, pocket: m.pocket, qty: m.qty, n: m.counted };
    var msg = document.getElementById("op-msg");
    var step = m.step;
    if (step === "done" || step === "aborted") {
      msg.textContent = opEl.dataset["msg" + (step === "done" ? "Done" : "Aborted")];
      source.close();
      setTimeout(function () { window.location.assign("/menu"); }, 600);
      return;
    }
    var tpl = { opening: opEl.dataset.msgOpening, act: opEl.dataset.msgAct,
                closing: opEl.dataset.msgClosing }[step];
    if (step === "act" && m.counted !== null && !m.drawer_closed) { tpl = opEl.dataset.msgAct; }
    if (tpl) { setText(msg, fill(tpl, values)); }
    var target = document.getElementById("pocket-" + m.pocket);
    if (target) { target.classList.add("target"); }
    if (m.counted !== null) {
      document.getElementById("count-form").classList.add("hidden");
      var c = document.getElementById("counted");
      c.textContent = fill(opEl.dataset.msgCounted, values);
      c.classList.remove("hidden");
    }
    if (m.drawer_closed) { document.getElementById("close-form").classList.add("hidden"); }
  }

  function onSim(m) {
    Object.keys(m.drawers).forEach(function (d) {
      var st = m.drawers[d];
      var s = document.querySelector("[data-sim-state='" + d + "']");
      if (s) { s.textContent = stateLabel(st.state); }
      var p = document.querySelector("[data-sim-pos='" + d + "']");
      if (p) { p.textContent = fill(p.dataset.tpl, { pct: st.position }); }
      var ds = document.querySelector("[data-drawer-state='" + d + "']");
      if (ds) { ds.textContent = stateLabel(st.state); }
    });
  }

  source.onmessage = function (ev) {
    var m = JSON.parse(ev.data);
    if (m.type === "session" && m.state === "locked" && body.dataset.kind === "cabinet") {
      source.close();
      window.location.assign(m.reason === "inactivity" ? "/?logout=inactivity" : "/");
    } else if (m.type === "session" && m.state === "ended") {
      /* this page's session is over (logout, expiry, deactivation): back to its login */
      source.close();
      window.location.assign(body.dataset.kind === "pharmacy" ? "/pharmacy/login" : "/");
    } else if (m.type === "operation") {
      onOperation(m);
    } else if (m.type === "sim") {
      onSim(m);
    } else if (m.type === "alarms") {
      var badge = document.getElementById("alarm-badge");
      if (badge) {
        document.getElementById("alarm-count").textContent = m.open;
        badge.classList.toggle("hidden", !m.open);
      }
    } else if (m.type === "error") {
      flash((lang === "en" ? m.en : m.fr) + " [" + m.code + "]", "error");
    }
  };
  source.onerror = function () {
    /* Reconnecting: the controller did not answer. */
    setOffline(source.readyState === EventSource.CONNECTING);
    /* The stream ends when the session does: a cabinet page then belongs on the lock screen. */
    if (source.readyState === EventSource.CLOSED && body.dataset.kind === "cabinet") {
      window.location.assign("/");
    } else if (source.readyState === EventSource.CLOSED && body.dataset.kind === "pharmacy") {
      window.location.assign("/pharmacy/login");
    }
  };
})();
