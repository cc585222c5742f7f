/* MS Exchange extension pages: progressive enhancement only. The server enforces every rule
   shown here (hidden "Use MS Graph" is forced off, free time is ignored with "do not import",
   the Resources tab saves exactly the posted checkboxes); without JavaScript every field shows. */
(function () {
  "use strict";

  // data-show-when="<checkbox id>": visible while checked; data-hide-when: while unchecked.
  function bindToggles() {
    var groups = document.querySelectorAll("[data-show-when], [data-hide-when]");
    groups.forEach(function (group) {
      var showId = group.getAttribute("data-show-when");
      var box = document.getElementById(showId || group.getAttribute("data-hide-when"));
      if (!box) { return; }
      var apply = function () { group.hidden = showId ? !box.checked : box.checked; };
      box.addEventListener("change", apply);
      apply();
    });
  }

  // "Do not import" disables the free-time checkbox (a disabled checkbox is not posted).
  function bindImportMode() {
    var freeTime = document.getElementById("id_import_free_time");
    var radios = document.querySelectorAll("input[name=import_mode]");
    if (!freeTime || !radios.length) { return; }
    var apply = function () {
      var none = document.querySelector("input[name=import_mode][value=none]:checked") !== null;
      freeTime.disabled = none;
      var field = freeTime.closest(".field");
      if (field) { field.classList.toggle("is-disabled", none); }
    };
    radios.forEach(function (radio) { radio.addEventListener("change", apply); });
    apply();
  }

  // The header checkbox checks or clears every row of the page; it mirrors the rows' state.
  function bindSelectAll() {
    document.querySelectorAll("[data-select-all]").forEach(function (all) {
      var name = all.getAttribute("data-select-all");
      var rows = Array.prototype.slice.call(
        all.form.querySelectorAll("input[type=checkbox][name='" + name + "']"));
      var mirror = function () {
        var checked = rows.filter(function (row) { return row.checked; }).length;
        all.checked = rows.length > 0 && checked === rows.length;
        all.indeterminate = checked > 0 && checked < rows.length;
      };
      all.hidden = false;
      all.addEventListener("change", function () {
        rows.forEach(function (row) { row.checked = all.checked; });
        mirror();
      });
      rows.forEach(function (row) { row.addEventListener("change", mirror); });
      mirror();
    });
  }

  function init() { bindToggles(); bindImportMode(); bindSelectAll(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
