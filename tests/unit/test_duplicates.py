"""Near-duplicate detection (vision.duplicates): edited copies are duplicates, recoloured ones are not.

No database needed. The H&M-backed tests skip when ../shared/data is absent."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from vision.assets import REPO
from vision.duplicates import (
    DuplicateThresholds,
    ImageSignature,
    is_duplicate,
    phash_distance,
    phash_of,
    signature_of,
    signatures_of,
)

HM = REPO.parent / "shared" / "data" / "hm"
needs_hm = pytest.mark.skipif(not (HM / "manifest.csv").is_file(), reason=f"H&M data not present at {HM}")


def product_photo(colour: tuple[int, int, int] = (180, 40, 50), seed: int = 0) -> Image.Image:
    """A studio-like product shot: a striped top on a light grey background, with some texture."""
    rng = random.Random(seed)
    im = Image.new("RGB", (360, 540), (236, 236, 234))
    draw = ImageDraw.Draw(im)
    body = [(110, 120), (150, 95), (210, 95), (250, 120), (300, 190), (265, 215), (245, 185), (245, 430), (115, 430)]
    body += [(115, 185), (95, 215), (60, 190)]
    draw.polygon(body, fill=colour)
    dark = tuple(int(c * 0.55) for c in colour)
    for y in range(140, 430, 36):
        draw.rectangle((115, y, 245, y + 12), fill=dark)
    draw.ellipse((160, 92, 200, 118), fill=(236, 236, 234))
    for _ in range(40):
        x, y = rng.randint(120, 235), rng.randint(130, 420)
        draw.ellipse((x, y, x + 6, y + 6), fill=tuple(min(255, c + 40) for c in colour))
    return im.filter(ImageFilter.GaussianBlur(1.2))


def edits(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=30)
    return {
        "resized 60%": image.resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.BICUBIC),
        "JPEG quality 30": Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
        "cropped 10% per side": image.crop((int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.9 * h))),
        "cropped 15/5% per side": image.crop((int(0.15 * w), int(0.05 * h), int(0.95 * w), int(0.85 * h))),
        "brightness x1.25": ImageEnhance.Brightness(image).enhance(1.25),
        "brightness x0.75": ImageEnhance.Brightness(image).enhance(0.75),
    }


def hue_rotated(image: Image.Image, degrees: int = 120) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    shift = round(degrees / 360 * 256)
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def assert_edits_are_duplicates(image: Image.Image) -> None:
    copies = edits(image)
    original, *edited = signatures_of([image, *copies.values()])
    for (name, _), sig in zip(copies.items(), edited, strict=True):
        duplicate, reason = is_duplicate(original, sig)
        assert duplicate, f"{name}: {reason}"
        assert reason.startswith("same photo"), reason
        assert is_duplicate(sig, original)[0], f"{name} (reversed)"


def test_synthetic_photo_edits_are_duplicates():
    assert_edits_are_duplicates(product_photo())


def test_synthetic_recoloured_copy_is_not_a_duplicate():
    image = product_photo()
    original, *others = signatures_of([image, hue_rotated(image, 120), hue_rotated(image, 240)])
    for sig in others:
        duplicate, reason = is_duplicate(original, sig)
        assert not duplicate, reason
        assert reason.startswith("not a duplicate: other colour"), reason
    # same shape, another paint: also another colour
    blue = signature_of(product_photo(colour=(40, 60, 170)))
    assert not is_duplicate(original, blue)[0]


def test_pHash_distance_and_reason():
    assert phash_distance(0b1011, 0b0001) == 2
    assert phash_distance(0, 2**64 - 1) == 64
    image = product_photo()
    sig = signature_of(image)
    assert 0 <= sig.phash < 2**64
    assert sig.phash == phash_of(image)
    half = signature_of(image.resize((180, 270)))
    assert is_duplicate(sig, half)[1].startswith("same photo, same pixels at exposure ×1.00")
    duplicate, reason = is_duplicate(sig, half, DuplicateThresholds(exposure_mae_max=-1.0))
    assert duplicate
    distance = int(reason.split("pHash distance ")[1].split(",")[0])
    inliers = int(reason.split(", ")[1].split(" matching")[0])
    assert distance <= DuplicateThresholds().phash_max and inliers >= DuplicateThresholds().min_inliers
    assert reason == f"same photo (pHash distance {distance}, {inliers} matching keypoints)"


def test_signature_json_round_trip():
    sig = signature_of(product_photo())
    data = sig.to_json()
    assert isinstance(data["phash"], str) and len(data["phash"]) == 16
    assert int(data["phash"], 16) == sig.phash
    text = json.dumps(data)
    for restored in (ImageSignature.from_json(text), ImageSignature.from_json(json.loads(text))):
        assert restored.phash == sig.phash
        assert restored.embedding.dtype == np.float32 and restored.embedding.shape == (1280,)
        np.testing.assert_allclose(restored.embedding, sig.embedding, atol=1e-6)
        np.testing.assert_allclose(restored.colour, sig.colour, atol=1e-5)
        assert restored.thumbnail is not None and restored.thumbnail.dtype == np.uint8
        np.testing.assert_array_equal(restored.thumbnail, sig.thumbnail)
        assert restored.keypoints is None  # keypoints are not stored: the geometric check needs them again
        assert is_duplicate(restored, sig)[0]  # the same pixels: no keypoints needed
        geometric = DuplicateThresholds(exposure_mae_max=-1.0)
        with pytest.raises(ValueError, match="need keypoints"):
            is_duplicate(restored, sig, geometric)
        restored.keypoints = lambda: sig.keypoints  # computed on demand, as the pipeline does
        assert is_duplicate(restored, sig, geometric) == is_duplicate(sig, sig, geometric)
    assert abs(float(np.linalg.norm(sig.embedding)) - 1.0) < 1e-4


def test_brightened_pale_garment_is_the_same_pixels_at_another_exposure():
    """A pale garment brightened ×1.25 clips into its background: pHash, embedding and keypoints no
    longer agree, the exposure tier still does — and a recoloured copy of it still fails."""
    from dataclasses import replace

    from vision.duplicates import exposure_match, thumbnail_of

    pale = product_photo(colour=(222, 214, 200), seed=5)
    brighter = ImageEnhance.Brightness(pale).enhance(1.25)
    gain, difference = exposure_match(thumbnail_of(pale), thumbnail_of(brighter))
    assert 1.15 <= gain <= 1.35 and difference <= 0.01, (gain, difference)
    gain, difference = exposure_match(thumbnail_of(brighter), thumbnail_of(pale))  # either way round
    assert 0.74 <= gain <= 0.87 and difference <= 0.01, (gain, difference)
    original, copy, recoloured, other = signatures_of(
        [pale, brighter, hue_rotated(product_photo(colour=(200, 120, 60), seed=5)), product_photo(seed=6)]
    )
    duplicate, reason = is_duplicate(original, copy)
    assert duplicate and reason.startswith("same photo, same pixels at exposure ×1.2"), reason
    assert not is_duplicate(original, recoloured)[0]
    assert exposure_match(original.thumbnail, other.thumbnail)[1] > 0.01  # another photo: other pixels
    no_tier = replace(DuplicateThresholds(), exposure_mae_max=-1.0)
    assert is_duplicate(original, copy, no_tier)[1] != reason


def test_signatures_stored_before_the_thumbnail_still_compare():
    sig = signature_of(product_photo())
    data = sig.to_json()
    del data["thumbnail"]
    old = ImageSignature.from_json({**data, "version": "dup-1"})
    assert old.thumbnail is None
    old.keypoints = sig.keypoints
    duplicate, reason = is_duplicate(old, sig)
    assert duplicate and not reason.startswith("same photo, same pixels"), reason


def test_thresholds_are_frozen_and_overridable():
    t = DuplicateThresholds()
    with pytest.raises(AttributeError):
        t.phash_max = 3  # type: ignore[misc]
    sig = signature_of(product_photo())
    other = signature_of(product_photo().crop((30, 50, 330, 490)))
    strict = DuplicateThresholds(phash_max=-1, embedding_min=1.01, colour_max=t.colour_max)
    duplicate, reason = is_duplicate(sig, other, strict)
    assert not duplicate and reason.startswith("not a duplicate: different photo")


def test_vectorised_rule_matches_is_duplicate():
    from evaluation.duplicates import PairScores, shop_rule
    from vision.duplicates import chroma_distance, colour_distance, cosine, exposure_match, geometric_inliers

    image = product_photo()
    extra = [hue_rotated(image), product_photo((30, 120, 60), 3), product_photo((200, 200, 205), 4)]
    base, *others = signatures_of([image, *edits(image).values(), *extra])
    scores = PairScores(
        phash_distance=np.array([phash_distance(base.phash, o.phash) for o in others]),
        cosine=np.array([cosine(base.embedding, o.embedding) for o in others]),
        colour_distance=np.array([colour_distance(base.colour, o.colour) for o in others]),
        chroma_distance=np.array([chroma_distance(base.colour, o.colour) for o in others]),
        inliers=np.array([geometric_inliers(base.keypoints, o.keypoints) for o in others]),
        exposure_difference=np.array([exposure_match(base.thumbnail, o.thumbnail)[1] for o in others]),
    )
    variants = [
        DuplicateThresholds(),
        DuplicateThresholds(phash_max=2, embedding_min=0.99, colour_max=1.0),
        DuplicateThresholds(relit_phash_max=-1),
        DuplicateThresholds(colour_max=0.0, relit_embedding_min=0.5, chroma_max=100.0),
        DuplicateThresholds(min_inliers=0),
        DuplicateThresholds(min_inliers=500),
        DuplicateThresholds(exposure_mae_max=-1.0),
        DuplicateThresholds(exposure_mae_max=-1.0, min_inliers=500, relit_phash_max=-1),
    ]
    for t in variants:
        expected = [is_duplicate(base, o, t)[0] for o in others]
        assert shop_rule(scores, t).tolist() == expected, t


# ---------------------------------------------------------------- H&M photos


def hm_rows() -> list[dict[str, str]]:
    with (HM / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == "train"]


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


@needs_hm
def test_hm_photo_edits_are_duplicates_and_recolour_is_not():
    row = next(r for r in hm_rows() if r["colour"] == "Dark Red")
    image = open_rgb(HM / row["file"])
    assert_edits_are_duplicates(image)
    a, b = signatures_of([image, hue_rotated(image, 150)])
    duplicate, reason = is_duplicate(a, b)
    assert not duplicate and "other colour" in reason


@needs_hm
def test_hm_same_design_other_colour_and_other_products_are_not_duplicates():
    rows = hm_rows()
    by_group: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_group.setdefault(r["group_id"], []).append(r)
    pairs = []
    for members in by_group.values():
        colours = {m["colour"]: m for m in members}
        if len(colours) >= 2:
            first, second = list(colours.values())[:2]
            pairs.append((first, second))
        if len(pairs) == 6:
            break
    images = [open_rgb(HM / r["file"]) for pair in pairs for r in pair]
    sigs = signatures_of(images)
    for i in range(0, len(sigs), 2):
        duplicate, reason = is_duplicate(sigs[i], sigs[i + 1])
        assert not duplicate, (pairs[i // 2][0]["item_id"], pairs[i // 2][1]["item_id"], reason)
    # unrelated products
    assert not is_duplicate(sigs[0], sigs[3])[0]
