// Live numbers for the console: every element with data-poll is refreshed from its URL every
// few seconds; each child with data-field takes the JSON field of that name.  No framework.
"use strict";
(function () {
  var EVERY = 3000;
  function show(el, value) {
    var kind = el.getAttribute("data-kind");
    if (kind === "svg") {
      el.innerHTML = value;  // made by the server, from numbers only
    } else if (kind === "pairs") {
      el.textContent = "";
      var names = Object.keys(value);
      if (!names.length) { var none = document.createElement("li"); none.textContent = "none yet"; el.appendChild(none); }
      names.forEach(function (k) { var li = document.createElement("li"); li.textContent = k + ": " + value[k]; el.appendChild(li); });
    } else if (kind === "progress") {
      el.value = value;
    } else {
      el.textContent = value;
    }
  }
  function poll(box) {
    var url = box.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        box.querySelectorAll("[data-field]").forEach(function (el) {
          var name = el.getAttribute("data-field");
          if (name in data) { show(el, data[name]); }
        });
        var total = box.querySelector("progress");
        if (total && "total" in data) { total.max = data.total; }
      })
      .catch(function () { /* keep the last figures; try again next time */ })
      .finally(function () { setTimeout(function () { poll(box); }, EVERY); });
  }
  function paint() {
    document.querySelectorAll(".swatch[data-colour]").forEach(function (el) {
      el.style.background = el.getAttribute("data-colour");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (box) { setTimeout(function () { poll(box); }, EVERY); });
    paint();
  });
})();
