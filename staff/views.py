"""Staff pages: multi-file photo upload, live image status, re-run, bulk import jobs and
the catalog health page. Thin: reads through catalog.selectors, writes through catalog.services
and workers.services. Every view requires ``is_staff`` (others go to the admin login) and every
write is a POST with CSRF."""

from __future__ import annotations

import csv
from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import selectors, services
from catalog.models import ImportJob, Product, ProductImage
from search.alternatives import alternatives_for
from search.styles import catalog_style_clusters
from staff.forms import ImageUploadForm, ImportForm
from workers.services import images_reprocess_enqueue, import_job_enqueue, product_images_upload


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _product_url(product_id: int) -> str:
    return reverse("admin:catalog_product_change", args=[product_id])


def _image_rows(**criteria: Any) -> list[dict[str, object]]:
    rows = selectors.image_status_rows(**criteria)
    for row in rows:
        row["product_url"] = _product_url(cast(int, row["product_id"]))  # an int: image_status_rows puts the id
        row["rerun_url"] = reverse("staff:image_rerun", args=[row["id"]])
        duplicate = row["duplicate_of"]
        if isinstance(duplicate, dict):
            duplicate["product_url"] = _product_url(int(duplicate["product_id"]))
    return rows


def _busy(rows: list[dict[str, object]]) -> bool:
    return any(row["status"] in (ProductImage.Status.PENDING, ProductImage.Status.PROCESSING) for row in rows)


# --- photos ------------------------------------------------------------------------------------


@staff_member_required
@require_http_methods(["GET", "POST"])
def image_upload(request: HttpRequest) -> HttpResponse:
    """Drop many photos onto one product (``?product=ID``) or as new products, one per photo."""
    product_id = request.POST.get("product") or request.GET.get("product") or ""
    product: Product | None = None
    if product_id and (not product_id.isdigit() or (product := selectors.product_get_by_id(int(product_id))) is None):
        raise Http404("no such product")
    results: list[services.UploadResult] = []
    form = ImageUploadForm(request.POST or None, request.FILES or None, initial={"product": product_id})
    if request.method == "POST":
        if form.is_valid():
            files = [(f.name or "photo", f.read(), f.content_type or "") for f in form.cleaned_data["files"]]
            try:
                results = product_images_upload(files, product=product)
            except services.StorageUnavailable as exc:
                message = f"The photos could not be stored: {exc}. Try again in a moment; nothing half-stored is left."
                if _wants_json(request):
                    response = JsonResponse({"error": message}, status=503)
                    response["Retry-After"] = str(settings.SHOP_RETRY_AFTER_S)
                    return response
                form.add_error(None, message)
        elif _wants_json(request):
            problems = form.errors.get("files", ["bad request"])  # an ErrorList yields str
            return JsonResponse({"error": "; ".join(str(e) for e in problems)}, status=400)
        if _wants_json(request):
            return JsonResponse(
                {
                    "results": [
                        {**vars(r), "product_url": _product_url(r.product_id) if r.product_id else ""} for r in results
                    ],
                    "stored": sum(r.ok for r in results),
                    "refused": sum(not r.ok for r in results),
                }
            )
    title = f"Add photos to {product.sku}" if product else "Upload photos as new products"
    image_ids = [r.image_id for r in results if r.image_id]
    return render(
        request,
        "staff/upload.html",
        _context(request, title, form=form, product=product, results=results, image_ids=image_ids),
    )


@staff_member_required
@require_GET
def image_status(request: HttpRequest) -> JsonResponse:
    """JSON for the live status panels: ``?product=ID`` or ``?ids=1,2,3``."""
    product_id = request.GET.get("product", "")
    raw_ids = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
    if product_id:
        if not product_id.isdigit():
            return JsonResponse({"error": "product must be a number"}, status=400)
        rows = _image_rows(product_id=int(product_id))
    else:
        if not all(part.strip().isdigit() for part in raw_ids) or len(raw_ids) > 500:
            return JsonResponse({"error": "ids must be up to 500 comma-separated numbers"}, status=400)
        rows = _image_rows(image_ids=[int(part) for part in raw_ids])
    return JsonResponse({"images": rows, "busy": _busy(rows)})


@staff_member_required
@require_POST
def image_rerun(request: HttpRequest, image_id: int) -> HttpResponse:
    """Run the whole pipeline again for one image (through the workers)."""
    image = selectors.image_get(image_id)
    if image is None:
        raise Http404("no such image")
    sent = images_reprocess_enqueue([image.pk])
    note = "queued for processing again" if sent else "saved as pending; the broker is unreachable, the sweep sends it"
    if _wants_json(request):
        return JsonResponse({"id": image.pk, "queued": bool(sent), "message": note})
    messages.success(request, f"{image.product.sku} image {image.pk}: {note}")
    return redirect(_product_url(image.product_id))


# --- bulk import -------------------------------------------------------------------------------


@staff_member_required
@require_http_methods(["GET", "POST"])
def import_start(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        csv_upload = form.cleaned_data["csv_file"]
        zip_upload = form.cleaned_data.get("images_zip")
        try:
            job = services.import_job_create(
                csv_name=csv_upload.name or "catalog.csv",
                csv_content=csv_upload.read(),
                zip_name=(zip_upload.name or "images.zip") if zip_upload else "",
                zip_file=zip_upload.file if zip_upload else None,
                created_by=request.user.get_username(),
            )
        except services.ImportFileError as exc:
            form.add_error("images_zip" if "ZIP" in str(exc) else "csv_file", str(exc))
        else:
            import_job_enqueue(job.pk)
            return redirect("staff:import_detail", job_id=job.pk)
    return render(
        request,
        "staff/import.html",
        _context(request, "Bulk import", form=form, jobs=selectors.import_jobs_recent()),
    )


def _job_or_404(job_id: int) -> ImportJob:
    job = selectors.import_job_get(job_id)
    if job is None:
        raise Http404("no such import")
    return job


def _job_json(job: ImportJob) -> dict[str, object]:
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "done": job.done,
        "total": job.total,
        "percent": 100 if job.status == ImportJob.Status.DONE else round(100 * job.done / max(job.total, 1)),
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "failed": job.failed,
        "images_added": job.images_added,
        "problems": job.problems[:200],
        "error": job.error,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED),
        "report_url": reverse("staff:import_report", args=[job.pk]),
    }


@staff_member_required
@require_GET
def import_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(job_id)
    return render(request, "staff/import_job.html", _context(request, f"Import {job.pk}", job=job, data=_job_json(job)))


@staff_member_required
@require_GET
def import_status(request: HttpRequest, job_id: int) -> JsonResponse:
    return JsonResponse(_job_json(_job_or_404(job_id)))


@staff_member_required
@require_POST
def import_requeue(request: HttpRequest, job_id: int) -> HttpResponse:
    """Send a job that never reached a worker (broker down at upload) again."""
    job = _job_or_404(job_id)
    if job.status != ImportJob.Status.PENDING:
        return HttpResponseBadRequest("only a job still waiting for a worker can be sent again")
    import_job_enqueue(job.pk)
    return redirect("staff:import_detail", job_id=job.pk)


@staff_member_required
@require_GET
def import_report(request: HttpRequest, job_id: int) -> HttpResponse:
    """The bad rows of a job as CSV: line (row number in the file), SKU, problem."""
    job = _job_or_404(job_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-problems.csv"'
    writer = csv.writer(response)
    writer.writerow(["row", "sku", "problem"])
    if job.error:
        writer.writerow(["", "", job.error])
    for problem in job.problems:
        writer.writerow([problem.get("line", ""), problem.get("sku", ""), problem.get("reason", "")])
    return response


# --- catalog health ----------------------------------------------------------------------------


@staff_member_required
@require_GET
def catalog_health(request: HttpRequest) -> HttpResponse:
    health = selectors.catalog_health()
    briefs_needed: list[int] = []
    out_of_stock: list[tuple[Product, list[Any]]] = []
    for product in health.out_of_stock[:20]:
        alternatives = alternatives_for(product.pk, limit=3)
        briefs_needed += [a.product_id for a in alternatives]
        out_of_stock.append((product, alternatives))
    briefs = selectors.product_briefs(briefs_needed)
    out_of_stock_rows = [
        (product, [(a, briefs.get(a.product_id)) for a in alternatives]) for product, alternatives in out_of_stock
    ]
    clusters = catalog_style_clusters()
    return render(
        request,
        "staff/health.html",
        _context(
            request,
            "Catalog health",
            health=health,
            out_of_stock_rows=out_of_stock_rows,
            clusters=clusters,
        ),
    )
