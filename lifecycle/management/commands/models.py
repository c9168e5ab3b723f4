"""python manage.py models status|ensure|train|activate|rollback|export|import — the model lifecycle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle import selectors, services
from lifecycle.models import ModelBuild, ModelKind
from lifecycle.overview import build_eta_seconds, overview


class Command(BaseCommand):
    help = (
        "The shop's models: `status` (versions, states, builds with progress, what data is missing), `ensure` "
        "(every kind has an active version; start building what a fallback serves), `train KIND` (queue a build, "
        "or run it here with --inline), `activate VERSION`, `rollback KIND`, `export VERSION FILE`, `import FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="versions, states, metrics, builds and their progress")
        ensure = sub.add_parser("ensure", help="register the first models; queue builds for fallback-served kinds")
        ensure.add_argument("--no-build", action="store_true", help="do not queue any build")
        train = sub.add_parser("train", help="build a new version of a kind (background queue by default)")
        train.add_argument("kind", choices=ModelKind.values)
        train.add_argument("--budget-minutes", type=float, default=None, help="training time budget")
        train.add_argument("--inline", action="store_true", help="run the build in this process (no worker)")
        train.add_argument("--wait", action="store_true", help="follow the queued build until it ends")
        activate = sub.add_parser("activate", help="promote a ready version (an embedder fills its space first)")
        activate.add_argument("version")
        rollback = sub.add_parser("rollback", help="serve the previously active version again")
        rollback.add_argument("kind", choices=ModelKind.values)
        export = sub.add_parser("export", help="write a version (weights, card, checksums) to a .tar.gz")
        export.add_argument("version")
        export.add_argument("out", type=Path)
        imp = sub.add_parser("import", help="install a version written by `models export` (checksums checked)")
        imp.add_argument("archive", type=Path)
        imp.add_argument("--activate", action="store_true", help="promote it at once after the import")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "do_" + options["action"])(options)
        except services.LifecycleError as exc:
            raise CommandError(str(exc)) from exc

    def do_status(self, options: dict[str, Any]) -> None:
        info = overview()
        for kind in info["kinds"]:
            active = kind["active"]
            label = f"{active.version}{' (fallback)' if active.fallback else ''}" if active else "none"
            self.stdout.write(self.style.MIGRATE_HEADING(f"{kind['label']}: active {label}"))
            if not kind["data"].available:
                self.stdout.write(f"  training data missing: {kind['data'].missing}")
            build = kind["build"]
            if build is not None:
                eta = build_eta_seconds(build)
                self.stdout.write(
                    f"  build {build.pk} {build.status}: {build.stage or 'waiting for the models worker'} "
                    f"{build.done}/{build.total}" + (f", about {eta / 60:.0f} min left in this stage" if eta else "")
                )
            for row in kind["versions"]:
                gate = row.comparison.get("reason", "") if row.comparison else ""
                metrics = ", ".join(f"{k} {v}" for k, v in row.metrics.items() if isinstance(v, float))
                self.stdout.write(f"  {row.state:10s} {row.version}  {metrics}  {gate}".rstrip())
        filling = info["filling"]
        if filling:
            cov = filling["coverage"]
            self.stdout.write(
                f"filling {filling['version'].version}: images {cov.images_covered}/{cov.images}, "
                f"products {cov.products_covered}/{cov.products}"
            )
        self.stdout.write(f"images by parser: {info['images_by_parser']}")

    def do_ensure(self, options: dict[str, Any]) -> None:
        for kind, row in services.models_ensure().items():
            self.stdout.write(f"{kind}: {row.version}{' (fallback)' if row.fallback else ''}")
        if options["no_build"]:
            return
        for build in services.builds_auto_request():
            self.stdout.write(f"queued {build.kind} build {build.pk} (the models worker runs it in the background)")
        for kind in ModelKind.values:
            data = selectors.training_data(kind)
            if not data.available and (active := selectors.version_active(kind)) and active.fallback:
                self.stdout.write(f"{kind}: no build — {data.missing}")

    def do_train(self, options: dict[str, Any]) -> None:
        services.models_ensure()
        build = services.build_request(
            options["kind"], budget_minutes=options["budget_minutes"], requested_by="manage.py models train"
        )
        self.stdout.write(f"{build.kind} build {build.pk}: {build.status}")
        if options["inline"]:
            outcome = services.build_run(build.pk)
            build.refresh_from_db()
            self.stdout.write(f"build {build.pk}: {build.status} ({outcome}) {build.error}".rstrip())
            if build.status != ModelBuild.Status.DONE:
                raise CommandError(f"build {build.pk} ended {build.status}: {build.error}")
            return
        while options["wait"]:
            build.refresh_from_db()
            if build.status not in (ModelBuild.Status.QUEUED, ModelBuild.Status.RUNNING):
                self.stdout.write(f"build {build.pk}: {build.status} {build.error}".rstrip())
                break
            self.stdout.write(f"build {build.pk}: {build.status} {build.stage} {build.done}/{build.total}")
            time.sleep(10)

    def do_activate(self, options: dict[str, Any]) -> None:
        row = selectors.version_find(options["version"])
        if row is None:
            raise CommandError(f"no version {options['version']!r}; `manage.py models status` lists them")
        row = services.version_promote(row)
        self.stdout.write(f"{row.kind} {row.version}: {row.state}")

    def do_rollback(self, options: dict[str, Any]) -> None:
        row = services.version_rollback(options["kind"])
        self.stdout.write(f"{row.kind} {row.version}: {row.state}")

    def do_export(self, options: dict[str, Any]) -> None:
        out = services.version_export(options["version"], options["out"])
        self.stdout.write(f"wrote {out}")

    def do_import(self, options: dict[str, Any]) -> None:
        row = services.version_import(options["archive"], progress=self.stdout.write)
        if options["activate"]:
            row = services.version_promote(row)
        self.stdout.write(f"{row.kind} {row.version}: {row.state}")
