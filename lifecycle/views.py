"""The staff "Models" page: thin over ``lifecycle.overview`` (reads) and ``lifecycle.services`` (writes).
Staff only; every write is a POST with CSRF."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from lifecycle import selectors, services
from lifecycle.overview import overview


@staff_member_required
@require_GET
def models_overview(request: HttpRequest) -> HttpResponse:
    info = overview()
    busy = any(kind["build"] is not None for kind in info["kinds"]) or info["filling"] is not None
    context = {**admin.site.each_context(request), "title": "Models", "info": info, "refresh": busy}
    return render(request, "lifecycle/models.html", context)


@staff_member_required
@require_POST
def model_train(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    raw = request.POST.get("budget_minutes", "").strip()
    try:
        budget = float(raw) if raw else None
        services.models_ensure()
        build = services.build_request(kind, budget_minutes=budget, requested_by=f"staff: {request.user}")
    except ValueError as exc:  # LifecycleError is a ValueError; so is a budget that is not a number
        messages.error(request, str(exc) if isinstance(exc, services.LifecycleError) else f"budget: {exc}")
    else:
        messages.success(request, f"{build.kind} build {build.pk} is {build.status}; progress shows below.")
    return redirect("models:overview")


@staff_member_required
@require_POST
def model_activate(request: HttpRequest) -> HttpResponse:
    row = selectors.version_find(request.POST.get("version", ""))
    if row is None:
        messages.error(request, "no such version")
        return redirect("models:overview")
    try:
        row = services.version_promote(row)
    except services.LifecycleError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{row.kind} {row.version} is {row.state}.")
    return redirect("models:overview")
