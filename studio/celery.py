import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(related_name="library_tasks")  # the trash purge

# Beat (one per deployment: `make run` starts it with the worker; compose runs it as the `beat` service)
# re-examines every job queued or running past its deadline; see generations/reconcile.py.
RECONCILE_EVERY = float(os.environ.get("JOB_RECONCILE_SECONDS", "30"))
app.conf.beat_schedule = {
    "reconcile-jobs": {
        "task": "generations.tasks.jobs_reconcile_task",
        "schedule": RECONCILE_EVERY,
        # A pass queued behind an outage is dropped, not run late in a pile: the next one does the work.
        "options": {"expires": RECONCILE_EVERY},
    },
    # Images in the trash for 30 days are deleted with their files; see generations/library.py.
    "purge-trash": {"task": "generations.library_tasks.trash_purge_task", "schedule": 3600.0},
}
