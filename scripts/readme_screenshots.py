"""Screenshots for the README, taken in Chromium from a running shop.

    .venv/bin/python scripts/readme_screenshots.py --url http://127.0.0.1:8000 [--query hoodie] [--out docs/img]

Run it against a shop whose catalog may be shown publicly — the CC0 demo catalog
(``manage.py load_demo --source ../shared/data/cc0``), never the H&M set. Writes
``storefront-search.png`` (a text search with its facets) and ``product-alternatives.png`` (the first
out-of-stock product found by the search, with "Try these instead")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--query", default="hoodie")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{args.url}/search?q={args.query}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(args.out / "storefront-search.png"))
        sold_out = page.locator(".card.is-oos a.card-link").first
        if sold_out.count() == 0:
            print(f"no out-of-stock product among the results for {args.query!r}; try another --query", file=sys.stderr)
            return 1
        sold_out.click()
        page.wait_for_load_state("networkidle")
        alternatives = page.get_by_text("Try these instead")
        if alternatives.count() == 0:
            print("the product page shows no alternatives", file=sys.stderr)
            return 1
        section = alternatives.first.locator("xpath=ancestor::section[1]")
        box = section.bounding_box() if section.count() else None
        bottom = (box["y"] + box["height"] + 16) if box else 1400
        page.screenshot(
            path=str(args.out / "product-alternatives.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": bottom},
        )
        browser.close()
    print(f"wrote {args.out / 'storefront-search.png'} and {args.out / 'product-alternatives.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
