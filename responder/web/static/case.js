// The case page's live timeline: new entries and the new status from server-sent events, without a
// reload. A file, not an inline script: the CSP allows scripts from /static/ only.
(function () {
  var list = document.getElementById("timeline");
  if (!window.EventSource || !list.dataset.live) return;
  var source = new EventSource(list.dataset.live + "?after=" + list.dataset.last);
  source.onmessage = function (message) {
    var e = JSON.parse(message.data);
    var item = document.createElement("li");
    var at = document.createElement("span"); at.className = "muted"; at.textContent = e.at.substring(11, 19);
    var who = document.createElement("span"); who.className = "muted"; who.textContent = e.actor;
    item.appendChild(at); item.appendChild(document.createTextNode(" " + e.type.replace(/_/g, " ") + " ")); item.appendChild(who);
    list.appendChild(item);
    if (e.status) { var badge = document.getElementById("status"); badge.textContent = e.status; badge.className = "badge " + e.status; }
  };
  // The login or the access ended (a logout, the case taken by someone else): the details go too.
  source.addEventListener("end", function (message) {
    source.close();
    document.querySelectorAll("[data-personal]").forEach(function (part) { part.remove(); });
    var ended = JSON.parse(message.data);
    var note = document.getElementById("ended");
    note.textContent = ended.reason; note.hidden = false;
    if (ended.status) { var badge = document.getElementById("status"); badge.textContent = ended.status; badge.className = "badge " + ended.status; }
  });
})();
