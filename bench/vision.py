"""Vision speed on this machine: parse + cutout + embed per image, and text-query encoding.

    .venv/bin/python -m bench.vision [--images 48] [--threads 2] [--out var/bench/vision.json]

Measured in the same run, on the same photos (H&M product shots and VITON person photos from
../shared/data, or synthetic ones when it is absent):

* baseline: rembg ``u2netp`` cut-out + the embedder's image tower in eager PyTorch;
* shop: the garment parser + cutout + image tower, eager PyTorch;
* shop, ONNX Runtime: the same with the image tower exported to ONNX (outputs compared with the
  eager ones: the largest absolute difference is printed and must stay under 1e-3);
* text-query encoding, eager, one query at a time (what a search request does).

Figures are printed (and written as JSON), never asserted: speed is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.stats import latency_summary

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def setup_django() -> None:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()


def sample_images(n: int) -> list[Image.Image]:
    import csv

    paths: list[Path] = []
    for folder, role in ((SHARED / "hm", None), (SHARED / "viton", "person")):
        manifest = folder / "manifest.csv"
        if manifest.is_file():
            with manifest.open(newline="", encoding="utf-8") as fh:
                rows = [
                    r for r in csv.DictReader(fh) if r.get("split", "dev") == "dev" and r.get("role") in (None, role)
                ]
            paths += [folder / r["file"] for r in rows[: n // 2]]
    if not paths:
        rng = np.random.default_rng(0)
        return [Image.fromarray(rng.integers(0, 255, (540, 360, 3), dtype=np.uint8)) for _ in range(n)]
    return [Image.open(p).convert("RGB") for p in paths[:n]]


def timed(fn: Callable[[Any], Any], items: list[Any]) -> tuple[list[float], list[Any]]:
    times, outs = [], []
    fn(items[0])  # warm-up
    for item in items:
        t0 = time.perf_counter()
        outs.append(fn(item))
        times.append(time.perf_counter() - t0)
    return times, outs


def summary(times: list[float]) -> dict[str, float]:
    out = latency_summary(times)
    return {**out, "per_s": round(1000 / out["mean_ms"], 2)}


def export_image_tower(embedder: object, path: Path) -> None:
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module) -> None:
            super().__init__()
            self.visual = visual

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.visual(x), dim=-1)

    tower = Tower(embedder.model.visual).eval()  # type: ignore[attr-defined]
    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        tower,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "vision.json")
    args = parser.parse_args()
    setup_django()
    from vision.ort_runtime import onnxruntime

    ort = onnxruntime()
    import torch

    from vision.assets import u2netp_onnx
    from vision.clip import embedder, to_rgb_on_white

    torch.set_num_threads(args.threads)
    images = sample_images(args.images)
    emb = embedder()
    results: dict[str, object] = {"images": len(images), "threads": args.threads, "embedder": emb.version}

    def eager_embed(image: Image.Image) -> np.ndarray:
        return emb.encode_images([image])[0]

    # --- baseline: rembg u2netp + eager image tower
    os.environ["U2NET_HOME"] = str(u2netp_onnx().parent)
    import rembg

    session = rembg.new_session("u2netp")

    def baseline(image: Image.Image) -> np.ndarray:
        return eager_embed(rembg.remove(image, session=session))

    times, _ = timed(baseline, images)
    results["baseline_u2netp_eager"] = summary(times)

    # --- the shop: garment parser + cutout + eager image tower
    try:
        from vision.parser import cutout, garment_parser

        gp = garment_parser()

        def shop(image: Image.Image) -> Image.Image:
            parsed = gp.parse(image)
            mask = parsed.garment_mask() if parsed.garment_mask().any() else np.ones((image.height, image.width), bool)
            return cutout(image, mask)

        parse_times, cutouts = timed(shop, images)
        embed_times, eager_vectors = timed(eager_embed, cutouts)
        results["shop_parse_cutout"] = summary(parse_times)
        results["shop_embed_eager"] = summary(embed_times)
        results["shop_total_eager"] = summary([a + b for a, b in zip(parse_times, embed_times, strict=True)])
    except Exception as exc:
        results["shop_parse_cutout"] = f"not measured: {exc}"
        cutouts = images
        embed_times, eager_vectors = timed(eager_embed, cutouts)
        results["shop_embed_eager"] = summary(embed_times)

    # --- ONNX Runtime image tower
    onnx_path = args.out.parent / "image_tower.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export_image_tower(emb, onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def onnx_embed(image: Image.Image) -> np.ndarray:
        x = emb.preprocess(to_rgb_on_white(image)).unsqueeze(0).numpy()
        return sess.run(None, {"image": x})[0][0]

    onnx_times, onnx_vectors = timed(onnx_embed, cutouts)
    diff = float(np.max(np.abs(np.stack(onnx_vectors) - np.stack(eager_vectors))))
    results["shop_embed_onnx"] = summary(onnx_times)
    results["onnx_max_abs_diff"] = diff
    results["onnx_within_tolerance_1e-3"] = diff < 1e-3

    # --- text queries, one at a time
    words = ["black", "white", "striped", "denim", "floral", "dress", "jeans", "t-shirt", "jacket", "skirt"]
    rng = np.random.default_rng(0)
    queries = [" ".join(rng.choice(words, size=3, replace=False)) for _ in range(args.queries)]
    text_times, _ = timed(lambda q: emb.encode_texts([q])[0], queries)
    results["text_query_eager"] = summary(text_times)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
