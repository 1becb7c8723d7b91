"""A strict reading of an HTML document with the standard library: every element closed in order, and what the
report tests look at (images, links, text per element class) collected on the way."""

from __future__ import annotations

from collections import defaultdict
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class ReportPage(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = []  # (tag, class)
        self.problems: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_class: dict[str, list[str]] = defaultdict(list)
        self.cells_by_class: dict[str, list[str]] = defaultdict(list)  # text of each <td> inside that class
        self.doctype = ""
        self.feed(text)
        self.close()
        if self.stack:
            self.problems.append(f"unclosed at the end: {[tag for tag, _ in self.stack]}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag not in VOID:
            self.stack.append((tag, attributes.get("class") or ""))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        for _, css_class in self.stack:
            for name in css_class.split():
                self.text_by_class[name].append(data)
        self.text_by_class["*"].append(data)
        if self.stack and self.stack[-1][0] == "td":
            for _, css_class in self.stack[:-1]:
                for name in css_class.split():
                    self.cells_by_class[name].append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def text(self, css_class: str = "*") -> str:
        return "".join(self.text_by_class[css_class])
