"""What a page shows, read from the HTML the response rendered: its text, the messages at the
top, a table's cells and caption, a select's options. Page tests assert these, what a user sees,
rather than the context the template was given (a template that drops a value would pass a
context check) or the message storage (a page that never shows a message would pass)."""

import lxml.html


def _page(response):
    assert response.status_code == 200, response.status_code
    page = lxml.html.fromstring(response.content.decode())
    for br in page.iter("br"):  # a line break separates words as a reader sees them
        br.tail = " " + (br.tail or "")
    return page


def _text(element) -> str:
    return " ".join(element.text_content().split())


def text(response) -> str:
    """The page's text as a reader sees it, whitespace collapsed."""
    return _text(_page(response).body)


def messages(response) -> list[tuple[str, str]]:
    """The messages shown in base.html's list: (level tag, text)."""
    return [
        (li.get("class").removeprefix("message").strip(), _text(li))
        for li in _page(response).xpath('//ul[@class="messages"]/li')
    ]


def messages_after(client, response) -> list[str]:
    """The texts of the messages on the page a redirect leads to: what the user reads next."""
    assert response.status_code == 302, response.status_code
    return [words for _, words in messages(client.get(response["Location"]))]


def table_rows(response, table_class: str) -> list[list[str]]:
    """The text of each cell of each body row of the table with this class."""
    rows = _page(response).xpath(f'//table[contains(@class, "{table_class}")]/tbody/tr')
    return [[_text(cell) for cell in row.xpath("./th|./td")] for row in rows]


def column(response, table_class: str, heading: str) -> list[str]:
    """The text of each body row's cell under ``heading`` in the table with this class."""
    table = _page(response).xpath(f'//table[contains(@class, "{table_class}")]')[0]
    headings = [_text(th) for th in table.xpath("./thead/tr/th")]
    at = headings.index(heading)
    return [
        [_text(cell) for cell in row.xpath("./th|./td")][at] for row in table.xpath("./tbody/tr")
    ]


def caption(response, table_class: str) -> str:
    """The caption of the table with this class."""
    found = _page(response).xpath(f'//table[contains(@class, "{table_class}")]/caption')
    return _text(found[0])


def options(response, name: str) -> list[str]:
    """The values offered by the select named ``name``, in order."""
    return _page(response).xpath(f'//select[@name="{name}"]/option/@value')
