"""The translation catalogues are complete, clean and up to date with the sources (docs/i18n.md).

Every user-visible string is translated into German, Japanese and Simplified Chinese in the same
commit that adds it. These checks use Debian's gettext (`make gettext-deps`): `msgattrib` lists
untranslated, fuzzy and obsolete entries, `msgfmt --check` the placeholder mismatches, and
Django's `makemessages` (which calls xgettext) re-extracts the sources into a temporary
directory so a string that `make messages` would add is caught.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "locale"
LOCALES = ("de", "ja", "zh_Hans")
SHOWN = 20
HINT = "run `make messages`, translate, see docs/i18n.md"

pytestmark = pytest.mark.skipif(
    shutil.which("msgattrib") is None or shutil.which("msgfmt") is None,
    reason="Debian's gettext is not installed: run `make gettext-deps`",
)


# --- a small reader for .po text (what msgattrib prints) --------------------------------------

Key = tuple[str | None, str, str | None]  # (msgctxt, msgid, msgid_plural)

_FIELD = re.compile(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+"(.*)"\s*$')
_MORE = re.compile(r'^"(.*)"\s*$')


def _unquote(text: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), text)


def po_entries(text: str) -> Iterator[dict[str, str]]:
    """Each entry of a .po text as {field: value}; obsolete (#~) entries are read as entries."""
    entry: dict[str, str] = {}
    field = None
    for raw in [*text.splitlines(), ""]:
        line = raw[3:] if raw.startswith("#~ ") else raw
        if not line.strip():
            if "msgid" in entry:
                yield entry
            entry, field = {}, None
            continue
        if line.startswith("#"):
            if line.startswith("#,"):
                entry["flags"] = entry.get("flags", "") + line[2:]
            continue
        match = _FIELD.match(line)
        if match:
            if match.group(1) in ("msgctxt", "msgid") and "msgstr" in "".join(entry):
                # A new entry without a blank line between (not written by gettext, but legal).
                if "msgid" in entry:
                    yield entry
                entry = {}
            field = match.group(1)
            entry[field] = _unquote(match.group(2))
            continue
        match = _MORE.match(line)
        if match and field:
            entry[field] += _unquote(match.group(1))


def po_keys(text: str) -> set[Key]:
    """The message keys of a .po text, without the header entry."""
    return {
        (e.get("msgctxt"), e["msgid"], e.get("msgid_plural"))
        for e in po_entries(text)
        if e["msgid"] or e.get("msgctxt")
    }


def describe(keys: set[Key]) -> str:
    def label(key: Key) -> str:
        ctxt, msgid, plural = key
        text = repr(msgid)
        if plural:
            text += f" / plural {plural!r}"
        if ctxt:
            text = f"[{ctxt}] {text}"
        return text

    shown = sorted(keys, key=lambda k: (k[1], k[0] or "", k[2] or ""))[:SHOWN]
    more = f"\n  … and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return "\n".join(f"  {label(k)}" for k in shown) + more


def catalogue(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "django.po"


def msgattrib(locale: str, *options: str) -> set[Key]:
    result = subprocess.run(
        ["msgattrib", "--no-wrap", *options, str(catalogue(locale))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return po_keys(result.stdout)


# --- 1. each catalogue is complete and clean --------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_no_untranslated_entry(locale):
    missing = msgattrib(locale, "--untranslated", "--no-obsolete")
    assert not missing, (
        f"{catalogue(locale).relative_to(ROOT)}: {len(missing)} untranslated entries "
        f"({HINT}):\n{describe(missing)}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_no_fuzzy_entry(locale):
    fuzzy = msgattrib(locale, "--only-fuzzy", "--no-obsolete")
    assert not fuzzy, (
        f"{catalogue(locale).relative_to(ROOT)}: {len(fuzzy)} fuzzy entries — check each "
        f"translation and remove the `#, fuzzy` flag ({HINT}):\n{describe(fuzzy)}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_no_obsolete_entry(locale):
    obsolete = msgattrib(locale, "--only-obsolete")
    assert not obsolete, (
        f"{catalogue(locale).relative_to(ROOT)}: {len(obsolete)} obsolete (#~) entries — "
        f"`make messages` drops them ({HINT}):\n{describe(obsolete)}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_compiles_with_matching_placeholders(locale):
    result = subprocess.run(
        ["msgfmt", "--check", "-o", os.devnull, str(catalogue(locale))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The template header's cosmetic fields (Project-Id-Version, Last-Translator, …) may keep
    # their defaults; the fields that matter are checked by test_catalogue_header.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "still has the initial default value" not in line
    ]
    assert result.returncode == 0 and not problems, (
        f"msgfmt --check {catalogue(locale).relative_to(ROOT)} failed — placeholders or "
        f"format differ from the msgid ({HINT}):\n" + "\n".join(problems)[:4000]
    )


# Django's own catalogues' plural rules, which the catalogues merge with at runtime.
PLURAL_FORMS = {
    "de": "nplurals=2; plural=(n != 1);",
    "ja": "nplurals=1; plural=0;",
    "zh_Hans": "nplurals=1; plural=0;",
}


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_header(locale):
    header = next(
        (e for e in po_entries(catalogue(locale).read_text(encoding="utf-8")) if not e["msgid"]),
        None,
    )
    assert header is not None, f"{catalogue(locale).relative_to(ROOT)}: no header entry"
    fields = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (
            line.partition(":") for line in header.get("msgstr", "").splitlines() if ":" in line
        )
    )
    wanted = {
        "language": locale,
        "plural-forms": PLURAL_FORMS[locale],
        "content-type": "text/plain; charset=UTF-8",
    }
    wrong = {name: fields.get(name) for name, value in wanted.items() if fields.get(name) != value}
    assert not wrong, (
        f"{catalogue(locale).relative_to(ROOT)}: header fields {wrong} should be "
        + ", ".join(f'"{name.title()}: {value}\\n"' for name, value in wanted.items())
        + f" ({HINT})"
    )


# --- 2. the catalogues are up to date with the sources ----------------------------------------


def makefile_ignores() -> list[str]:
    """The `--ignore=` patterns of the Makefile's `messages` target (one source of truth)."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^MESSAGES_IGNORE\s*:=((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert match, "Makefile: MESSAGES_IGNORE not found"
    return re.findall(r"--ignore=(\S+)", match.group(1))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[Key]:
    """The keys `make messages` would extract today, from a temporary mirror of the tree.

    The mirror links every top-level entry of the project but `locale/`, whose place takes an
    empty directory, so makemessages writes nowhere in the working tree.
    """
    ignores = makefile_ignores()
    mirror = tmp_path_factory.mktemp("messages")
    for child in ROOT.iterdir():
        if child.name in {"locale", *ignores} or child.name.startswith("."):
            continue
        (mirror / child.name).symlink_to(child)
    (mirror / "locale").mkdir()
    cwd = Path.cwd()
    os.chdir(mirror)
    try:
        with override_settings(LOCALE_PATHS=[mirror / "locale"]):
            call_command(
                "makemessages",
                locale=[LOCALES[0]],
                no_location=True,
                no_obsolete=True,
                symlinks=True,
                keep_pot=True,
                ignore_patterns=ignores,
                verbosity=0,
            )
    finally:
        os.chdir(cwd)
    return po_keys((mirror / "locale" / "django.pot").read_text(encoding="utf-8"))


def test_extraction_finds_the_sources(extracted):
    # Guard against a mirror that silently extracts nothing (then every catalogue looks fine).
    assert len(extracted) > 50, f"makemessages extracted only {len(extracted)} strings"


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_every_string_of_the_sources(locale, extracted):
    committed = po_keys(catalogue(locale).read_text(encoding="utf-8"))
    missing = extracted - committed
    assert not missing, (
        f"{catalogue(locale).relative_to(ROOT)}: {len(missing)} strings of the sources not "
        f"extracted: run `make messages`, translate, see docs/i18n.md:\n{describe(missing)}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_no_string_gone_from_the_sources(locale, extracted):
    committed = msgattrib(locale, "--no-obsolete")
    stale = committed - extracted
    assert not stale, (
        f"{catalogue(locale).relative_to(ROOT)}: {len(stale)} entries no longer in the sources "
        f"({HINT}):\n{describe(stale)}"
    )
