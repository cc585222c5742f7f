"""No bare words in templates: every visible text is inside {% translate %}/{% blocktranslate %}.

Reads every template of the product with Django's template lexer. Text outside translate and
blocktranslate (after removing HTML tags, comments, <script>/<style>, entities, punctuation and
digits) must have no letters, and neither may the visible attributes (title=, aria-label=,
placeholder=, alt=, and the value= of buttons) or the literal fallbacks of `default`,
`default_if_none`, `yesno` and `firstof` (use `_("…")` there). Brand names standing alone and
URL-like text are allowed. See docs/i18n.md.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.template.base import DebugLexer, TokenType

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [
    ROOT / "templates",
    ROOT / "exchange_ext" / "templates",
    *sorted((ROOT / "psa").glob("*/templates")),
    *sorted(p for p in (ROOT / "exchange_ext").glob("*/templates") if "sandbox" not in p.parts),
]
TEMPLATE_SUFFIXES = {".html", ".txt"}

# Text that may stand alone untranslated: product and protocol names, which every language
# writes the same. Only when it is the whole text (of a node or an attribute); inside a
# sentence the sentence is translated.
ALLOWED = {
    "PSA",
    "Exchange",
    "MS Exchange",
    "Microsoft Exchange",
    "Exchange Online",
    "EWS",
    "Microsoft Graph",
    "MS Graph",
    "Graph",
    "Outlook",
    "Office 365",
    "Microsoft 365",
    "HTTP",
    "HTTPS",
    "URL",
    "UTC",
    "OAuth",
    "ID",
    "Autotask",
}

TRANSLATE_TAGS = {"translate", "trans"}
BLOCK_TRANSLATE = {"blocktranslate": "endblocktranslate", "blocktrans": "endblocktrans"}
VISIBLE_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")

_ATTRIBUTE = re.compile(
    r"""\s([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.DOTALL
)
_TAG = re.compile(r"<(/?)([a-zA-Z][-a-zA-Z0-9]*)([^>]*)>", re.DOTALL)
_RAW_ELEMENT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_HTML_COMMENT = re.compile(r"<!--.*?-->|<![a-zA-Z][^>]*>", re.DOTALL)
_URLISH = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://\S+|[\w.-]+@[\w.-]+\.\w+|(?:[\w-]+\.)+[a-z]{2,}(?::\d+)?(?:/\S*)?"
    r"|/\S*)$",
    re.IGNORECASE,
)
_LETTER = re.compile(r"[^\W\d_]")
# Filters and tags whose string literals are shown to people.
_SHOWN_LITERAL = re.compile(r"""\|\s*(?:default|default_if_none|yesno)\s*:\s*("[^"]*"|'[^']*')""")
_LITERAL = re.compile(r"""(_\()?("[^"]*"|'[^']*')""")
HOLE = "\x00"  # stands for a template tag or variable: splits text, has no letters


@dataclass(frozen=True)
class Finding:
    template: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.template}:{self.line}: {self.text!r}"


def has_words(text: str) -> bool:
    text = " ".join(html.unescape(text).split())
    if not text or text in ALLOWED or _URLISH.match(text):
        return False
    return bool(_LETTER.search(text))


def _blank(match: re.Match[str]) -> str:
    """A removed span, keeping its newlines so line numbers stay right."""
    return HOLE + "\n" * match.group(0).count("\n")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def skeleton(source: str) -> tuple[str, list[Finding]]:
    """The template's text outside translation tags, each tag/variable replaced by HOLE.

    Also returns the findings inside tags and variables (untranslated literal fallbacks).
    """
    tokens = DebugLexer(source).tokenize()
    parts: list[str] = []
    findings: list[Finding] = []
    closing: str | None = None  # inside blocktranslate (or comment) until this tag
    for token in tokens:
        start, end = token.position
        span = source[start:end]
        words = token.split_contents() if token.token_type == TokenType.BLOCK else []
        name = words[0] if words else ""
        if closing:
            if token.token_type == TokenType.BLOCK and name == closing:
                closing = None
            parts.append(HOLE + "\n" * span.count("\n"))
            continue
        if token.token_type == TokenType.TEXT:
            parts.append(span)
            continue
        parts.append(HOLE + "\n" * span.count("\n"))
        if token.token_type == TokenType.BLOCK and name in BLOCK_TRANSLATE:
            closing = BLOCK_TRANSLATE[name]
        elif token.token_type == TokenType.BLOCK and name == "comment":
            closing = "endcomment"
        if token.token_type in (TokenType.VAR, TokenType.BLOCK) and name not in TRANSLATE_TAGS:
            findings.extend(
                Finding("", token.lineno, literal[1:-1])
                for literal in _shown_literals(token.contents, name)
                if has_words(literal[1:-1])
            )
    return "".join(parts), findings


def _shown_literals(contents: str, name: str) -> list[str]:
    shown = [m.group(1) for m in _SHOWN_LITERAL.finditer(contents)]
    if name == "firstof":
        shown += [m.group(2) for m in _LITERAL.finditer(contents) if not m.group(1)]
    # yesno's argument is a comma-separated list of words: report it whole.
    return shown


def check_template(source: str, name: str) -> list[Finding]:
    text, tag_findings = skeleton(source)
    findings = [Finding(name, f.line, f.text) for f in tag_findings]
    text = _HTML_COMMENT.sub(_blank, text)
    text = _RAW_ELEMENT.sub(_blank, text)

    def tag(match: re.Match[str]) -> str:
        element = match.group(2).lower()
        attributes = {
            a.group(1).lower(): (a.group(2), match.start(3) + a.start(2) - 1)
            for a in _ATTRIBUTE.finditer(" " + match.group(3))
        }
        visible = [a for a in VISIBLE_ATTRIBUTES if a in attributes]
        kind = attributes.get("type", ("", 0))[0].strip("\"'").lower()
        if element == "input" and kind in {"submit", "button", "reset"} and "value" in attributes:
            visible.append("value")
        for attribute in visible:
            value, where = attributes[attribute]
            value = value.strip("\"'")
            for piece in value.split(HOLE):
                if has_words(piece):
                    findings.append(Finding(name, _line(text, where), piece.strip()))
        return _blank(match)

    text = _TAG.sub(tag, text)
    offset = 0
    for piece in text.split(HOLE):
        if has_words(piece):
            lead = len(piece) - len(piece.lstrip())
            findings.append(Finding(name, _line(text, offset + lead), " ".join(piece.split())))
        offset += len(piece) + len(HOLE)
    return sorted(findings, key=lambda f: (f.template, f.line))


def product_templates() -> list[Path]:
    found = []
    for directory in TEMPLATE_DIRS:
        if directory.is_dir():
            found += [p for p in directory.rglob("*") if p.suffix in TEMPLATE_SUFFIXES]
    return sorted(found)


# --- the checker itself -----------------------------------------------------------------------


def findings_of(source: str) -> list[tuple[int, str]]:
    return [(f.line, f.text) for f in check_template(source, "t.html")]


def test_checker_catches_a_bare_word():
    assert findings_of("{% load i18n %}\n<p>\n  Save\n</p>") == [(3, "Save")]


def test_checker_catches_untranslated_visible_attributes():
    source = (
        '{% load i18n %}<a href="/x" title="Open the account">{% translate "Open" %}</a>\n'
        '<input type="text" placeholder="Search">\n'
        '<nav aria-label="Main">{{ x }}</nav>\n'
        '<img src="/logo.png" alt="Logo">\n'
        '<input type="submit" value="Send">\n'
    )
    assert findings_of(source) == [
        (1, "Open the account"),
        (2, "Search"),
        (3, "Main"),
        (4, "Logo"),
        (5, "Send"),
    ]


def test_checker_catches_untranslated_fallbacks():
    source = '{{ a|default:"none" }} {{ b|yesno:"Yes,No" }} {% firstof c "n/a" %}'
    assert findings_of(source) == [(1, "none"), (1, "Yes,No"), (1, "n/a")]
    assert findings_of('{{ a|default:_("none") }} {{ a|default:"—" }}') == []


def test_checker_catches_words_next_to_variables():
    assert findings_of("<p>{{ count }} items</p>") == [(1, "items")]


def test_checker_accepts_translated_text():
    source = (
        "<!doctype html>{% load i18n %}\n"
        '<h1 title="{% translate "Accounts" %}">{% translate "Accounts" %}</h1>\n'
        "{% blocktranslate trimmed with name=a.name %}\n"
        "  Sync <strong>{{ name }}</strong> now\n"
        "{% plural %}Several{% endblocktranslate %}\n"
        "{% blocktrans %}Old style{% endblocktrans %} {% trans 'Old' %}\n"
        "{# a comment #}{% comment %}Not shown{% endcomment %}<!-- not shown either -->\n"
        "<script>const words = 'not text';</script><style>p::after { content: 'x' }</style>\n"
        '<p class="muted big" data-x="nothing">&middot; — 12:30 · 1/2 ({{ n }})</p>\n'
        '<a href="https://example.com/path">https://example.com/path</a> PSA\n'
        '<span aria-label="{{ label }}">Microsoft Graph</span> exchange.example.com\n'
    )
    assert findings_of(source) == []


def test_checker_reports_the_right_lines_after_multiline_tags():
    source = (
        '{% blocktranslate trimmed %}\nA\nB\n{% endblocktranslate %}\n\n<p title="Hi">\nWord</p>'
    )
    assert findings_of(source) == [(6, "Hi"), (7, "Word")]


def test_checker_finds_the_product_templates():
    templates = product_templates()
    assert any(p.name == "base.html" for p in templates), templates


# --- the product's templates ------------------------------------------------------------------


def test_templates_have_no_untranslated_text():
    findings: list[Finding] = []
    for path in product_templates():
        source = path.read_text(encoding="utf-8")
        findings += check_template(source, str(path.relative_to(ROOT)))
    assert not findings, (
        f"{len(findings)} untranslated texts in templates — wrap them in "
        "{% translate %}/{% blocktranslate %} (attributes too), then `make messages`, "
        "translate, see docs/i18n.md:\n" + "\n".join(f"  {f}" for f in findings)
    )


@pytest.mark.parametrize("text", sorted(ALLOWED))
def test_allowed_names_stand_alone_only(text):
    assert not has_words(text)
    assert has_words(f"Sync with {text}")
