"""The model lifecycle with the real parts: PostgreSQL, Redis, Celery workers (one on the models queue),
the real fallback parser (u2netp + PAN), the real bootstrap embedder and a real, tiny embedder build.

* before any trained model, storefront and API photo search answer 200 with results from the fallbacks;
* a build with a tiny budget runs on the models queue, shows progress, is evaluated and promoted; its
  embedder fills its own space while search keeps the old one, then search switches;
* a build that evaluates worse than the active version stays ready;
* a build whose worker is killed resumes and finishes;
* export → import into an empty models folder restores an identical, activatable version.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image, ImageDraw

from lifecycle import selectors, services
from lifecycle.models import ModelBuild, ModelKind, ModelVersion
from tests.support import REPO
from tests.support.catalogs import catalog_import_processed
from tests.support.checkpoints import reset_parser_cache

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

SHARED_MODELS = REPO.parent / "shared" / "models"


@pytest.fixture
def empty_models(tmp_path: Path, settings) -> Iterator[Path]:
    """A models folder with nothing trained in it: only u2netp, which bin/setup unpacks from PyPI."""
    from lifecycle.serving import serving_caches_clear

    root = tmp_path / "models"
    root.mkdir()
    u2net = Path(settings.MODELS_DIR) / "u2net"
    if not (u2net / "u2netp.onnx").is_file():
        pytest.fail(f"{u2net}/u2netp.onnx is missing: run bin/setup")
    (root / "u2net").symlink_to(u2net.resolve())
    previous = settings.MODELS_DIR
    settings.MODELS_DIR = root
    serving_caches_clear()
    reset_parser_cache()
    yield root
    settings.MODELS_DIR = previous
    serving_caches_clear()
    reset_parser_cache()


def garment_photo(rgb: tuple[int, int, int], kind: int) -> bytes:
    """A garment-like shape on white (what a product shot looks like to u2netp)."""
    image = Image.new("RGB", (160, 220), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    if kind % 2:
        draw.rectangle([40, 20, 120, 200], fill=rgb)  # a dress
    else:
        draw.polygon([(30, 40), (130, 40), (110, 150), (50, 150)], fill=rgb)  # a top
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


COLOURS = {
    "Red": (200, 30, 30),
    "Blue": (30, 60, 200),
    "Black": (25, 25, 25),
    "Green": (40, 160, 60),
    "Yellow": (230, 210, 40),
    "White": (235, 235, 235),
}


def catalog(folder: Path, n: int) -> dict[str, int]:
    """``n`` products with one photo each, imported and processed inline by the real pipeline."""
    names = list(COLOURS)
    rows = []
    for i in range(n):
        colour, kind = names[i % len(names)], ("Top", "Dress")[i % 2]
        title = f"{colour} {kind.lower()} {i}"
        rows.append(
            (f"P{i}", title, f"Women > {kind}s", colour, "Solid", str(10 + i), f"M:{i % 3}", f"G{i}", COLOURS[colour])
        )
    return catalog_import_processed(folder, rows)


def test_before_any_trained_model_photo_search_answers_from_the_fallbacks(empty_models, tmp_path, client):
    from catalog.models import ProductImage
    from search.query_photos import query_photo_store

    if not (SHARED_MODELS / "pan_mnv3s_skin_clothes_hair.onnx").is_file():
        pytest.skip("../shared/models holds no PAN file")
    catalog(tmp_path, 6)
    active = services.models_ensure()
    assert active[ModelKind.PARSER].fallback and active[ModelKind.EMBEDDER].fallback
    assert active[ModelKind.PARSER].version == "fallback:u2netp-minus-pan-skin-hair"
    # every photo says which parser cut it out
    assert set(ProductImage.objects.values_list("parser_version", flat=True)) == {active[ModelKind.PARSER].version}
    photo = garment_photo(COLOURS["Red"], 1)
    upload = io.BytesIO(photo)
    upload.name = "me.jpg"
    response = client.post("/api/v1/search/photo", {"photo": upload})
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["garments"] and body["garments"][0]["label"] == "item"
    assert body["garments"][0]["results"], body
    assert body["models"]["parser_fallback"] and body["models"]["embedder_fallback"]
    token = query_photo_store(photo, "me.jpg", "image/jpeg")
    page = client.get(f"/search/photo/{token}")
    assert page.status_code == 200
    assert b"P1" in page.content or b"red dress" in page.content.lower()
    # text search answers too (keyword and product texts; the untrained image vectors are left out)
    response = client.get("/api/v1/search", {"q": "red dress"})
    assert response.status_code == 200 and response.json()["results"]


def test_a_worse_build_is_not_activated(test_models):
    from lifecycle.builds import _register_candidate

    services.models_ensure()
    active = selectors.version_active(ModelKind.EMBEDDER)
    assert active is not None and active.version == "test-embedder"
    folder = Path(active.location)
    row = _register_candidate(ModelKind.EMBEDDER, "worse-candidate", folder, {"version": "worse-candidate"})
    worse = {"person_r@1": 0.30, "category_top1": 0.50}
    better_active = {"person_r@1": 0.40, "category_top1": 0.55}
    row = services.version_evaluated(row, worse, better_active, active)
    assert row.state == ModelVersion.State.READY
    assert row.comparison["promote"] is False and "<" in row.comparison["reason"]
    assert selectors.version_active(ModelKind.EMBEDDER).version == "test-embedder"
    assert row.card["evaluation"]["gate"]["active"] == better_active
    # the same candidate measured better is promoted (an embedder first fills its space)
    row = services.version_evaluated(row, better_active, worse, active)
    assert row.state == ModelVersion.State.FILLING


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def build_settings(settings) -> None:
    settings.SHOP_MIN_TRAINING_PRODUCTS = 6
    settings.SHOP_BUILD_VITON_PAIRS = 12
    settings.SHOP_BUILD_HEARTBEAT_S = 1
    settings.SHOP_BUILD_LEASE_S = 4


BUILD_ENV = {
    "SHOP_BUILD_VITON_PAIRS": "12",
    "SHOP_BUILD_HEARTBEAT_S": "1",
    "SHOP_BUILD_LEASE_S": "4",
    "SHOP_MIN_TRAINING_PRODUCTS": "6",
    "SHOP_BUILD_NICE": "0",
}


def test_a_background_build_is_evaluated_promoted_and_search_switches_space(
    empty_models, tmp_path, build_settings, worker_factory, client, settings
):
    from catalog import selectors as catalog_selectors
    from catalog.models import EmbeddingSpace
    from search import services as search_services
    from workers.services import models_sweep

    catalog(tmp_path, 12)
    services.models_ensure()
    old = selectors.version_active(ModelKind.EMBEDDER)
    assert old.fallback
    env = {**BUILD_ENV, "SHOP_MODELS_DIR": str(empty_models)}
    worker_factory(env=env, queues=settings.SHOP_MODELS_QUEUE)
    worker_factory(env=env)  # the image queue: fills the new space
    build = services.build_request(ModelKind.EMBEDDER, budget_minutes=0.1, requested_by="test")
    stages = set()

    def finished() -> bool:
        build.refresh_from_db()
        stages.add(build.stage)
        return build.status not in (ModelBuild.Status.QUEUED, ModelBuild.Status.RUNNING)

    wait_for(finished, 400, "the embedder build")
    assert build.status == ModelBuild.Status.DONE, (build.error, build.log[-2000:])
    assert {"training", "evaluate: candidate and active embedder on held-out data"} & stages, stages
    row = build.version
    assert row.comparison["promote"], row.comparison
    assert row.comparison["compared_with"] == old.version
    assert (Path(row.location) / "model_card.json").read_text().count('"gate"') == 1
    # search still reads the old space while the new one fills
    assert catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT).name == old.version
    answered = []
    for _ in range(60):
        response = client.get("/api/v1/search", {"q": "red dress"})
        assert response.status_code == 200
        answered.append(response.json()["models"]["embedder"])
        models_sweep()
        if selectors.version_active(ModelKind.EMBEDDER).version == row.version:
            break
        time.sleep(1)
    assert selectors.version_active(ModelKind.EMBEDDER).version == row.version, answered
    assert set(answered) <= {old.version, row.version}
    space = catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    assert space.name == row.version and catalog_selectors.embedding_space_coverage(space).complete
    assert selectors.version_get(ModelKind.EMBEDDER, old.version).state == ModelVersion.State.RETIRED
    search_services.search_caches_reset()
    response = client.get("/api/v1/search", {"q": "red dress"})
    assert response.json()["models"]["embedder"] == row.version
    assert response.json()["results"]
    # the old space stays for a rollback while the window lasts, then the sweep drops it
    old_space = catalog_selectors.embedding_space_get(old.version)
    assert old_space is not None and old_space.image_vectors.exists()
    models_sweep()
    assert catalog_selectors.embedding_space_get(old.version) is not None
    settings.SHOP_ROLLBACK_KEEP_HOURS = 0
    models_sweep()
    assert catalog_selectors.embedding_space_get(old.version) is None
    assert not catalog_selectors.embedding_space_indexes_valid(old_space)
    with pytest.raises(services.LifecycleError, match="was dropped"):
        services.version_rollback(ModelKind.EMBEDDER)
    search_services.search_caches_reset()
    response = client.get("/api/v1/search", {"q": "red dress"})
    assert response.status_code == 200 and response.json()["results"]
    assert catalog_selectors.embedding_space_coverage(space).complete


def test_a_build_whose_worker_is_killed_resumes_and_finishes(empty_models, tmp_path, build_settings, worker_factory):
    catalog(tmp_path, 8)
    services.models_ensure()
    env = {**BUILD_ENV, "SHOP_MODELS_DIR": str(empty_models)}
    first = worker_factory(env=env, queues=settings.SHOP_MODELS_QUEUE)
    build = services.build_request(ModelKind.EMBEDDER, budget_minutes=0.1, requested_by="test")

    def running() -> bool:
        build.refresh_from_db()
        return build.status == ModelBuild.Status.RUNNING and build.heartbeat_at is not None

    wait_for(running, 120, "the build to start")
    first.kill()
    time.sleep(settings.SHOP_BUILD_LEASE_S + 1)
    build.refresh_from_db()
    assert build.status == ModelBuild.Status.RUNNING  # nobody finished it
    worker_factory(env=env, queues=settings.SHOP_MODELS_QUEUE)
    assert services.builds_resume() == [build.pk]

    def finished() -> bool:
        build.refresh_from_db()
        return build.status not in (ModelBuild.Status.QUEUED, ModelBuild.Status.RUNNING)

    wait_for(finished, 400, "the resumed build")
    assert build.status == ModelBuild.Status.DONE, (build.error, build.log[-2000:])
    assert build.attempts == 2
    assert build.version is not None and build.version.state in (ModelVersion.State.FILLING, ModelVersion.State.READY)


def test_export_then_import_into_an_empty_models_folder_restores_the_version(test_models, tmp_path, settings):
    from lifecycle.serving import serving_caches_clear

    services.models_ensure()
    row = selectors.version_active(ModelKind.EMBEDDER)
    archive = services.version_export(row.version, tmp_path / "out" / "embedder.tar.gz")
    checksums = dict(row.checksums)
    assert checksums and "open_clip_model.safetensors" in checksums
    # another machine: an empty models folder and an empty registry
    ModelVersion.objects.all().delete()
    settings.MODELS_DIR = tmp_path / "other-machine"
    serving_caches_clear()
    imported = services.version_import(archive)
    assert imported.state == ModelVersion.State.READY
    assert imported.checksums == checksums
    assert Path(imported.location).is_relative_to(settings.MODELS_DIR)
    promoted = services.version_promote(imported)
    assert promoted.state in (ModelVersion.State.FILLING, ModelVersion.State.ACTIVE)
    # a damaged archive installs nothing
    broken = tmp_path / "broken.tar.gz"
    shutil.copy(archive, broken)
    data = bytearray(broken.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    ModelVersion.objects.all().delete()
    shutil.rmtree(Path(imported.location))
    with pytest.raises(services.LifecycleError):
        services.version_import(broken)
    assert not ModelVersion.objects.exists()
    assert not Path(imported.location).exists()
    serving_caches_clear()


def test_without_training_data_the_staff_page_says_what_is_missing(test_models, tmp_path, settings, client):
    from django.contrib.auth import get_user_model

    settings.SHOP_TRAINING_DATA = str(tmp_path / "no-data-here")
    services.models_ensure()
    assert not selectors.training_data(ModelKind.PARSER).available
    assert services.builds_auto_request() == []  # nothing to train on: no build, the shop keeps serving
    with pytest.raises(services.LifecycleError, match="no garment-parsing data"):
        services.build_request(ModelKind.PARSER)
    assert client.get("/staff/models/").status_code == 302  # staff only
    client.force_login(get_user_model().objects.create_user("clerk", password="x", is_staff=True))
    page = client.get("/staff/models/").content.decode()
    assert 'data-active="embedder">test-embedder<' in page
    assert 'data-missing="parser"' in page and "SHOP_TRAINING_DATA" in page
    response = client.post("/staff/models/train/", {"kind": "parser"}, follow=True)
    assert "no garment-parsing data" in response.content.decode()
    assert not ModelBuild.objects.exists()
    response = client.post("/staff/models/train/", {"kind": "embedder", "budget_minutes": "-3"}, follow=True)
    assert "positive number of minutes" in response.content.decode()
