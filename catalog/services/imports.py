"""Catalog imports: a CSV (with its images) row by row, and staff bulk import jobs (CSV + ZIP)."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.utils import timezone

from catalog.csv_format import CatalogFileError, ProductRow, RowProblem, read_catalog
from catalog.models import (
    ImportJob,
)
from catalog.services.images import _stored_files, atomic_with_files, product_image_add
from catalog.services.products import ProductInput, category_ensure_path, product_set_stock, product_upsert

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    images_added: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} good rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.images_added} new images queued for processing; "
            f"{len(self.problems)} bad rows"
        )


def catalog_import_row(row: ProductRow) -> tuple[str, list[int]]:
    """Write one parsed CSV row in its own transaction. Returns (outcome, ids of the new images)."""
    with atomic_with_files():
        category = category_ensure_path(row.category_path) if row.category_path else None
        product, outcome = product_upsert(
            ProductInput(
                sku=row.sku,
                title=row.title,
                description=row.description,
                price=row.price,
                currency=row.currency,
                colour=row.colour,
                pattern=row.pattern,
                category=category,
                design_group=row.group,
                attributes=row.attributes,
            )
        )
        stock_changed = product_set_stock(product, row.stock)
        added: list[int] = []
        for position, path in enumerate(row.images):
            image, created = product_image_add(product, path.read_bytes(), source_name=path.name, position=position)
            if created:
                added.append(image.pk)
        if outcome == "unchanged" and (stock_changed or added):
            outcome = "updated"
            product.save(update_fields=["updated_at"])
    return outcome, added


def catalog_import_csv(
    csv_path: Path,
    images_root: Path | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_images: Callable[[list[int]], None] | None = None,
) -> ImportReport:
    """Import a catalog CSV (see :mod:`catalog.csv_format`). Idempotent by SKU; each row commits
    alone, so bad rows are reported while the good ones import. ``on_images`` gets the ids of each
    row's new images once that row has committed (the workers queue their processing). Raises
    CatalogFileError when the file as a whole is unusable."""
    if not csv_path.is_file():
        raise CatalogFileError(f"{csv_path} does not exist or is not a file")
    if images_root is not None and not images_root.is_dir():
        raise CatalogFileError(f"images root {images_root} is not a folder")
    rows, problems = read_catalog(csv_path.read_bytes(), images_root, settings.SHOP_DEFAULT_CURRENCY)
    report = ImportReport(problems=list(problems))
    for done, row in enumerate(rows, start=1):
        try:
            outcome, added = catalog_import_row(row)
        except (OSError, ValueError) as exc:  # ImageRejected is a ValueError: the row imports nothing
            report.problems.append(RowProblem(row.line, row.sku, str(exc)))
        else:
            report.rows += 1
            report.images_added += len(added)
            if on_images and added:
                on_images(added)
            setattr(report, outcome, getattr(report, outcome) + 1)
        if on_progress:
            on_progress(done, len(rows))
    report.problems.sort(key=lambda p: p.line)
    logger.info("catalog import of %s: %s", csv_path, report.summary())
    return report


class ImportFileError(ValueError):
    """An uploaded import file (CSV or ZIP) is refused as a whole; the message says why."""


def import_zip_members_check(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The regular files of an images ZIP, after refusing unsafe archives: absolute paths, ``..``,
    symbolic links, too many members, or more uncompressed bytes (or a compression ratio) than a
    photo archive can have (a zip bomb). Raises :class:`ImportFileError` naming the member."""
    max_members = settings.SHOP_IMPORT_ZIP_MAX_MEMBERS
    max_total = settings.SHOP_IMPORT_ZIP_MAX_BYTES
    max_ratio = settings.SHOP_IMPORT_ZIP_MAX_RATIO
    infos = archive.infolist()
    if len(infos) > max_members:
        raise ImportFileError(f"the ZIP holds {len(infos)} entries; at most {max_members} are accepted")
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise ImportFileError(f"the ZIP entry {name!r} has an absolute path; paths must be relative")
        if ".." in parts:
            raise ImportFileError(f"the ZIP entry {name!r} points outside the archive ('..'); it is refused")
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:
            raise ImportFileError(f"the ZIP entry {name!r} is a symbolic link; links are refused")
        if info.flag_bits & 0x1:
            raise ImportFileError(f"the ZIP entry {name!r} is encrypted; upload an archive without a password")
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_total:
            raise ImportFileError(
                f"the ZIP unpacks to more than {max_total // 1024**2} MiB; it looks like a zip bomb or is too large"
            )
        if info.file_size > 1024**2 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise ImportFileError(
                f"the ZIP entry {name!r} expands {info.file_size // max(info.compress_size, 1)}× "
                "(a zip bomb); photos do not compress like that"
            )
        files.append(info)
    return files


def import_zip_extract(zip_path: Path, target: Path) -> int:
    """Unpack the checked ZIP into ``target`` member by member (never ``extractall``), stopping if
    the bytes read exceed what the headers declared. Returns the number of files written."""
    max_total = settings.SHOP_IMPORT_ZIP_MAX_BYTES
    written = 0
    root = target.resolve()
    with zipfile.ZipFile(zip_path) as archive:
        for info in import_zip_members_check(archive):
            dest = root.joinpath(*[p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")])
            if root not in dest.resolve().parents:
                raise ImportFileError(f"the ZIP entry {info.filename!r} points outside the archive")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, dest.open("wb") as out:
                size = 0
                while chunk := src.read(1024 * 1024):
                    size += len(chunk)
                    written += len(chunk)
                    if size > info.file_size or written > max_total:
                        raise ImportFileError(f"the ZIP entry {info.filename!r} unpacks to more than it declares")
                    out.write(chunk)
    return written


def import_job_create(
    *,
    csv_name: str,
    csv_content: bytes,
    zip_name: str = "",
    zip_file: BinaryIO | None = None,
    created_by: str = "",
) -> ImportJob:
    """Check and store an uploaded catalog CSV (and images ZIP) as a pending import job, which the
    caller queues (``workers.services.import_job_enqueue``). A CSV without the required header or an
    unsafe ZIP raises :class:`ImportFileError` and nothing is stored."""
    try:
        read_catalog(csv_content, None, settings.SHOP_DEFAULT_CURRENCY)
    except CatalogFileError as exc:
        raise ImportFileError(f"{csv_name}: {exc}") from None
    if zip_file is not None:
        try:
            with zipfile.ZipFile(zip_file) as archive:
                import_zip_members_check(archive)
        except zipfile.BadZipFile:
            raise ImportFileError(f"{zip_name} is not a ZIP archive") from None
        zip_file.seek(0)
    with atomic_with_files():
        stored = _stored_files.get()
        assert stored is not None
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        csv_stored = default_storage.save(f"imports/{stamp}-catalog.csv", ContentFile(csv_content))
        stored.append(csv_stored)
        zip_stored = ""
        if zip_file is not None:
            zip_stored = default_storage.save(f"imports/{stamp}-images.zip", File(zip_file, name="images.zip"))
            stored.append(zip_stored)
        job = ImportJob.objects.create(
            csv_file=csv_stored,
            zip_file=zip_stored,
            csv_name=csv_name[:300],
            zip_name=zip_name[:300],
            created_by=created_by[:150],
        )
    return job


def import_job_claim(job_id: int) -> bool:
    """Take a pending (or interrupted running) job; a finished one is left alone, so a message
    delivered twice does nothing. Returns whether the caller should run it."""
    return bool(
        ImportJob.objects.filter(pk=job_id, status__in=[ImportJob.Status.PENDING, ImportJob.Status.RUNNING]).update(
            status=ImportJob.Status.RUNNING, started_at=timezone.now(), error=""
        )
    )


def import_job_progress(job_id: int, done: int, total: int) -> None:
    ImportJob.objects.filter(pk=job_id).update(done=done, total=total, updated_at=timezone.now())


def import_job_finish(job_id: int, report: ImportReport | None = None, *, error: str = "") -> None:
    values: dict[str, object] = {"finished_at": timezone.now(), "updated_at": timezone.now()}
    if report is None:
        values.update(status=ImportJob.Status.FAILED, error=error)
    else:
        values.update(
            status=ImportJob.Status.DONE,
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            images_added=report.images_added,
            failed=len(report.problems),
            problems=[{"line": p.line, "sku": p.sku, "reason": p.reason} for p in report.problems],
        )
    ImportJob.objects.filter(pk=job_id).update(**values)


def import_job_run(job_id: int, *, on_images: Callable[[list[int]], None] | None = None) -> str:
    """Run a bulk import job: unpack its ZIP into a private folder, import the CSV with it as the
    images root (idempotent by SKU, each row alone), record progress and the bad rows. Running it
    again (a redelivered message) repeats nothing that is done. ``on_images`` as in
    :func:`catalog_import_csv`. Returns the job's final status."""
    import tempfile

    if not import_job_claim(job_id):
        job = ImportJob.objects.filter(pk=job_id).first()
        return job.status if job else "missing"
    job = ImportJob.objects.get(pk=job_id)
    csv_stored, zip_stored = job.csv_file.name, job.zip_file.name
    if not csv_stored:  # the field is required: only a row written around the form and the API lacks it
        raise ValueError(f"import job {job_id} has no CSV file")
    with tempfile.TemporaryDirectory(prefix="shop-import-") as tmp:
        root = Path(tmp)
        try:
            (root / "catalog.csv").write_bytes(default_storage.open(csv_stored).read())
            images = root / "images"
            images.mkdir()
            if zip_stored:  # what ``if job.zip_file`` tests (FieldFile.__bool__ is bool(name))
                with default_storage.open(zip_stored) as src, (root / "images.zip").open("wb") as out:
                    while chunk := src.read(1024 * 1024):
                        out.write(chunk)
                try:
                    import_zip_extract(root / "images.zip", images)
                except zipfile.BadZipFile:
                    raise ImportFileError(f"{job.zip_name or 'the ZIP'} is not a ZIP archive") from None
            report = catalog_import_csv(
                root / "catalog.csv",
                images,
                on_progress=lambda done, total: import_job_progress(job_id, done, total),
                on_images=on_images,
            )
        except (ImportFileError, CatalogFileError) as exc:
            import_job_finish(job_id, error=str(exc).replace(str(root), "the upload"))
            return ImportJob.Status.FAILED
        # Reasons name the private folder the ZIP was unpacked into; staff know it as "the ZIP".
        report.problems = [
            RowProblem(p.line, p.sku, p.reason.replace(str(images), "the ZIP").replace(str(root), "the upload"))
            for p in report.problems
        ]
        import_job_finish(job_id, report)
    return ImportJob.Status.DONE
