from django.db import migrations, models


def count_live_items(apps, schema_editor):
    """Every collection's stored count of live images (as generations.library.collections_recount)."""
    Collection = apps.get_model("generations", "Collection")
    CollectionItem = apps.get_model("generations", "CollectionItem")
    live = CollectionItem.objects.filter(collection=models.OuterRef("pk"), image_live=True)
    counted = live.order_by().values("collection").annotate(n=models.Count("pk")).values("n")
    Collection.objects.update(live_count=models.functions.Coalesce(models.Subquery(counted), 0))


class Migration(migrations.Migration):
    dependencies = [("generations", "0005_library")]

    operations = [
        migrations.AddField(model_name="collection", name="live_count", field=models.IntegerField(default=0)),
        migrations.RunPython(count_live_items, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="generationjob",
            index=models.Index(
                condition=models.Q(("status__in", ["queued", "running"])),
                fields=["created_by"],
                name="job_open_by_creator",
            ),
        ),
        migrations.AddIndex(
            model_name="generationjob",
            index=models.Index(
                condition=models.Q(("status__in", ["queued", "running"])),
                fields=["team"],
                name="job_open_by_team",
            ),
        ),
        migrations.AddIndex(
            model_name="generationjob",
            index=models.Index(
                condition=models.Q(("status", "queued")), fields=["created_at"], name="job_queued_oldest"
            ),
        ),
    ]
