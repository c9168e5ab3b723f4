"""Train the shop embedder on four fifths of the H&M train designs and VITON train pair groups and
score it on the other fifth: the held-out-train comparisons in the README (never the dev split).

    .venv/bin/python scripts/heldout_embedder.py --image-size 288 --out /tmp/heldout

Prints one ``RESULT`` line (JSON: held-out retrieval metrics, attribute top-1, seconds). Uses whole
photos (``--parser-views`` for the garment parser's cut-outs, which needs a trained parser).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")


def a_fifth(keys: set[str], rng: random.Random) -> set[str]:
    """A random fifth of ``keys`` (whole designs or pair groups, so no copy straddles the split)."""
    ordered = sorted(keys)
    rng.shuffle(ordered)
    return set(ordered[: len(ordered) // 5])


def hm_fifths(hm_dir: Path, split_seed: int) -> tuple[list, list]:
    """The H&M train items outside and inside the held-out fifth of designs: the same fifth
    ``main`` holds out with the same ``--split-seed`` (the designs are its first draw)."""
    from vision.embedder_train import hm_items

    items = hm_items(hm_dir.resolve(), "train")
    held_designs = a_fifth({it.group for it in items}, random.Random(split_seed))
    return [it for it in items if it.group not in held_designs], [it for it in items if it.group in held_designs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hm", type=Path, default=Path("../shared/data/hm"))
    ap.add_argument("--viton", type=Path, default=Path("../shared/data/viton"))
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--split-seed", type=int, default=17, help="which fifth is held out")
    ap.add_argument("--parser-views", action="store_true", help="train on the garment parser's cut-outs")
    ap.add_argument("--out", type=Path, required=True, help="folder for the checkpoint and the feature cache")
    args = ap.parse_args()
    if args.image_size < 32 or args.epochs < 1:
        ap.error("--image-size must be at least 32 and --epochs at least 1")
    # absolute paths: the feature cache keys on each image's path, so a relative one would miss it
    args.hm, args.viton = args.hm.resolve(), args.viton.resolve()
    for folder in (args.hm, args.viton):
        if not (folder / "manifest.csv").is_file():
            ap.error(f"{folder} has no manifest.csv")

    import django

    django.setup()
    from vision import clip
    from vision import embedder_train as et

    items, pairs = et.hm_items(args.hm, "train"), et.viton_pairs(args.viton, "train")
    rng = random.Random(args.split_seed)
    held_designs = a_fifth({it.group for it in items}, rng)
    held_groups = a_fifth({p.key for p in pairs}, rng)
    # by keyword: TrainData's ``sources`` is the first field, so positional arguments would land in the wrong ones
    train = et.EmbedderTrainData(
        items=[it for it in items if it.group not in held_designs],
        pairs=[p for p in pairs if p.key not in held_groups],
        sources=["four fifths of the H&M and VITON train splits"],
    )
    held = et.EmbedderTrainData(
        items=[it for it in items if it.group in held_designs],
        pairs=[p for p in pairs if p.key in held_groups],
        sources=["the other fifth"],
    )
    settings = et.EmbedderTrainConfig(epochs=args.epochs, parser_views=args.parser_views, image_size=args.image_size)
    folder = et.train_embedder(train, held, args.out / f"models-{args.image_size}", args.out / "cache", settings)
    card = json.loads((folder / clip.CARD_NAME).read_text())
    result = {
        "image_size": args.image_size,
        "heldout": card["heldout_metrics_after"],
        "attributes": card["attribute_heads"],
        "seconds": card["seconds"],
    }
    print("RESULT", json.dumps(result))


if __name__ == "__main__":
    main()
