"""Default wording of the end-user messages, and rendering of a template to text and HTML.

Templates are Markdown with ``{{ variable }}`` placeholders. Rendering escapes the whole text
before it reads the few Markdown forms it supports (paragraphs, headings, lists, **bold**,
links), so neither a template nor a display name like ``<script>`` can put HTML in a message.
"""

import re
from html import escape

VARIABLES = {
    "name": "the user's display name (or the old address)",
    "old_address": "the current (source) address",
    "new_address": "the new (target) address",
    "cutover_date": "the planned cutover date, in the project's time zone",
    "progress_link": "the user's own signed progress link",
    "contact": "whom to ask (the project's contact)",
    "steps": "what to do on cutover day (the project's steps)",
}

DEFAULT_STEPS = (
    "1. Close Outlook and your phone's mail app in the evening before the cutover.\n"
    "2. The next morning, sign in with {{ new_address }}.\n"
    "3. Check that your recent mail is there; tell {{ contact }} if anything is missing."
)

DEFAULTS = {
    "planned": (
        "Your mailbox moves on {{ cutover_date }}",
        "Hello {{ name }},\n\n"
        "your mailbox **{{ old_address }}** moves to **{{ new_address }}** on "
        "{{ cutover_date }}. Your mail, calendar and contacts are copied beforehand; you do not "
        "need to do anything yet.\n\n"
        "Follow the copy here: {{ progress_link }}\n\n"
        "Questions? Ask {{ contact }}.",
    ),
    "copied": (
        "Your mail is copied: what to do on {{ cutover_date }}",
        "Hello {{ name }},\n\n"
        "your mail is now copied to **{{ new_address }}**. On cutover day:\n\n"
        "{{ steps }}\n\n"
        "Your progress: {{ progress_link }}\n\n"
        "Questions? Ask {{ contact }}.",
    ),
    "done": (
        "Your move to {{ new_address }} is done",
        "Hello {{ name }},\n\n"
        "your mailbox now lives at **{{ new_address }}**. Sign in there from now on; mail to "
        "{{ old_address }} reaches you too.\n\n"
        "What was copied: {{ progress_link }}\n\n"
        "Questions? Ask {{ contact }}.",
    ),
}

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def fill(template: str, values: dict) -> str:
    """``template`` with its known placeholders filled in; unknown ones stay as written, so
    a typo shows in the preview instead of vanishing."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def unknown_variables(template: str) -> list[str]:
    return sorted({m for m in _PLACEHOLDER.findall(template) if m not in VARIABLES})


_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)|(https?://[^\s<]+)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")


def _inline(escaped: str) -> str:
    def link(match):
        text, url, bare = match.groups()
        return f'<a href="{url or bare}">{text or bare}</a>'

    return _BOLD.sub(r"<strong>\1</strong>", _LINK.sub(link, escaped))


def _block(lines: list[str]) -> str:
    for pattern, tag in ((_BULLET, "ul"), (_NUMBERED, "ol")):
        items = [pattern.match(line) for line in lines]
        if all(items):
            body = "".join(f"<li>{_inline(item.group(1))}</li>" for item in items)
            return f"<{tag}>{body}</{tag}>"
    heading = _HEADING.match(lines[0])
    if len(lines) == 1 and heading:
        level = len(heading.group(1))
        return f"<h{level}>{_inline(heading.group(2))}</h{level}>"
    return f"<p>{'<br>'.join(_inline(line) for line in lines)}</p>"


def to_html(markdown: str) -> str:
    """A small, safe Markdown subset to HTML: everything is escaped first."""
    blocks = re.split(r"\n\s*\n", escape(markdown.strip(), quote=True))
    return "\n".join(_block(block.splitlines()) for block in blocks if block.strip())


def render(subject: str, body: str, values: dict) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a message; the steps are Markdown themselves."""
    values = {**values, "steps": fill(values.get("steps", ""), values)}
    text = fill(body, values)
    subject = " ".join(fill(subject, values).split())  # no header injection by newline
    return subject, text, to_html(text)
