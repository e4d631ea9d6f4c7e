from django.db import migrations


def seed(apps, schema_editor):
    from marketplace.catalog import load_catalog

    load_catalog(apps.get_model("marketplace", "AcceleratorModel"))


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
