"""Export a served model to ONNX, so that a web process answers queries without torch.

A web process only runs three forward passes: the text tower (a query's words), the image tower (a
shopper's photo's garments) and the garment parser. Holding torch for them costs a web process about
900 MB (the library and its allocations); the same nets exported to ONNX and run by onnxruntime cost a
fraction of that, with the weights in files the operating system maps and shares between processes.

``export_embedder`` / ``export_parser`` write a folder that :mod:`vision.onnx_serving` loads:

* ``<part>.onnx`` and ``<part>.weights`` (the graph, and its weights as external data: memory-mapped);
* ``text.tokens``: the text tower's word-vector table, one float32 row per token id, which the web
  process reads row by row (:class:`vision.onnx_serving.TokenVectors`) instead of mapping it;
* ``tokenizer.json`` (the embedder's Hugging Face tokenizer, read by the ``tokenizers`` library);
* ``serving.json`` (what the runtime needs: preprocessing, sizes, classes) — written last, so a folder
  without it is an interrupted export and is redone.

Each export is checked before it is kept: the exported nets must give the torch model's outputs on
probe inputs (vectors within ``TOLERANCE``), else nothing is written and the process keeps torch.

Command line (what a web process runs in a child process when an export is missing)::

    python -m vision.onnx_export embedder <model folder> <out folder>
    python -m vision.onnx_export parser <model folder> <out folder>
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vision.onnx_serving import FORMAT, SERVING_NAME, TOKENS_NAME, source_fingerprint

logger = logging.getLogger(__name__)

OPSET = 17
TOLERANCE = 1e-4  # largest difference allowed between torch's and onnxruntime's outputs on the probes


class _Visual(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        from vision.clip import encoders

        return torch.nn.functional.normalize(encoders(self.model).encode_image(pixels), dim=-1)


class _Text(torch.nn.Module):
    """The shop's Hugging Face text tower from its tokens' word vectors (the rows of the tower's word
    embedding table, looked up outside the graph): projected vector and the tower's own sentence vector."""

    def __init__(self, text: torch.nn.Module) -> None:
        super().__init__()
        self.text: Any = text  # open_clip's HFTextEncoder (transformer, pooler, proj), untyped

    def forward(self, token_vectors: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.text.pooler(
            self.text.transformer(inputs_embeds=token_vectors, attention_mask=attention_mask), attention_mask
        )
        normalize = torch.nn.functional.normalize
        return normalize(self.text.proj(pooled), dim=-1), normalize(pooled, dim=-1)


def _save_external(onnx_path: Path) -> None:
    """Move the graph's weights into ``<name>.weights`` beside it (external data, memory-mapped at load)."""
    import onnx

    model = onnx.load(str(onnx_path))
    weights = onnx_path.with_suffix(".weights").name
    onnx.save_model(
        model,
        str(onnx_path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=weights,
        size_threshold=1024,
    )


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow of the HF tower
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    _save_external(path)


def _session(path: Path) -> Any:
    from vision.ort_runtime import onnxruntime

    ort = onnxruntime()

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check(name: str, expected: list[np.ndarray], got: list[np.ndarray]) -> float:
    worst = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    if not worst <= TOLERANCE:
        raise ValueError(f"the exported {name} differs from the torch model by {worst:.2e} (> {TOLERANCE:.0e})")
    return worst


def _write_atomically(out: Path, fill: Any) -> Path:
    """Fill a temporary folder beside ``out`` and swap it in: an export is whole or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        tmp.chmod(0o755)  # readable by every process that serves (mkdtemp makes it private)
        for path in tmp.iterdir():
            path.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def export_embedder(folder: Path, out: Path) -> Path:
    """Export the shop's embedder checkpoint (an open_clip ``local-dir`` folder with a Hugging Face
    text tower and tokenizer) to ``out``. ValueError for a model this runtime does not cover."""
    from PIL import Image

    from vision.clip import CARD_NAME, CONFIG_NAME, load_embedder
    from vision.onnx_serving import OnnxEmbedder

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(f"{folder} has no tokenizer.json: only embedders with a Hugging Face tokenizer are exported")
    emb = load_embedder(f"local-dir:{folder}")
    text = getattr(emb.model, "text", None)
    if text is None or not all(hasattr(text, n) for n in ("transformer", "pooler", "proj", "config")):
        raise ValueError(f"{folder}'s text tower is not a Hugging Face tower with a pooler and a projection")
    config = json.loads((folder / CONFIG_NAME).read_text())
    card = json.loads((folder / CARD_NAME).read_text()) if (folder / CARD_NAME).is_file() else {}
    model = emb.model.to(memory_format=torch.contiguous_format).float().eval()
    size = int(config["model_cfg"]["vision_cfg"]["image_size"])
    context = int(config["model_cfg"]["text_cfg"].get("context_length", 77))
    pad = int(text.config.pad_token_id or 0)
    table = text.transformer.get_input_embeddings().weight.detach().float().contiguous()  # word vectors
    serving = {
        "format": FORMAT,
        "kind": "embedder",
        "name": emb.name,
        "version": emb.version,
        "dim": emb.dim,
        "source": source_fingerprint(folder),
        "image": {
            "size": size,
            **{
                k: config["preprocess_cfg"][k]
                for k in ("mean", "std", "interpolation", "resize_mode", "fill_color")
                if k in config["preprocess_cfg"]
            },
        },
        "text": {
            "context_length": context,
            "pad_token_id": pad,
            "tokens": {"file": TOKENS_NAME, "rows": int(table.shape[0]), "width": int(table.shape[1])},
        },
        "card_version": card.get("version"),
    }

    def fill(tmp: Path) -> None:
        tokens = emb.tokenizer(["a red dress", "something warm for a cold winter walk"])
        mask = (tokens != pad).long()
        table.numpy().astype("<f4").tofile(tmp / TOKENS_NAME)
        _export(
            _Visual(model),
            (torch.randn(2, 3, size, size),),
            tmp / "visual.onnx",
            ["pixels"],
            ["vectors"],
            {"pixels": {0: "n"}, "vectors": {0: "n"}},
        )
        _export(
            _Text(text),
            (table[tokens], mask),
            tmp / "text.onnx",
            ["token_vectors", "attention_mask"],
            ["vectors", "sentences"],
            {
                "token_vectors": {0: "n", 1: "t"},
                "attention_mask": {0: "n", 1: "t"},
                "vectors": {0: "n"},
                "sentences": {0: "n"},
            },
        )
        shutil.copy2(folder / "tokenizer.json", tmp / "tokenizer.json")
        (tmp / SERVING_NAME).write_text(json.dumps(serving, indent=2))
        # the probes: what the web process will do, against what the torch model does
        served = OnnxEmbedder.load(tmp, threads=1)
        probe_texts = ["black t shirt", "Something warm for a cold winter walk!", "jeans", ""]
        rng = np.random.RandomState(0)
        probe_images = [
            Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((300, 200), (120, 340))
        ]
        want, got = emb.encode_texts_and_sentences(probe_texts), served.encode_texts_and_sentences(probe_texts)
        if want[1] is None or got[1] is None:
            raise ValueError("the text tower gives no sentence vectors")
        worst_text = _check("text tower", [want[0], want[1]], [got[0], got[1]])
        worst_image = _check("image tower", [emb.encode_images(probe_images)], [served.encode_images(probe_images)])
        serving["checked"] = {"text": worst_text, "image": worst_image, "tolerance": TOLERANCE}
        (tmp / SERVING_NAME).write_text(json.dumps(serving, indent=2))

    return _write_atomically(Path(out), fill)


def _labels_graphs(folder: Path) -> None:
    """The parser's labelling as two small graphs (what :meth:`OnnxParser.upsample_labels` runs): logits
    upsampled bilinearly (half-pixel centres, as ``F.interpolate(align_corners=False)``), the winning
    class and its softmax probability per pixel — ``labels_whole`` for the whole photo by ``Resize``,
    ``labels_strip`` for rows of it from precomputed source indices and weights."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as oh

    node = oh.make_node

    def winner(up: str, axis: int) -> list[Any]:
        return [
            node("ArgMax", [up], ["labels"], axis=axis, keepdims=0),
            node("ReduceMax", [up], ["best"], axes=[axis], keepdims=1),
            node("Sub", [up, "best"], ["shifted"]),
            node("Exp", ["shifted"], ["exp"]),
            node("ReduceSum", ["exp", "axis"], ["denominator"], keepdims=0),
            node("Reciprocal", ["denominator"], ["conf"]),
        ]

    def save(name: str, nodes: list[Any], inputs: list[Any], axis: int, shape: list[Any]) -> None:
        outputs = [
            oh.make_tensor_value_info("labels", TensorProto.INT64, shape),
            oh.make_tensor_value_info("conf", TensorProto.FLOAT, shape),
        ]
        graph = oh.make_graph(
            nodes, name, inputs, outputs, initializer=[oh.make_tensor("axis", TensorProto.INT64, [1], [axis])]
        )
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", OPSET)])
        onnx.checker.check_model(model)
        onnx.save_model(model, str(folder / f"{name}.onnx"))

    value = oh.make_tensor_value_info
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    whole = [
        node(
            "Resize",
            ["logits", "", "", "sizes"],
            ["up"],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        )
    ]
    save(
        "labels_whole",
        whole + winner("up", 1),
        [value("logits", f32, [1, "c", "h", "w"]), value("sizes", i64, [4])],
        axis=1,
        shape=[1, "H", "W"],
    )
    strip = [
        node("Gather", ["logits", "x0"], ["left"], axis=2),
        node("Gather", ["logits", "x1"], ["right"], axis=2),
        node("Sub", ["right", "left"], ["dx"]),
        node("Mul", ["dx", "lx"], ["wx"]),
        node("Add", ["left", "wx"], ["cols"]),
        node("Gather", ["cols", "y0"], ["top"], axis=1),
        node("Gather", ["cols", "y1"], ["bottom"], axis=1),
        node("Sub", ["bottom", "top"], ["dy"]),
        node("Mul", ["dy", "ly"], ["wy"]),
        node("Add", ["top", "wy"], ["up"]),
    ]
    save(
        "labels_strip",
        strip + winner("up", 0),
        [
            value("logits", f32, ["c", "h", "w"]),
            value("x0", i64, ["W"]),
            value("x1", i64, ["W"]),
            value("lx", f32, ["W"]),
            value("y0", i64, ["R"]),
            value("y1", i64, ["R"]),
            value("ly", f32, ["R", 1]),
        ],
        axis=0,
        shape=["R", "W"],
    )


def export_parser(folder: Path, out: Path) -> Path:
    """Export a trained garment parser checkpoint folder to ``out``."""
    from PIL import Image

    from vision import onnx_serving
    from vision.onnx_serving import MAX_UPSAMPLE_ELEMENTS, OnnxParser
    from vision.parser import GarmentParser, upsample_labels

    folder = Path(folder)
    parser = GarmentParser.load(folder)
    net = parser.model.to(memory_format=torch.contiguous_format).eval()
    serving = {
        "format": FORMAT,
        "kind": "parser",
        "version": parser.version,
        "source": source_fingerprint(folder),
        "working_size": parser.working_size,
        "min_area_fraction": parser.min_area_fraction,
    }

    def fill(tmp: Path) -> None:
        _export(
            net,
            (torch.randn(1, 3, 256, 192),),
            tmp / "parser.onnx",
            ["pixels"],
            ["logits"],
            {"pixels": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}},
        )
        _labels_graphs(tmp)
        (tmp / SERVING_NAME).write_text(json.dumps(serving, indent=2))
        served = OnnxParser.load(tmp, threads=1)
        rng = np.random.RandomState(0)
        probes = [Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((400, 300), (250, 500))]
        with torch.inference_mode():
            expected = [parser.logits_batch([im])[0].numpy() for im in probes]
        got = [served.logits(im) for im in probes]
        worst = _check("parser", expected, got)
        # the labelling, both ways (whole and in strips), against torch's on the torch logits
        logits = torch.from_numpy(expected[0])
        want = upsample_labels(logits, 700, 500)
        for limit in (MAX_UPSAMPLE_ELEMENTS, 10 * 500 * 37):  # whole; strips of 37 rows
            onnx_serving.MAX_UPSAMPLE_ELEMENTS = limit
            try:
                have = served.upsample_labels(expected[0], 700, 500)
            finally:
                onnx_serving.MAX_UPSAMPLE_ELEMENTS = MAX_UPSAMPLE_ELEMENTS
            same = float((want[0] == have[0]).mean())
            if same < 0.999 or not np.allclose(want[2], have[2], atol=0.002 * 700 * 500):
                raise ValueError(f"the exported parser's labels agree with torch's on {same:.2%} of pixels only")
        serving["checked"] = {"logits": worst, "labels_agree": same, "tolerance": TOLERANCE}
        (tmp / SERVING_NAME).write_text(json.dumps(serving, indent=2))

    return _write_atomically(Path(out), fill)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Export a served model to ONNX for torch-free query serving.")
    cli.add_argument("kind", choices=("embedder", "parser"))
    cli.add_argument("folder", type=Path, help="the model's folder (the registry's location)")
    cli.add_argument("out", type=Path, help="where the exported model goes")
    args = cli.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    try:
        done = (export_embedder if args.kind == "embedder" else export_parser)(args.folder, args.out)
    except (ValueError, OSError) as exc:
        print(f"not exported: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(json.loads((done / SERVING_NAME).read_text()).get("checked", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
