"""An index of product vectors by (space, updated_at), so that a search process keeping the vectors
in memory finds what changed since it last looked without scanning the table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0006_filter_indexes")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS productvector_space_updated ON catalog_productvector (space_id, updated_at)",
            "DROP INDEX IF EXISTS productvector_space_updated",
        ),
    ]
