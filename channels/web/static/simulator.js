// The sandbox's phone simulator: the phone's screen is redrawn from screen.json every second,
// and its forms (send, tap a button, share the phone number) are sent in the background, each
// with the page's CSRF token.  The page works without this script too: every form then
// answers with the page again.  Text from the server is only ever set as text, never as HTML.
"use strict";
(function () {
  var EVERY = 1000;
  var WHO = { phone: "You", bot: "Bot", note: "Note" };

  function make(tag, attrs, text) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { el.setAttribute(name, attrs[name]); });
    if (text !== undefined) { el.textContent = text; }
    return el;
  }
  function hidden(name, value) { return make("input", { type: "hidden", name: name, value: String(value) }); }

  function context(phone) {
    var compose = phone.querySelector("form.compose");
    return {
      csrf: compose.querySelector("input[name=csrf]").value,
      address: compose.querySelector("input[name=address]").value,
      sendUrl: compose.getAttribute("action"),
      base: compose.getAttribute("action").replace(/\/send$/, "")
    };
  }

  function bubble(m, ctx) {
    var li = make("li", { "class": "message from-" + m.from });
    var text = make("p", { "class": "text" });
    text.appendChild(make("span", { "class": "visually-hidden" }, (WHO[m.from] || m.from) + ": "));
    text.appendChild(document.createTextNode(m.text));
    li.appendChild(text);
    var meta = m.time || "";
    if (m.how) { meta += " · " + m.how; }
    if (m.segments !== undefined) { meta += " · " + m.segments + " segment" + (m.segments === 1 ? "" : "s") + ", " + m.encoding; }
    if (m.edited) { meta += " · edited"; }
    li.appendChild(make("p", { "class": "meta" }, meta));
    (m.buttons || []).forEach(function (row) {
      var form = make("form", { method: "post", action: ctx.base + "/tap", "class": "sim buttons" });
      form.appendChild(hidden("csrf", ctx.csrf));
      form.appendChild(hidden("address", ctx.address));
      form.appendChild(hidden("message", m.id));
      row.forEach(function (b) {
        form.appendChild(make("button", { type: "submit", name: "data", value: b.data }, b.label));
      });
      li.appendChild(form);
    });
    return li;
  }

  function keyboard(box, rows, ctx, phoneNumber) {
    box.textContent = "";
    rows.forEach(function (row) {
      row.forEach(function (b) {
        var form;
        if (b.contact) {
          form = make("form", { method: "post", action: ctx.base + "/share-phone", "class": "sim share" });
          form.appendChild(hidden("csrf", ctx.csrf));
          form.appendChild(hidden("address", ctx.address));
          form.appendChild(make("label", { "for": "share-phone" }, "The account's phone number"));
          form.appendChild(make("input", { id: "share-phone", name: "phone", type: "tel", required: "", value: phoneNumber }));
        } else {
          form = make("form", { method: "post", action: ctx.sendUrl, "class": "sim key" });
          form.appendChild(hidden("csrf", ctx.csrf));
          form.appendChild(hidden("channel", "telegram"));
          form.appendChild(hidden("address", ctx.address));
          form.appendChild(hidden("text", b.label));
        }
        form.appendChild(make("button", { type: "submit" }, b.label));
        box.appendChild(form);
      });
    });
  }

  function draw(phone, screen) {
    var drawn = JSON.stringify(screen);
    if (phone.getAttribute("data-drawn") === drawn) { return; }
    var before = phone.querySelectorAll("[data-thread] > li.from-bot").length;
    phone.setAttribute("data-drawn", drawn);
    var ctx = context(phone);
    var thread = phone.querySelector("[data-thread]");
    thread.textContent = "";
    screen.messages.forEach(function (m) { thread.appendChild(bubble(m, ctx)); });
    phone.querySelector("[data-empty]").hidden = screen.messages.length > 0;
    var box = phone.querySelector("[data-keyboard]");
    if (box) {
      var typed = box.querySelector("input[name=phone]");
      keyboard(box, screen.keyboard || [], ctx, typed ? typed.value : (phone.getAttribute("data-phone") || ""));
    }
    var fromBot = screen.messages.filter(function (m) { return m.from === "bot"; });
    if (fromBot.length > before) {
      phone.querySelector("[data-news]").textContent = "New message: " + fromBot[fromBot.length - 1].text;
    }
    thread.scrollTop = thread.scrollHeight;
  }

  function problem(phone, text) {
    var box = phone.querySelector("[data-problem]");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function poll(phone) {
    fetch(phone.getAttribute("data-screen"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (screen) { draw(phone, screen); })
      .catch(function () { /* keep what is shown; try again next time */ })
      .finally(function () { setTimeout(function () { poll(phone); }, EVERY); });
  }

  function submit(event) {
    var form = event.target;
    var phone = form.closest(".phone");
    if (!phone || !form.classList.contains("sim")) { return; }
    event.preventDefault();
    var body = new URLSearchParams(new FormData(form));
    if (event.submitter && event.submitter.name) { body.append(event.submitter.name, event.submitter.value); }
    var compose = form.classList.contains("compose");
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.getAttribute("action"), {
      method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (r) {
        return r.json().then(function (data) { return { ok: r.ok, data: data }; }, function () {
          return { ok: false, data: { problem: "The server answered " + r.status + "." } };
        });
      })
      .then(function (answer) {
        if (!answer.ok) { problem(phone, answer.data.problem); return; }
        problem(phone, "");
        if (compose) { form.querySelector("textarea").value = ""; }
        draw(phone, answer.data);
      })
      .catch(function () { problem(phone, "The server could not be reached."); })
      .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  }

  function enterSends(event) {
    if (event.key === "Enter" && !event.shiftKey && event.target.matches("form.compose textarea")) {
      event.preventDefault();
      event.target.form.requestSubmit();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var phone = document.querySelector(".phone[data-screen]");
    if (!phone) { return; }
    document.addEventListener("submit", submit);
    document.addEventListener("keydown", enterSends);
    var thread = phone.querySelector("[data-thread]");
    thread.scrollTop = thread.scrollHeight;
    setTimeout(function () { poll(phone); }, EVERY);
  });
})();
