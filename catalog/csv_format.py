"""The one canonical catalog CSV format, parsed and validated without touching the database.

Columns (header row required; order free)::

    sku,title,description,category,colour,pattern,price,currency,stock,group,images

* ``sku`` (required) – letters, digits, ``.``, ``_``, ``-``; at most 64 characters; once per file.
* ``title`` (required), ``description``.
* ``category`` – a path from the root, levels separated by ``>``: ``Women > Tops > T-shirts``.
* ``colour``, ``pattern`` – free text in the catalog's own vocabulary.
* ``price`` (required) – a number ≥ 0 with at most two decimals, ``.`` as decimal point.
* ``currency`` – ISO 4217 code (default from ``SHOP_DEFAULT_CURRENCY``).
* ``stock`` – total units as an integer (one variant, size "one size"), or per size as
  ``S:3|M:0|L:5``. Empty = 0.
* ``group`` – design group: products sharing it are the same design in another colour.
* ``images`` – ``|``-separated paths relative to the images root.
* Any other column is kept in the product's ``attributes``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath

KNOWN_COLUMNS = (
    "sku",
    "title",
    "description",
    "category",
    "colour",
    "pattern",
    "price",
    "currency",
    "stock",
    "group",
    "images",
)
REQUIRED_COLUMNS = ("sku", "title", "price")
# A SKU: letters, digits, ".", "_", "-", starting with a letter or digit, at most 64 characters. The one
# rule for the import, the API and its URLs.
SKU_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SKU_RE = re.compile(f"^{SKU_PATTERN}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
SIZE_RE = re.compile(r"^[A-Za-z0-9 ./+-]{1,30}$")
MAX_PRICE = Decimal("99999999.99")


class CatalogFileError(ValueError):
    """The file as a whole cannot be read (no header, missing required columns, not CSV)."""


class RowError(ValueError):
    """One row is bad; the message says why and how to fix it."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    sku: str
    reason: str

    def __str__(self) -> str:
        who = f" (sku {self.sku})" if self.sku else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass
class ProductRow:
    line: int
    sku: str
    title: str
    description: str
    category_path: list[str]
    colour: str
    pattern: str
    price: Decimal
    currency: str
    stock: dict[str, int]
    group: str
    images: list[Path]
    attributes: dict[str, str] = field(default_factory=dict)


def decode_catalog_bytes(raw: bytes) -> str:
    """Decode as UTF-8 (a BOM is fine). Undecodable bytes survive as surrogates so that only the
    rows containing them are refused, with their line numbers, while the rest import."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.decode("utf-8", errors="surrogateescape")


def has_bad_bytes(text: str) -> bool:
    return any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def parse_price(raw: str) -> Decimal:
    text = raw.strip()
    if not text:
        raise RowError("price is empty; give a number such as 19.99")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(f"price {text!r} is not a number; use digits with '.' as decimal point, e.g. 19.99") from None
    if not value.is_finite():
        raise RowError(f"price {text!r} is not a finite number")
    if value < 0:
        raise RowError(f"price {text!r} is negative")
    if value > MAX_PRICE:
        raise RowError(f"price {text!r} is too large (at most {MAX_PRICE})")
    if value != value.quantize(Decimal("0.01")):
        raise RowError(f"price {text!r} has more than two decimals")
    return value.quantize(Decimal("0.01"))


def parse_stock(raw: str) -> dict[str, int]:
    text = raw.strip()
    if not text:
        return {"one size": 0}
    if ":" not in text:
        if not text.isdigit():
            raise RowError(f"stock {text!r} is not a whole number ≥ 0 (or sizes like S:3|M:0)")
        return {"one size": int(text)}
    stock: dict[str, int] = {}
    for part in text.split("|"):
        size, sep, qty = part.partition(":")
        size, qty = size.strip(), qty.strip()
        if not sep or not SIZE_RE.match(size) or not qty.isdigit():
            raise RowError(f"stock part {part!r} must look like SIZE:UNITS, e.g. M:3")
        if size in stock:
            raise RowError(f"stock names size {size!r} twice")
        stock[size] = int(qty)
    return stock


def parse_images(raw: str, images_root: Path | None) -> list[Path]:
    paths: list[Path] = []
    for item in (p.strip() for p in raw.split("|")):
        if not item:
            continue
        rel = PurePosixPath(item.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise RowError(f"image path {item!r} must be relative to the images root, without '..'")
        if images_root is None:
            raise RowError(f"row lists image {item!r} but no --images-root was given")
        full = images_root.joinpath(*rel.parts)
        if not full.is_file():
            raise RowError(f"image {item!r} not found under {images_root}")
        if full.stat().st_size == 0:
            raise RowError(f"image {item!r} is an empty file")
        paths.append(full)
    return paths


def parse_row(line: int, row: dict[str, str], images_root: Path | None, default_currency: str) -> ProductRow:
    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    sku = get("sku")
    if any(has_bad_bytes(v or "") for v in row.values() if isinstance(v, str)):
        raise RowError("row is not valid UTF-8 text; save the file as UTF-8 and import again")
    if None in row:  # csv.DictReader puts surplus fields under the None key
        raise RowError("row has more fields than the header; check for an unquoted comma")
    if not sku:
        raise RowError("sku is missing")
    if not SKU_RE.match(sku):
        raise RowError(f"sku {sku!r} may only hold letters, digits, '.', '_' and '-' (at most 64)")
    title = get("title")
    if not title:
        raise RowError("title is missing")
    if len(title) > 300:
        raise RowError("title is longer than 300 characters")
    currency = (get("currency") or default_currency).upper()
    if not CURRENCY_RE.match(currency):
        raise RowError(f"currency {currency!r} is not a three-letter ISO code such as EUR")
    category = [part.strip() for part in get("category").split(">") if part.strip()]
    attributes = {
        key.strip(): value.strip()
        for key, value in row.items()
        if key and key.strip() and key.strip() not in KNOWN_COLUMNS and value and value.strip()
    }
    return ProductRow(
        line=line,
        sku=sku,
        title=title,
        description=get("description"),
        category_path=category,
        colour=get("colour"),
        pattern=get("pattern"),
        price=parse_price(get("price")),
        currency=currency,
        stock=parse_stock(get("stock")),
        group=get("group"),
        images=parse_images(get("images"), images_root),
        attributes=attributes,
    )


def read_catalog(
    raw: bytes, images_root: Path | None, default_currency: str = "EUR"
) -> tuple[list[ProductRow], list[RowProblem]]:
    """Parse a whole file: good rows and one problem per bad row (line numbers as in an editor)."""
    text = decode_catalog_bytes(raw)
    if not text.strip():
        raise CatalogFileError("the file is empty; it needs a header row: " + ",".join(KNOWN_COLUMNS))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogFileError(
            f"the header lacks column(s) {', '.join(missing)}; the first row must name the columns: "
            + ",".join(KNOWN_COLUMNS)
        )
    reader.fieldnames = header
    rows: list[ProductRow] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    line = reader.line_num
    for raw_row in reader:
        start = line + 1
        line = reader.line_num
        if not any((v or "").strip() for k, v in raw_row.items() if k is not None):
            continue  # blank line
        sku = (raw_row.get("sku") or "").strip()
        try:
            parsed = parse_row(start, raw_row, images_root, default_currency)
        except RowError as exc:
            problems.append(RowProblem(start, sku if not has_bad_bytes(sku) else "", str(exc)))
            continue
        if parsed.sku in first_line:
            problems.append(
                RowProblem(
                    start,
                    parsed.sku,
                    f"sku {parsed.sku!r} already appears on line {first_line[parsed.sku]}; each SKU once per file "
                    "(the first one is imported)",
                )
            )
            continue
        first_line[parsed.sku] = start
        rows.append(parsed)
    return rows, problems
