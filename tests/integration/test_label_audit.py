"""``evaluate attributes --annotations`` run whole, with the real (test) checkpoints (the comparison
itself and ``scripts/label_audit.py``: tests/unit/test_label_audit.py)."""

from __future__ import annotations

import csv
from pathlib import Path


def test_evaluate_attributes_scores_an_annotator_and_the_shop_on_the_same_items(test_models, tmp_path: Path):
    """The whole command on synthetic garments with the real (test) checkpoints: the annotator's
    agreement is hand-counted; the shop and the baselines are scored on the very same items."""
    import json

    from django.core.management import call_command

    from tests.support.checkpoints import synthetic_garments

    images, items = synthetic_garments()
    with (tmp_path / "attributes.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "category", "colour", "pattern", "item_id"])
        for image, item in zip(images, items, strict=True):
            image.save(tmp_path / f"{item.key}.png")
            writer.writerow([f"{item.key}.png", item.category, item.colour, item.pattern, item.key])
    # the annotator labels four of the six garments' colours and gets s00 and s01 right (red), s10 and
    # s21 wrong: 2 of 4; the category of s00 right: 1 of 1
    (tmp_path / "second.csv").write_text(
        "item_id,colour,category\ns00,red,dress\ns01,red,\ns10,black,\ns21,blue,\nnot-in-manifest,red,dress\n"
    )
    out = tmp_path / "report"
    call_command(
        "evaluate",
        "attributes",
        "--manifest",
        str(tmp_path / "attributes.csv"),
        "--train",
        str(tmp_path / "attributes.csv"),
        "--annotations",
        str(tmp_path / "second.csv"),
        "--out",
        str(out),
    )
    metrics = json.loads((out / "attributes.json").read_text())["metrics"]
    colour = metrics["annotator_samples"]["second"]["colour"]
    assert colour["items"] == 4 and colour["annotator"] == 0.5
    assert set(colour) == {"items", "annotator", "shop", "majority", "imagenet_features", "colour_histogram"}
    assert all(0.0 <= colour[m] <= 1.0 for m in ("shop", "majority", "imagenet_features", "colour_histogram"))
    # the majority label is one fixed colour: on these four items (red, red, blue, black) it is right
    # on 0, 1 or 2 of them — never on all four
    assert colour["majority"] in (0.0, 0.25, 0.5)
    assert metrics["annotator_samples"]["second"]["category"] == {
        "items": 1,
        "annotator": 1.0,
        **{m: metrics["annotator_samples"]["second"]["category"][m] for m in colour if m not in ("items", "annotator")},
    }
    assert "second annotator" in (out / "attributes.md").read_text()
    assert (out / "attributes.png").stat().st_size > 0
