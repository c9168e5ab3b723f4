"""The one-tag alternatives widget on a page served from another origin (a separate HTTP server on
another port): the cards render inside a Shadow DOM, isolated from the host page's styles, and link
to the shop."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A fashion blog</title>
<style>
  body {{ font-family: Georgia, serif; background: #fffbe8; padding: 24px; }}
  li, a, img {{ color: red !important; border: 4px solid lime !important; font-size: 40px !important; }}
</style></head>
<body>
  <h1>My outfit of the day</h1>
  <p>The red tee is sold out everywhere — here is what the shop suggests:</p>
  <script src="{shop}/widget/alternatives.js" data-sku="TEE-RED" data-limit="4" async></script>
  <p id="after">The end of the post.</p>
</body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain static HTTP server on a free port (another origin than the live server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_widget_renders_cards_in_a_shadow_root_on_another_origin(
    live_server, page, shop_catalog, other_origin, screenshot
):
    origin, folder = other_origin
    shop = live_server.url
    assert origin != shop
    (folder / "post.html").write_text(HOST_PAGE.format(shop=shop), encoding="utf-8")
    page.goto(origin + "/post.html")
    host = page.locator(".fashion-shop-alternatives")
    host.locator("li.card").first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelector('.fashion-shop-alternatives').shadowRoot.querySelectorAll('img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    state = page.evaluate(
        """() => {
          const host = document.querySelector('.fashion-shop-alternatives');
          const root = host.shadowRoot;
          const links = [...root.querySelectorAll('li.card a')];
          const cs = getComputedStyle(root.querySelector('li.card a'));
          return {
            inShadow: links.length,
            inLight: document.querySelectorAll('li.card').length,
            hrefs: links.map(a => a.href),
            titles: links.map(a => a.querySelector('.t').textContent),
            reasons: links.map(a => (a.querySelector('.r') || {}).textContent || ''),
            images: [...root.querySelectorAll('img')].map(i => i.naturalWidth),
            colour: cs.color, border: cs.borderTopWidth,
            afterTag: host.previousElementSibling && host.previousElementSibling.tagName,
            nextIsPara: host.nextElementSibling && host.nextElementSibling.id,
          };
        }"""
    )
    assert 1 <= state["inShadow"] <= 4 and state["inLight"] == 0
    assert all(h.startswith(shop + "/p/") for h in state["hrefs"])
    assert {"Navy cotton t-shirt", "Black cotton t-shirt"} <= set(state["titles"])
    assert "Same design in blue" in state["reasons"]
    assert all(w > 0 for w in state["images"]) and state["images"]
    assert state["colour"] != "rgb(255, 0, 0)" and state["border"] == "0px"  # host styles do not leak in
    assert state["afterTag"] == "SCRIPT" and state["nextIsPara"] == "after"  # right where the tag is
    assert page.locator("h1").evaluate("h => getComputedStyle(h).fontFamily").startswith("Georgia")
    screenshot(page, "widget-on-another-origin")
    host.locator("li.card a").first.click()
    page.wait_for_url(re.compile(r"/p/TEE-(NAVY|BLACK)/$"))
