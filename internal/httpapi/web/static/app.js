// verihook dashboard: copy buttons, confirmations and "back" links. The
// pages work without it; nothing here is needed to read or act.
document.addEventListener("click", function (e) {
  var copy = e.target.closest("[data-copy]");
  if (copy && navigator.clipboard) {
    navigator.clipboard.writeText(copy.getAttribute("data-copy")).then(function () {
      var was = copy.textContent;
      copy.textContent = "Copied";
      setTimeout(function () { copy.textContent = was; }, 1500);
    });
  }
  var back = e.target.closest("[data-back]");
  if (back && history.length > 1) {
    e.preventDefault();
    history.back();
  }
});
document.addEventListener("submit", function (e) {
  var msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    e.preventDefault();
  }
});
