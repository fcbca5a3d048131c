"""Web pages served instead of files: recognise them, and find the real link behind Google Drive's
"can't scan this file for viruses" confirmation page (detected by content, so tests can serve it locally)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin


def looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a body are an HTML document (after a BOM or whitespace)."""
    start = head[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


class _ConfirmParser(HTMLParser):
    """Collects a Google Drive download form (action + inputs) and any ``confirm=`` link."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: list[tuple[str, str]] = []
        self.link: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form" and attr.get("id") == "download-form" and attr.get("action"):
            self.action, self._in_form = attr["action"], True
        elif tag == "input" and self._in_form and attr.get("type") == "hidden" and attr.get("name"):
            self.inputs.append((attr["name"], attr.get("value", "")))
        elif tag == "a" and "confirm=" in attr.get("href", "") and self.link is None:
            self.link = attr["href"]  # HTMLParser has already turned &amp; into &

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def confirm_url(page: str, page_url: str) -> str | None:
    """The real download URL behind a Google Drive "can't scan for viruses" page, or None.

    Args:
        page: the HTML text.
        page_url: the URL the page came from, to resolve a relative form action or link.

    Returns:
        ``action?name=value&...`` of the ``download-form``'s hidden inputs, or the ``href`` of a link carrying
        ``confirm=``, resolved against ``page_url``; None when the page has neither.
    """
    parser = _ConfirmParser()
    try:
        parser.feed(page)
        parser.close()
    except (AssertionError, ValueError):  # html.parser asserts on some malformed markup: not a confirmation page
        return None
    if parser.action is not None:
        separator = "&" if "?" in parser.action else "?"
        return urljoin(page_url, parser.action + separator + urlencode(parser.inputs))
    return None if parser.link is None else urljoin(page_url, parser.link)
