"""Indexes that let a search filter read narrow index entries instead of the wide product rows:
colour, pattern, category and price in one covering index (index-only scans; the filter compares
lower(colour) / lower(pattern)), and a partial index of the variants in stock for the "in stock" and
"size in stock" filters."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0005_import_job")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS product_filter_facts ON catalog_product "
            "(lower(colour), lower(pattern), category_id, price) INCLUDE (colour, pattern, is_active)",
            "DROP INDEX IF EXISTS product_filter_facts",
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS variant_in_stock ON catalog_variant (product_id) INCLUDE (size) "
            "WHERE stock > 0",
            "DROP INDEX IF EXISTS variant_in_stock",
        ),
    ]
