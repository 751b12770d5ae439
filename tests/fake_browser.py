#!/usr/bin/env python3
"""The person at the browser, for BROWSER=tests/fake_browser.py: open the sign-in page, press a button.

    fake_browser.py URL

Loads the page the tool opens, fills the form it finds, submits it with the
button named by FAKE_BROWSER_DECISION (approve, the default, or deny), and
follows the redirect to the tool's loopback callback, as a browser would.
FAKE_BROWSER_USER picks the identity on the sandbox's page (usr_demo by default).
"""

import os
import sys
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

from support import direct_opener


class FormReader(HTMLParser):
    """The first form's action, method and fields (hidden inputs, the select's first option)."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.action = None
        self.method = "get"
        self.fields = {}
        self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action", "")
            self.method = attrs.get("method", "get").lower()
        elif tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select and self._select not in self.fields:
            self.fields[self._select] = attrs.get("value", "")


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: fake_browser.py URL\n")
        return 2
    opener = direct_opener()
    with opener.open(argv[1], timeout=10) as response:
        page = response.read().decode("utf-8")
    form = FormReader()
    form.feed(page)
    if form.action is None:
        sys.stderr.write("fake_browser: no form on %s\n" % argv[1])
        return 1
    fields = dict(form.fields)
    fields["decision"] = os.environ.get("FAKE_BROWSER_DECISION", "approve")
    if os.environ.get("FAKE_BROWSER_USER"):
        fields["user"] = os.environ["FAKE_BROWSER_USER"]
    data = urlencode(fields).encode()
    with opener.open(urljoin(argv[1], form.action), data=data, timeout=10) as response:
        answer = response.read().decode("utf-8", "replace")
    sys.stderr.write("(the person at the browser pressed %s; the page said: %s)\n"
                     % (fields["decision"].capitalize(), page_text(answer)))
    return 0


def page_text(page):
    """The words a person reads on a page, without its markup."""
    reader = TextReader()
    reader.feed(page)
    return " ".join(" ".join(reader.words).split()) or "(an empty page)"


class TextReader(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self)
        self.words = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("title", "style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("title", "style", "script") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.words.append(data)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
