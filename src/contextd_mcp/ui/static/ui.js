// The page's only script (CSP: served by the daemon, no inline code). Asks before destructive
// actions; everything else is plain HTML forms and links.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  // A login link carries the token in its #fragment, which no server and no log ever sees.
  var field = document.getElementById("token");
  var match = /^#token=([A-Za-z0-9._~-]+)$/.exec(window.location.hash);
  if (field && match) {
    field.value = match[1];
    history.replaceState(null, "", window.location.pathname);
    field.form.submit();
  }
});
