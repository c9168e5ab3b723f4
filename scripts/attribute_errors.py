"""Where attribute top-1 is lost, on the held-out fifth of the H&M train designs (the fifth that
``scripts/finetune_attributes.py`` and ``scripts/heldout_embedder.py`` hold out; never dev):

* the most frequent (truth → predicted) confusions of a fine-tuned trunk saved by
  ``scripts/finetune_attributes.py``, mirrored views averaged, and the share of its errors they make;
* how well H&M's own words predict the same labels: linear heads on all-MiniLM-L6-v2 features of
  each article's title and description (text the image model never sees), fitted on the other four
  fifths with the recipe the image baseline uses. A label the text cannot tell either is a label a
  photo is unlikely to tell.

    .venv/bin/python scripts/attribute_errors.py --weights /tmp/ft-attributes/finetuned.pt

Prints the tables and one ``RESULT`` line (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

ATTRS = ("category", "colour", "pattern")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hm", type=Path, default=Path("../shared/data/hm"))
    ap.add_argument("--weights", type=Path, required=True, help="finetuned.pt from scripts/finetune_attributes.py")
    ap.add_argument("--image-size", type=int, default=224, help="the size the weights were trained at")
    ap.add_argument("--split-seed", type=int, default=17, help="which fifth is held out")
    ap.add_argument("--top", type=int, default=8, help="confusions listed per attribute")
    args = ap.parse_args()
    if not (args.hm / "manifest.csv").is_file():
        ap.error(f"{args.hm} has no manifest.csv")
    if not args.weights.is_file():
        ap.error(f"{args.weights} does not exist: run scripts/finetune_attributes.py --out DIR first")

    import django

    django.setup()
    import timm
    import torch
    import torch.nn.functional as F
    from finetune_attributes import fit_linear_probe
    from heldout_embedder import hm_fifths
    from PIL import Image, ImageOps
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    from vision.assets import minilm_dir
    from vision.clip import create_shop_model, shop_preprocess

    torch.manual_seed(0)
    train, held = hm_fifths(args.hm, args.split_seed)
    blob = torch.load(args.weights, map_location="cpu", weights_only=False)
    vocab: dict[str, list[str]] = blob["vocab"]

    def truth(rows: list, attr: str) -> list[str]:
        return [getattr(it, attr).strip() for it in rows]

    # --- the fine-tuned trunk's confusions ---
    trunk = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    trunk.load_state_dict(blob["trunk"])
    trunk.eval()
    heads = {a: torch.nn.Linear(1280, len(vocab[a])) for a in ATTRS}
    for a, head in heads.items():
        head.weight.data = blob["heads"][f"{a}.weight"]
        head.bias.data = blob["heads"][f"{a}.bias"]
    _, config = create_shop_model(image_size=args.image_size)
    preprocess = shop_preprocess(config)
    probs: dict[str, list[torch.Tensor]] = {a: [] for a in ATTRS}
    with torch.inference_mode():
        for b in tqdm(range(0, len(held), 64), desc="held-out photos", unit="batch"):
            batch = []
            for it in held[b : b + 64]:
                with Image.open(it.image) as im:
                    batch.append(preprocess(ImageOps.exif_transpose(im).convert("RGB")))
            x = torch.stack(batch)
            feats = [trunk(x), trunk(x.flip(-1))]
            for a in ATTRS:
                plain, flipped = (F.softmax(heads[a](f), 1) for f in feats)
                probs[a].append(plain + flipped)
    result: dict[str, dict] = {"image_finetuned": {}, "text_minilm": {}}
    for a in ATTRS:
        predicted = [vocab[a][k] for k in torch.cat(probs[a]).argmax(1).tolist()]
        pairs = [(t, p) for t, p in zip(truth(held, a), predicted, strict=True) if t in vocab[a]]
        errors = Counter((t, p) for t, p in pairs if t != p)
        top = errors.most_common(args.top)
        n_err = sum(errors.values())
        accuracy = 1 - n_err / len(pairs)
        print(f"\n{a}: fine-tuned trunk top-1 {accuracy:.3f} on {len(pairs)} photos; {n_err} errors, most frequent:")
        for (t, p), n in top:
            print(f"  {n:4d}  {t} → {p}")
        share = sum(n for _, n in top) / max(1, n_err)
        print(f"  these {len(top)} confusions make {share:.0%} of the errors")
        result["image_finetuned"][a] = {
            "top1": round(accuracy, 4),
            "errors": n_err,
            "top_confusions": [[t, p, n] for (t, p), n in top],
            "top_share": round(share, 3),
        }

    # --- the same labels from H&M's own words ---
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    text_model = AutoModel.from_pretrained(str(minilm_dir())).eval()

    @torch.inference_mode()
    def encode(rows: list) -> torch.Tensor:
        out = []
        for b in tqdm(range(0, len(rows), 128), desc="MiniLM", unit="batch"):
            texts = [f"{it.title}. {it.description}" for it in rows[b : b + 128]]
            enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = text_model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append((hidden * mask).sum(1) / mask.sum(1))
        return torch.cat(out)

    f_train, f_held = encode(train), encode(held)
    print()
    for a in ATTRS:
        index = {v: i for i, v in enumerate(vocab[a])}
        keep = [i for i, t in enumerate(truth(train, a)) if t in index]
        y = torch.tensor([index[truth(train, a)[i]] for i in keep])
        predicted = fit_linear_probe(f_train, y, f_held, len(vocab[a]), keep).argmax(1).tolist()
        pairs = [(t, vocab[a][k]) for t, k in zip(truth(held, a), predicted, strict=True) if t in index]
        accuracy = sum(t == p for t, p in pairs) / len(pairs)
        print(f"{a}: MiniLM on title + description, linear heads: top-1 {accuracy:.3f} on {len(pairs)} articles")
        result["text_minilm"][a] = round(accuracy, 4)
    print("RESULT", json.dumps(result))


if __name__ == "__main__":
    main()
