// Progressive enhancement only: every page works without this file.
// A resource picker marked data-autosubmit opens the chosen calendar without a click on "Show".
document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// A select marked data-filters="<id>" (a to-do's account) narrows the select <id> (its contact)
// to the options of the same data-account. At once, by hiding the others; then the page is asked
// again with ?account= and its list replaces this one, since a list the server already narrowed
// to the former account lacks the new one's contacts. Without this script the server narrows
// the list when the form comes back.
document.querySelectorAll("select[data-filters]").forEach((account) => {
  const target = document.getElementById(account.dataset.filters);
  if (!target) return;
  let asked = 0;
  const narrow = () => {
    for (const option of target.options) {
      if (!option.dataset.account) continue;
      const other = account.value !== "" && option.dataset.account !== account.value;
      option.hidden = other;
      option.disabled = other;
      if (other && option.selected) target.value = "";
    }
  };
  const refresh = async () => {
    const ticket = ++asked;
    const url = new URL(window.location.href);
    if (account.value) url.searchParams.set("account", account.value);
    else url.searchParams.delete("account");
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok || ticket !== asked) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(target.id);
      if (!fresh || ticket !== asked) return;
      const chosen = target.value;
      target.replaceChildren(...fresh.options);
      target.value = [...target.options].some((o) => o.value === chosen) ? chosen : "";
      narrow();
    } catch {
      // Offline or refused: the list stays narrowed to what it had.
    }
  };
  account.addEventListener("change", () => {
    narrow();
    refresh();
  });
  // A browser that restores the form (back button) may restore another account than the one
  // the list was made for.
  const mismatched = [...target.options].some(
    (option) => option.dataset.account && option.dataset.account !== account.value,
  );
  if (account.value && mismatched) {
    narrow();
    refresh();
  }
});

// A typed date (input.date-part[data-date-format], psa/scheduling/forms.py) gets a button that
// opens the browser's own date picker; the date chosen is written back in the product's order
// (data-date-format: %d, %m and %Y), not the browser's.
document.querySelectorAll("input.date-part[data-date-format]").forEach((text) => {
  const native = document.createElement("input");
  if (!("showPicker" in native)) return;
  native.type = "date";
  native.className = "date-native";
  native.tabIndex = -1;
  native.setAttribute("aria-hidden", "true");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "date-pick";
  // A calendar drawn inline: an emoji needs a font that not every system has.
  button.innerHTML =
    '<svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" fill="none" ' +
    'stroke="currentColor" stroke-width="1.5"><rect x="1.75" y="3" width="12.5" height="11" ' +
    'rx="1.5"/><path d="M1.75 6.5h12.5M5 1.5v3M11 1.5v3"/></svg>';
  button.setAttribute("aria-label", text.dataset.pickerLabel || "");
  button.title = text.dataset.pickerLabel || "";
  const pattern = text.dataset.dateFormat;
  const order = [...pattern.matchAll(/%([dmY])/g)].map((m) => m[1]);
  const read = () => {
    const digits = text.value.match(/\d+/g);
    if (/^\d{4}-\d{2}-\d{2}$/.test(text.value.trim())) return text.value.trim();
    if (!digits || digits.length !== 3) return "";
    const part = Object.fromEntries(order.map((key, i) => [key, digits[i]]));
    if (!part.Y || part.Y.length !== 4) return "";
    return `${part.Y}-${part.m.padStart(2, "0")}-${part.d.padStart(2, "0")}`;
  };
  const write = (iso) => {
    const [Y, m, d] = iso.split("-");
    text.value = pattern.replace("%Y", Y).replace("%m", m).replace("%d", d);
    text.dispatchEvent(new Event("change", { bubbles: true }));
  };
  button.addEventListener("click", () => {
    native.value = read();
    try {
      native.showPicker();
    } catch {
      text.focus(); // no picker here: the date is typed
    }
  });
  native.addEventListener("change", () => {
    if (native.value) write(native.value);
    text.focus();
  });
  text.after(button, native);
});
