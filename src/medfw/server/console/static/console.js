// medfw fleet console: progressive enhancement only (every page works without this script).
// 1. <time datetime> elements show the viewer's local time; the UTC time stays in the title (hover).
// 2. Elements with data-refresh="URL" re-fetch their fragment every data-interval seconds (same origin only)
//    and replace themselves with it, so counts move without a full reload.
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        el.textContent = d.toLocaleString();
      }
    });
  }

  function refresh(el) {
    var url = el.getAttribute("data-refresh");
    var seconds = parseInt(el.getAttribute("data-interval") || "5", 10);
    if (!url || url.charAt(0) !== "/" || url.charAt(1) === "/" || !(seconds > 0)) {
      return;
    }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", redirect: "error", headers: { Accept: "text/html" } })
        .then(function (r) {
          if (!r.ok) {
            throw new Error("refresh stopped: " + r.status);
          }
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.body.firstElementChild;
          if (!fresh || fresh.id !== el.id) {
            return;
          }
          var node = document.importNode(fresh, true);
          el.replaceWith(node);
          localTimes(node);
          refresh(node);
        })
        .catch(function () {
          el.setAttribute("data-refresh-stopped", "true");
        });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  });
})();
