import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def copy_started_at(apps, schema_editor):
    Flow = apps.get_model("tracing", "Flow")
    FlowFacet = apps.get_model("tracing", "FlowFacet")
    for flow_id, started_at in Flow.objects.filter(facets__isnull=False).distinct().values_list("id", "started_at").iterator():
        FlowFacet.objects.filter(flow_id=flow_id).update(started_at=started_at)


class Migration(migrations.Migration):

    dependencies = [
        ("tracing", "0002_business_key_and_facets"),
    ]

    operations = [
        migrations.AddField(
            model_name="flowfacet",
            name="started_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.RunPython(copy_started_at, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="flowfacet", name="facet_unique"),
        migrations.RemoveIndex(model_name="flowfacet", name="facet_flow"),
        migrations.AlterField(
            model_name="flowfacet",
            name="flow",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="facets", to="tracing.flow"),
        ),
        migrations.AddConstraint(
            model_name="flowfacet",
            constraint=models.UniqueConstraint(fields=("flow", "facet", "value"), name="facet_unique"),
        ),
        migrations.AddIndex(
            model_name="flowfacet",
            index=models.Index(fields=["facet", "value", "-started_at", "-flow"], name="facet_newest"),
        ),
    ]
