/* interpretdl-noise report: client-side sort / filter / search and the keep / drop / relabel review.
 * No server and no network: the view state lives in the URL fragment (reload and back keep it),
 * the decisions in localStorage (reload keeps them) and leave the page as a downloaded CSV
 * "sample_id,action,new_label" that `interpretdl-noise clean --decisions` reads. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("report-config").textContent);
  var grid = document.getElementById("cards");
  var cards = Array.prototype.slice.call(grid.querySelectorAll(".card"));
  var byId = {};
  cards.forEach(function (card) { byId[card.getAttribute("data-sample-id")] = card; });
  var controls = {
    sort: document.getElementById("sort-by"),
    given: document.getElementById("filter-given"),
    suggested: document.getElementById("filter-suggested"),
    flag: document.getElementById("filter-flag"),
    search: document.getElementById("search")
  };
  var storeKey = "interpretdl-noise-report:" + config.id;
  var decisions = loadDecisions();

  // ------------------------------------------------------------------ persistence
  function loadDecisions() {
    try {
      var raw = window.localStorage.getItem(storeKey);
      var parsed = raw ? JSON.parse(raw) : {};
      var out = {};
      Object.keys(parsed).forEach(function (id) { if (byId[id]) { out[id] = parsed[id]; } });
      return out;
    } catch (err) {
      return {};  // storage unavailable (sandboxed frame, privacy mode): decisions last for this visit
    }
  }
  function saveDecisions() {
    try { window.localStorage.setItem(storeKey, JSON.stringify(decisions)); } catch (err) { /* see above */ }
  }
  function readHash() {
    var params = {};
    var text = window.location.hash.replace(/^#/, "");
    text.split("&").forEach(function (part) {
      if (!part) { return; }
      var eq = part.indexOf("=");
      var key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      params[key] = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    });
    return params;
  }
  function writeHash() {
    var parts = [];
    [["sort", controls.sort.value === config.method ? "" : controls.sort.value],
     ["given", controls.given.value], ["suggested", controls.suggested.value],
     ["show", controls.flag.value], ["q", controls.search.value.trim()]].forEach(function (kv) {
      if (kv[1]) { parts.push(encodeURIComponent(kv[0]) + "=" + encodeURIComponent(kv[1])); }
    });
    var url = window.location.pathname + window.location.search + (parts.length ? "#" + parts.join("&") : "");
    try { window.history.replaceState(null, "", url); } catch (err) { /* about:srcdoc in a notebook */ }
  }
  function setIfOption(select, value) {
    if (value === undefined) { return; }
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) { select.value = value; return; }
    }
  }

  // ------------------------------------------------------------------ view: sort, filter, search
  var currentSort = config.method;  // the page is rendered in this order
  function sortCards(name) {
    if (name === currentSort) { return; }
    var attr = "data-score-" + name;
    var sorted = cards.slice().sort(function (a, b) {
      var d = parseFloat(b.getAttribute(attr)) - parseFloat(a.getAttribute(attr));
      return d !== 0 ? d : parseInt(a.getAttribute("data-rank"), 10) - parseInt(b.getAttribute("data-rank"), 10);
    });
    var frag = document.createDocumentFragment();
    sorted.forEach(function (card) { frag.appendChild(card); });
    grid.appendChild(frag);
    currentSort = name;
  }
  function searchTokens() {
    return controls.search.value.split(/[\s,;]+/).filter(function (t) { return t.length > 0; });
  }
  function matches(card, tokens) {
    if (controls.given.value !== "" && card.getAttribute("data-given") !== controls.given.value) { return false; }
    if (controls.suggested.value !== "" && card.getAttribute("data-suggested") !== controls.suggested.value) {
      return false;
    }
    var id = card.getAttribute("data-sample-id");
    switch (controls.flag.value) {
      case "flagged": if (card.getAttribute("data-flagged") !== "1") { return false; } break;
      case "unflagged": if (card.getAttribute("data-flagged") === "1") { return false; } break;
      case "known": if (card.getAttribute("data-known-flip") !== "1") { return false; } break;
      case "changed":
        if (card.getAttribute("data-given") === card.getAttribute("data-suggested")) { return false; } break;
      case "reviewed": if (!decisions[id]) { return false; } break;
      case "unreviewed": if (decisions[id]) { return false; } break;
      default: break;
    }
    if (tokens.length) {  // a card shows when its sample id contains any of the typed ids
      var hit = false;
      for (var i = 0; i < tokens.length && !hit; i++) { hit = id.indexOf(tokens[i]) >= 0; }
      if (!hit) { return false; }
    }
    return true;
  }
  function applyView() {
    sortCards(controls.sort.value);
    var tokens = searchTokens();
    var shown = 0;
    cards.forEach(function (card) {
      var ok = matches(card, tokens);
      card.hidden = !ok;
      if (ok) { shown++; }
    });
    document.getElementById("visible-count").textContent = shown + " of " + cards.length + " cards shown";
    document.getElementById("empty").hidden = shown > 0;
    writeHash();
  }

  // ------------------------------------------------------------------ review
  function picker(card) {
    var select = card.querySelector("select.relabel-to");
    if (!select.options.length) {  // built on first use: C options per card would bloat the page
      config.classNames.forEach(function (name, c) {
        var option = document.createElement("option");
        option.value = String(c);
        option.textContent = name === String(c) ? name : name + " (" + c + ")";
        select.appendChild(option);
      });
      var given = card.getAttribute("data-given");
      var suggested = card.getAttribute("data-suggested");
      select.value = suggested !== given ? suggested : (given === "0" && config.classNames.length > 1 ? "1" : "0");
    }
    return select;
  }
  function showDecision(card) {
    var id = card.getAttribute("data-sample-id");
    var d = decisions[id];
    card.classList.remove("decided-keep", "decided-drop", "decided-relabel");
    if (d) { card.classList.add("decided-" + d.action); }
    Array.prototype.forEach.call(card.querySelectorAll("[data-action]"), function (button) {
      button.setAttribute("aria-pressed", d && d.action === button.getAttribute("data-action") ? "true" : "false");
    });
    var select = card.querySelector("select.relabel-to");
    if (d && d.action === "relabel") {
      picker(card).value = d.label;
      select.hidden = false;
    } else {
      select.hidden = true;
    }
  }
  function countDecisions() {
    var n = Object.keys(decisions).length;
    document.getElementById("decision-count").textContent = n + (n === 1 ? " decision" : " decisions");
  }
  function decide(card, action) {
    var id = card.getAttribute("data-sample-id");
    var previous = decisions[id];
    if (previous && previous.action === action) {
      delete decisions[id];  // a second click on the same button undoes it
    } else if (action === "relabel") {
      decisions[id] = {action: "relabel", label: picker(card).value};
    } else {
      decisions[id] = {action: action};
    }
    saveDecisions();
    showDecision(card);
    countDecisions();
    if (controls.flag.value === "reviewed" || controls.flag.value === "unreviewed") { applyView(); }
  }
  grid.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (button) { decide(button.closest(".card"), button.getAttribute("data-action")); }
  });
  grid.addEventListener("change", function (event) {
    if (!event.target.matches("select.relabel-to")) { return; }
    var card = event.target.closest(".card");
    decisions[card.getAttribute("data-sample-id")] = {action: "relabel", label: event.target.value};
    saveDecisions();
    showDecision(card);
  });

  // ------------------------------------------------------------------ export
  function decisionsCsv() {
    var lines = ["sample_id,action,new_label"];
    cards.slice().sort(function (a, b) {
      return parseInt(a.getAttribute("data-rank"), 10) - parseInt(b.getAttribute("data-rank"), 10);
    }).forEach(function (card) {
      var id = card.getAttribute("data-sample-id");
      var d = decisions[id];
      if (d) { lines.push(id + "," + d.action + "," + (d.action === "relabel" ? d.label : "")); }
    });
    return lines.join("\n") + "\n";
  }
  document.getElementById("export-decisions").addEventListener("click", function () {
    var blob = new Blob([decisionsCsv()], {type: "text/csv"});
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "decisions.csv";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    window.setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
  });
  document.getElementById("clear-decisions").addEventListener("click", function () {
    if (Object.keys(decisions).length && !window.confirm("Clear all review decisions of this report?")) { return; }
    decisions = {};
    saveDecisions();
    cards.forEach(showDecision);
    countDecisions();
    applyView();
  });

  // ------------------------------------------------------------------ start
  var state = readHash();
  setIfOption(controls.sort, state.sort);
  setIfOption(controls.given, state.given);
  setIfOption(controls.suggested, state.suggested);
  setIfOption(controls.flag, state.show);
  if (state.q !== undefined) { controls.search.value = state.q; }
  ["sort", "given", "suggested", "flag"].forEach(function (k) { controls[k].addEventListener("change", applyView); });
  controls.search.addEventListener("input", applyView);
  window.addEventListener("hashchange", function () {
    var s = readHash();
    setIfOption(controls.sort, s.sort || config.method);
    setIfOption(controls.given, s.given || "");
    setIfOption(controls.suggested, s.suggested || "");
    setIfOption(controls.flag, s.show || "");
    controls.search.value = s.q || "";
    applyView();
  });
  cards.forEach(showDecision);
  countDecisions();
  applyView();
  window.interpretdlNoiseReport = {decisionsCsv: decisionsCsv, applyView: applyView};  // for users' scripts
})();
