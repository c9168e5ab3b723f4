"""A real web server (gunicorn, as ``shop.localstack`` starts it) answers text and photo searches with
the served models exported to ONNX, and its processes never load torch (lifecycle/serving.py,
``SHOP_QUERY_RUNTIME``). The memory this saves is measured by ``python -m bench.web_memory``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image, ImageDraw

from bench.web_memory import photo_search
from shop import localstack
from tests.integration.test_localstack import REPO, free_port, manage, stack

pytestmark = pytest.mark.services


@pytest.fixture
def web(tmp_path: Path, test_models: Path) -> Iterator[dict[str, Any]]:
    pg, rd, port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"postgres://shop@127.0.0.1:{pg}/runtimetest",
        "REDIS_URL": f"redis://127.0.0.1:{rd}/0",
        "SHOP_WEB_PORT": str(port),
        "SHOP_HTTPS": "false",
        "SHOP_MODELS_DIR": str(test_models),  # the test run's real-architecture embedder and parser
        "SHOP_QUERY_RUNTIME": "onnx",
    }
    try:
        stack(env, "start", "postgres", "redis")

        manage(env, "migrate", "--noinput")
        manage(env, "models", "ensure", "--no-build")
        stack(env, "start", "web")
        yield {"env": env, "url": f"http://127.0.0.1:{port}", "layout": localstack.layout_from_env(env)}
    finally:
        subprocess.run([sys.executable, "-m", "shop.localstack", "stop", "web", "redis", "postgres"], env=env, cwd=REPO)
        localstack.stack_data_remove(env)


def photo_upload(url: str) -> dict[str, Any]:
    image = Image.new("RGB", (300, 420), (235, 235, 235))
    ImageDraw.Draw(image).rectangle([80, 60, 220, 380], fill=(180, 30, 40))
    body = io.BytesIO()
    image.save(body, "JPEG")
    return photo_search(url, body.getvalue())


def test_the_web_processes_answer_words_and_photos_without_torch(web, test_models):
    with urllib.request.urlopen(web["url"] + "/api/v1/search?q=red+dress", timeout=60) as response:
        assert response.status == 200
        text = json.loads(response.read())
    assert "results" in text
    photo = photo_upload(web["url"])
    assert photo["models"]["parser_fallback"] is False  # the trained parser answered, not the fallback
    assert (photo["width"], photo["height"]) == (300, 420)

    # both exports were made once, by a child process of the first web process that needed them
    exports = sorted(p.parent.parent.name for p in (test_models / "serving").glob("*/*/serving.json"))
    assert exports == ["embedder", "parser"]

    master = localstack.read_pid(web["layout"].pid_file("web"))
    assert master is not None
    workers = psutil.Process(master).children()
    assert len(workers) >= 1
    for worker in workers:
        mapped = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "onnxruntime" in mapped  # the exported models answered in this process
        assert "libtorch" not in mapped, f"web process {worker.pid} loaded torch"
