"""The served models without torch: the embedder's two towers and the garment parser, run by onnxruntime
from the folders :mod:`vision.onnx_export` writes. A web process answers text and photo queries with
these and never imports torch (the workers, which train and write the catalog's vectors, keep torch).

Same inputs, same outputs as the torch models, within :data:`vision.onnx_export.TOLERANCE` (checked at
export, and by the tests): the image preprocessing is open_clip's (aspect kept, longest side to the
model's size, padded with the fill colour), the tokenizer is the text tower's own ``tokenizer.json``, the
parser's logits are upsampled and labelled exactly as :func:`vision.parser.upsample_labels` does.

The weights are external data files that onnxruntime maps into memory: pages the operating system
shares between every web process on a machine. The text tower's word-vector table (30,522 rows, 47 MB
for the shop's MiniLM tower) is the exception: a query reads a handful of its rows, which are read from
``text.tokens`` one by one (:class:`TokenVectors`). Mapped, each row read faulted in its 64 KB
neighbourhood, and a web process kept about 30 MB of the table resident after a day's queries.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from vision.images import to_rgb_on_white
from vision.parsing import PARSER_CLASSES, ParseResult, parse_result, round_up, working_pixels

FORMAT = "shop-onnx/2"  # 2: the text graph reads its tokens' word vectors, looked up in TOKENS_NAME
SERVING_NAME = "serving.json"
TOKENS_NAME = "text.tokens"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# the parser's upsampling runs whole up to this many C × H × W values, in strips of rows above it
MAX_UPSAMPLE_ELEMENTS = 8_000_000


class QueryEmbedder(Protocol):
    """What a query needs of an embedder (the torch :class:`vision.clip.Embedder` or :class:`OnnxEmbedder`)."""

    name: str
    version: str
    dim: int

    def encode_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray: ...

    def encode_texts(self, texts: list[str], batch_size: int = 128) -> np.ndarray: ...

    def encode_sentences(self, texts: list[str], batch_size: int = 128) -> np.ndarray | None: ...

    def encode_texts_and_sentences(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]: ...


def source_fingerprint(folder: Path) -> dict[str, list[int]]:
    """Size and modification time of a model folder's weight files: an export made from other weights
    is stale."""
    out = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES:
            stat = path.stat()
            out[path.name] = [stat.st_size, stat.st_mtime_ns]
    return out


def export_current(model_folder: Path, export_folder: Path) -> bool:
    """Whether ``export_folder`` holds a finished export of ``model_folder``'s present weights."""
    try:
        serving = json.loads((Path(export_folder) / SERVING_NAME).read_text())
    except (OSError, ValueError):
        return False
    return (
        serving.get("format") == FORMAT
        and "checked" in serving
        and serving.get("source") == source_fingerprint(model_folder)
    )


def _serving_read(folder: Path, kind: str) -> dict[str, Any]:
    serving: dict[str, Any] = json.loads((folder / SERVING_NAME).read_text())
    if serving.get("format") != FORMAT or serving.get("kind") != kind:
        raise ValueError(f"{folder} is not an exported {kind} ({FORMAT})")
    return serving


def _session(path: Path, threads: int) -> Any:
    from vision.ort_runtime import onnxruntime

    ort = onnxruntime()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    # memory a web process keeps: no arena that holds on to a large photo's buffers, and no repacked
    # second copy of the weights (measured: the same speed on these nets)
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.disable_prepacking", "1")
    # no spinning: a process holds several sessions (parser, its upsampling, two towers), and one's
    # threads spinning after a run stole the cores from the next (2 threads: a photo's parse 125 ms
    # spinning against 76 without, 102 on 1 thread)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def _clean_text(text: str) -> str:
    """open_clip's Hugging Face tokenizer cleaning ("whitespace"): fix mojibake, unescape HTML twice,
    collapse whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split())


class TokenVectors:
    """A text tower's word-vector table in a file of float32 rows (one per token id), read a row at a
    time with ``pread``: only the page cache holds the table, shared by every process, and no process
    keeps rows it read once. Safe across threads and forked processes (no shared file offset)."""

    def __init__(self, path: Path, rows: int, width: int) -> None:
        self.rows, self.width = rows, width
        self.row_bytes = width * 4
        size = path.stat().st_size
        if size != rows * self.row_bytes:
            raise ValueError(f"{path} holds {size} bytes, not {rows} rows of {width} float32 values")
        self._file = path.open("rb")

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The rows of ``ids`` (any shape), float32 of shape ``ids.shape + (width,)``."""
        unique, inverse = np.unique(ids, return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= self.rows):
            raise ValueError(f"token ids outside the table of {self.rows} rows")
        fd = self._file.fileno()
        table = np.empty((unique.size, self.width), np.float32)
        for i, token in enumerate(unique.tolist()):
            table[i] = np.frombuffer(os.pread(fd, self.row_bytes, token * self.row_bytes), dtype="<f4")
        return table[inverse.reshape(ids.shape)]


class OnnxEmbedder:
    """An exported shop embedder: normalised image and text vectors, as :class:`vision.clip.Embedder`."""

    def __init__(self, folder: Path, serving: dict[str, Any], threads: int) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.name: str = serving["name"]
        self.version: str = serving["version"]
        self.dim: int = int(serving["dim"])
        image = serving["image"]
        if image.get("resize_mode", "longest") not in ("longest", "squash"):
            raise ValueError(f"resize mode {image.get('resize_mode')!r} is not served by onnxruntime")
        self.size = int(image["size"])
        self.resize_mode = str(image.get("resize_mode", "longest"))
        self.resample = _RESAMPLING[str(image.get("interpolation", "bicubic"))]
        self.fill = int(image.get("fill_color", 0))
        self.mean = np.asarray(image["mean"], np.float32).reshape(3, 1, 1)
        self.std = np.asarray(image["std"], np.float32).reshape(3, 1, 1)
        self.pad_id = int(serving["text"]["pad_token_id"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(serving["text"]["context_length"]))
        # padded to the batch's longest text (the towers mask padding out): a three-word query runs
        # on 6 tokens, not the context length
        self.tokenizer.enable_padding(pad_id=self.pad_id)
        table = serving["text"]["tokens"]
        self.token_vectors = TokenVectors(folder / str(table["file"]), int(table["rows"]), int(table["width"]))
        self.visual = _session(folder / "visual.onnx", threads)
        self.text = _session(folder / "text.onnx", threads)

    @classmethod
    def load(cls, folder: Path, threads: int = 1) -> OnnxEmbedder:
        return cls(Path(folder), _serving_read(Path(folder), "embedder"), threads)

    # ------------------------------------------------------------------------------------- images
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """3 × size × size, as open_clip's inference transform of the model's preprocess config."""
        rgb = to_rgb_on_white(image)
        if self.resize_mode == "squash":
            rgb = rgb.resize((self.size, self.size), self.resample)
        else:  # longest side to size, aspect kept, then centred on a size × size canvas of the fill colour
            ratio = max(rgb.height / self.size, rgb.width / self.size)
            h, w = round(rgb.height / ratio), round(rgb.width / ratio)
            if (w, h) != rgb.size:
                rgb = rgb.resize((w, h), self.resample)
            if (w, h) != (self.size, self.size):
                canvas = Image.new("RGB", (self.size, self.size), (self.fill,) * 3)
                left = (self.size - w) // 2 if w < self.size else -round((w - self.size) / 2.0)
                top = (self.size - h) // 2 if h < self.size else -round((h - self.size) / 2.0)
                canvas.paste(rgb, (left, top))
                rgb = canvas
        x = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        return (x - self.mean) / self.std

    def encode_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.preprocess(im) for im in images[start : start + batch_size]])
            out.append(self.visual.run(["vectors"], {"pixels": batch})[0])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    # --------------------------------------------------------------------------------------- text
    def _tokens(self, texts: list[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch([_clean_text(t) for t in texts])
        return {
            "token_vectors": self.token_vectors.lookup(np.asarray([e.ids for e in encoded], dtype=np.int64)),
            "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
        }

    def encode_texts_and_sentences(
        self, texts: list[str], batch_size: int = 128
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The texts' vectors in the shared space, and the text tower's own sentence vectors."""
        shared, sentences = [], []
        for start in range(0, len(texts), batch_size):
            vectors, pooled = self.text.run(["vectors", "sentences"], self._tokens(texts[start : start + batch_size]))
            shared.append(vectors)
            sentences.append(pooled)
        if not shared:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(shared), np.concatenate(sentences)

    def encode_texts(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        return self.encode_texts_and_sentences(texts, batch_size)[0]

    def encode_sentences(self, texts: list[str], batch_size: int = 128) -> np.ndarray | None:
        return self.encode_texts_and_sentences(texts, batch_size)[1] if texts else None


def _axis_weights(out_n: int, in_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source indices and weights along one axis, as ``F.interpolate(align_corners=False)``."""
    src = np.maximum((np.arange(out_n, dtype=np.float32) + 0.5) * np.float32(in_n / out_n) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), in_n - 1)
    i1 = np.minimum(i0 + 1, in_n - 1)
    return i0, i1, (src - i0).astype(np.float32)


class OnnxParser:
    """An exported garment parser: a photo's label map and items, as :class:`vision.parser.GarmentParser`."""

    def __init__(self, folder: Path, serving: dict[str, Any], threads: int) -> None:
        self.folder = folder
        self.version: str = serving["version"]
        self.working_size = int(serving["working_size"])
        self.min_area_fraction = float(serving["min_area_fraction"])
        self.net = _session(folder / "parser.onnx", threads)
        self.labels_whole = _session(folder / "labels_whole.onnx", threads)
        self.labels_strip = _session(folder / "labels_strip.onnx", threads)

    @classmethod
    def load(cls, folder: Path, threads: int = 1) -> OnnxParser:
        return cls(Path(folder), _serving_read(Path(folder), "parser"), threads)

    def logits(self, image: Image.Image, working_size: int | None = None) -> np.ndarray:
        """C × h × w logits at the working resolution (as ``GarmentParser.logits_batch([image])[0]``);
        ``working_size``: another long side than the parser's own."""
        x, (h, w) = working_pixels(image, working_size or self.working_size)
        batch = np.zeros((1, 3, round_up(h), round_up(w)), np.float32)  # 0 = mid-grey
        batch[0, :, :h, :w] = x
        return self.net.run(["logits"], {"pixels": batch})[0][0, :, :h, :w]

    def upsample_labels(self, logits: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uint8 argmax labels, per-class sum of the winning softmax probability, per-class pixel count)
        of the logits bilinearly upsampled to height × width, as :func:`vision.parser.upsample_labels`."""
        c = logits.shape[0]
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        if c * height * width <= MAX_UPSAMPLE_ELEMENTS:
            sizes = np.asarray([1, c, height, width], np.int64)
            parts = [self.labels_whole.run(["labels", "conf"], {"logits": logits[None], "sizes": sizes})]
        else:  # strips of rows: a large photo never needs a whole C × H × W array
            x0, x1, lx = _axis_weights(width, logits.shape[2])
            y0, y1, ly = _axis_weights(height, logits.shape[1])
            rows = max(1, MAX_UPSAMPLE_ELEMENTS // (c * width))
            parts = [
                self.labels_strip.run(
                    ["labels", "conf"],
                    {
                        "logits": logits,
                        "x0": x0,
                        "x1": x1,
                        "lx": lx,
                        "y0": y0[r0 : r0 + rows],
                        "y1": y1[r0 : r0 + rows],
                        "ly": ly[r0 : r0 + rows, None],
                    },
                )
                for r0 in range(0, height, rows)
            ]
        labels = np.concatenate([p[0].reshape(-1, width) for p in parts]).astype(np.uint8)
        conf = np.concatenate([p[1].reshape(-1, width) for p in parts])
        flat = labels.ravel()
        prob_sum = np.bincount(flat, weights=conf.ravel().astype(np.float64), minlength=c)[:c]
        counts = np.bincount(flat, minlength=c)[:c].astype(np.float64)
        return labels, prob_sum, counts

    def parse(self, image: Image.Image, working_size: int | None = None) -> ParseResult:
        logits = self.logits(image, working_size)
        if logits.shape[0] != len(PARSER_CLASSES):
            raise ValueError(f"the exported parser gives {logits.shape[0]} classes, not {len(PARSER_CLASSES)}")
        labels, prob_sum, counts = self.upsample_labels(logits, image.height, image.width)
        return parse_result(labels, prob_sum, counts, self.min_area_fraction)
