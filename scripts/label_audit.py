"""Blind contact sheets for a second annotator: how often does a person who reads only the photo
agree with the catalog's own labels? That agreement is the ceiling an image model can be held to
on those labels (``evaluate attributes --annotations`` scores it beside the shop's heads).

    .venv/bin/python scripts/label_audit.py --manifest ../shared/data/hm/manifest.csv --split dev \\
        --attribute colour --column colour_master --n 120 --seed 20261205 --out var/eval/audit-colour

writes ``sheet-0.png`` … (24 numbered photos each, no labels), ``to-label.csv`` (``n,item_id`` and an
empty column for the attribute, to fill in from the sheets) and ``vocabulary.txt`` (the values the
catalog uses for that attribute, with their counts in the whole manifest). The sample is drawn by ``--seed``
from the manifest's rows in file order, so the same command draws the same photos.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.attributes import ATTRS  # after the repository is on the path

PER_SHEET, COLUMNS, TILE = 24, 6, (150, 225)


def draw_sample(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    ordered = list(rows)
    random.Random(seed).shuffle(ordered)
    return ordered[:n]


def write_sheets(sample: list[dict[str, str]], out: Path) -> list[Path]:
    from PIL import Image, ImageDraw

    width, height = TILE
    paths = []
    for first in range(0, len(sample), PER_SHEET):
        chunk = sample[first : first + PER_SHEET]
        rows = -(-len(chunk) // COLUMNS)
        sheet = Image.new("RGB", (COLUMNS * width, rows * (height + 18)), "white")
        draw = ImageDraw.Draw(sheet)
        for j, row in enumerate(chunk):
            with Image.open(row["image"]) as im:
                tile = im.convert("RGB").resize(TILE)
            x, y = (j % COLUMNS) * width, (j // COLUMNS) * (height + 18)
            sheet.paste(tile, (x, y))
            draw.text((x + 4, y + height + 3), f"#{first + j}", fill="black")
        path = out / f"sheet-{first // PER_SHEET}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True, help="CSV with image,item_id and the attribute columns")
    ap.add_argument("--attribute", choices=ATTRS, required=True)
    ap.add_argument("--column", default=None, help="the manifest's column for it (default: the attribute's name)")
    ap.add_argument("--split", default=None, help="keep only rows of this split (manifests with a split column)")
    ap.add_argument("--n", type=int, default=120, help="photos in the sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be at least 1")
    if not args.manifest.is_file():
        ap.error(f"{args.manifest} does not exist: build it with `manage.py build_eval_sets`")
    with args.manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    column = args.column or args.attribute
    header = set(rows[0] if rows else {})
    path_column = "image" if "image" in header else "file"  # build_eval_sets' files / the shared manifests
    missing = {path_column, "item_id", column} - header
    if missing:
        ap.error(f"{args.manifest} lacks the columns {sorted(missing)}")
    # the annotator chooses from every value the catalog uses, whichever split it came from
    counts = Counter(row[column] for row in rows if row[column])
    if args.split:
        if "split" not in header:
            ap.error(f"{args.manifest} has no split column")
        rows = [row for row in rows if row["split"] == args.split]
    for row in rows:
        image = Path(row[path_column])
        row["image"] = str(image if image.is_absolute() else args.manifest.parent / image)
    sample = draw_sample(rows, args.n, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    sheets = write_sheets(sample, args.out)
    with (args.out / "to-label.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["n", "item_id", args.attribute])
        writer.writerows([i, row["item_id"], ""] for i, row in enumerate(sample))
    (args.out / "vocabulary.txt").write_text("".join(f"{v}\t{c}\n" for v, c in counts.most_common()))
    print(f"{len(sample)} photos on {len(sheets)} sheets in {args.out}; fill in {args.out / 'to-label.csv'}")


if __name__ == "__main__":
    main()
