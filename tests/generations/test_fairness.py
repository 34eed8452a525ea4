"""Jobs of different people and teams interleave: one person's long queue does not hold up a colleague, and
the per-person and per-team limits on jobs running hold. Driven through the claim a worker's task makes
(each queued job's task arrives in order), and end to end with a real worker."""

import itertools
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from generations import queueing, reconcile, running, services
from generations.models import GenerationJob
from sandbox.models import ApiKey
from tests.conftest import running_worker
from tests.factories import GenerationJobFactory, UserFactory
from tests.jobs_factories import job_make, wait_terminal

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.JOB_MAX_IN_FLIGHT_PER_USER = 4
    settings.JOB_MAX_IN_FLIGHT_PER_TEAM = 6
    return settings


def queued_jobs(user, count: int, *, team=None, start=None) -> list[GenerationJob]:
    """`count` queued jobs, a second apart, oldest first, as a busy person makes them."""
    start = start or timezone.now() - timedelta(hours=1)
    team = team or user.current_team
    return [
        GenerationJobFactory(created_by=user, team=team, created_at=start + timedelta(seconds=i))
        for i in range(count)
    ]


def task_arrives(job: GenerationJob) -> str:
    """What a worker's task for the job does with it: "claimed", or "held" by a limit."""
    try:
        running.job_claim(job_id=job.pk)
    except running.JobHeld:
        return "held"
    return "claimed"


def statuses(jobs: list[GenerationJob]) -> list[str]:
    by_pk = dict(GenerationJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("pk", "status"))
    return [by_pk[job.pk] for job in jobs]


def test_a_colleagues_single_job_starts_while_one_persons_hundred_jobs_wait_their_turn(limits):
    alice, bob = UserFactory(), UserFactory()
    backlog = queued_jobs(alice, 100)
    single = GenerationJobFactory(created_by=bob)  # queued after every one of Alice's

    outcomes = [task_arrives(job) for job in backlog]
    assert outcomes.count("claimed") == 4 and outcomes[:4] == ["claimed"] * 4  # her oldest four run
    assert task_arrives(single) == "claimed"  # Bob's job is not behind her 96 others
    assert statuses(backlog).count("queued") == 96
    # Held jobs are waiting, not failed, and spent no attempt.
    assert set(
        GenerationJob.objects.filter(pk__in=[j.pk for j in backlog[4:]]).values_list("attempts", flat=True)
    ) == {0}


def test_a_held_job_starts_when_a_slot_of_its_creator_frees(limits):
    alice = UserFactory()
    backlog = queued_jobs(alice, 6)
    for job in backlog:
        task_arrives(job)
    assert queueing.fairest() == []  # no room: every held job waits

    running.job_finish(job=backlog[0], status=GenerationJob.Status.SUCCEEDED)
    assert queueing.fairest() == [backlog[4].pk]  # the oldest held job gets the freed slot
    assert task_arrives(backlog[4]) == "claimed"
    assert task_arrives(backlog[5]) == "held"


def test_runs_that_end_together_send_each_held_job_once(limits):
    """Every run that ends picks the fairest held jobs; when several end at once they pick the same ones.
    Only the first to take a job sends its task, so the worker is not flooded with duplicates to refuse
    while the freed slots stay empty (what held throughput at a quarter of the limit)."""
    alice = UserFactory()
    backlog = queued_jobs(alice, 8)
    for job in backlog:
        task_arrives(job)
    running.job_finish(job=backlog[0], status=GenerationJob.Status.SUCCEEDED)
    running.job_finish(job=backlog[1], status=GenerationJob.Status.SUCCEEDED)

    first_end, second_end = queueing.fairest(), queueing.fairest()
    assert first_end == second_end == [backlog[4].pk, backlog[5].pk]
    assert [queueing.held_take(pk) for pk in first_end] == [True, True]
    assert [queueing.held_take(pk) for pk in second_end] == [False, False]
    # Taken jobs have their task on the way: no later dispatch picks them again, and they still claim.
    assert queueing.fairest() == []
    assert [task_arrives(backlog[4]), task_arrives(backlog[5]), task_arrives(backlog[6])] == [
        "claimed",
        "claimed",
        "held",
    ]
    assert queueing.fairest() == []  # full again: the refused one is held, stamped for the next free slot
    assert GenerationJob.objects.get(pk=backlog[6].pk).progress_at is not None


def test_the_freed_slots_go_first_to_whoever_has_the_fewest_running(limits):
    alice, bob = UserFactory(), UserFactory()
    team = alice.current_team
    alices = queued_jobs(alice, 6, team=team)
    bobs = queued_jobs(bob, 3, team=team, start=timezone.now() - timedelta(minutes=30))
    for job in alices + bobs:
        task_arrives(job)
    # The team's six slots: Alice took four, Bob two; each has held jobs.
    assert statuses(alices).count("running") == 4 and statuses(bobs).count("running") == 2

    running.job_finish(job=alices[0], status=GenerationJob.Status.SUCCEEDED)
    running.job_finish(job=alices[1], status=GenerationJob.Status.SUCCEEDED)
    # Two team slots free, and each has two running: the oldest held job first (Alice's), then Bob's, as he
    # now has fewer running than she, though her next job is older than his.
    picked = queueing.fairest()
    assert picked == [alices[4].pk, bobs[2].pk]


def test_the_team_limit_holds_across_its_members(limits):
    team_members = [UserFactory() for _ in range(3)]
    team = team_members[0].current_team
    jobs = [job for member in team_members for job in queued_jobs(member, 3, team=team)]
    outcomes = [task_arrives(job) for job in jobs]
    assert outcomes.count("claimed") == 6  # the team's limit, though no one is at theirs
    outsider = GenerationJobFactory(created_by=UserFactory())
    assert task_arrives(outsider) == "claimed"  # another team is not held by this one


def test_a_person_is_held_by_their_limit_in_every_team(limits):
    alice = UserFactory()
    other = UserFactory().current_team
    first = queued_jobs(alice, 4)
    for job in first:
        task_arrives(job)
    assert task_arrives(GenerationJobFactory(created_by=alice, team=other)) == "held"


def test_waiting_says_where_a_job_stands_and_why_in_two_queries(limits, django_assert_max_num_queries):
    alice, bob = UserFactory(), UserFactory()
    backlog = queued_jobs(alice, 8)
    for job in backlog:
        task_arrives(job)
    single = GenerationJobFactory(created_by=bob)
    held = GenerationJob.objects.get(pk=backlog[6].pk)

    with django_assert_max_num_queries(2):
        alices = queueing.waiting(held)
    assert alices == queueing.Waiting(
        position=3,  # after her two older held jobs
        reason="Waiting: its creator already has 4 jobs running (the limit per person is 4).",
    )
    single.refresh_from_db()
    with django_assert_max_num_queries(2):
        bobs = queueing.waiting(single)
    # Her held jobs are older but do not go first.
    assert bobs == queueing.Waiting(position=1, reason="Queued: it starts as soon as a worker is free.")
    assert queueing.waiting(GenerationJob.objects.get(pk=backlog[0].pk)) is None  # running


def test_waiting_names_the_team_limit_and_a_rate_limit_wait(limits):
    members = [UserFactory() for _ in range(2)]
    team = members[0].current_team
    for job in queued_jobs(members[0], 3, team=team) + queued_jobs(members[1], 3, team=team):
        task_arrives(job)
    late = GenerationJobFactory(created_by=UserFactory(), team=team)
    assert queueing.waiting(late) == queueing.Waiting(
        position=1, reason="Waiting: the team already has 6 jobs running (the limit per team is 6)."
    )
    paused = GenerationJobFactory(attempts=1, progress_at=timezone.now() + timedelta(seconds=42))
    waits = queueing.waiting(paused)
    assert waits is not None and "Stability's rate limit" in waits.reason and "42 s" in waits.reason
    assert queueing.waiting(GenerationJobFactory(status="succeeded", finished_at=timezone.now())) is None


def test_the_reconciler_leaves_held_jobs_waiting_but_sends_them_once_there_is_room(limits, studio_engine):
    alice = UserFactory()
    backlog = queued_jobs(alice, 5, start=timezone.now() - timedelta(hours=1))
    for job in backlog:
        task_arrives(job)
    GenerationJob.objects.filter(pk=backlog[4].pk).update(progress_at=timezone.now() - timedelta(hours=1))
    GenerationJob.objects.filter(pk__in=[j.pk for j in backlog[:4]]).update(progress_at=timezone.now())
    assert reconcile.jobs_reconcile() == {}  # held, not lost: nothing sent, nothing failed

    running.job_finish(job=backlog[0], status=GenerationJob.Status.SUCCEEDED)
    # Room now: the silent held job is sent again (and, tasks running in-process here, it runs).
    assert reconcile.jobs_reconcile() == {"requeued": 1}
    assert GenerationJob.objects.get(pk=backlog[4].pk).status == "succeeded"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_a_colleagues_job_finishes_within_seconds_of_a_long_queue(
    studio_engine, sandbox_url, settings, tmp_path, monkeypatch
):
    """A worker with two threads; each person may run one job at a time. Alice queues a hundred slow jobs,
    then Bob one: it starts at once and finishes in about one job's time, long before her queue. Her jobs
    run one after another, each sent when the one before ends; the rest are cancelled."""
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_PER_USER", "1")
    ApiKey.objects.filter(key=studio_engine).update(latency_ms=700)
    alice, bob = UserFactory(), UserFactory()
    with running_worker("redis", "threads", sandbox_url=sandbox_url, settings=settings, folder=tmp_path):
        backlog = [job_make(alice) for _ in range(100)]
        time.sleep(1)
        single = job_make(bob)
        wait_terminal([single], 20, beat=None)
        bobs = GenerationJob.objects.get(pk=single.pk)
        assert bobs.status == "succeeded"
        # Started at once, at the free worker thread, and finished in one job's time, not a hundred's, with
        # her queue far from done. (Counted by time, not by how many of hers were done: those she finished
        # while she was still queueing hers depend on how fast this machine makes a hundred jobs.)
        assert (bobs.started_at - bobs.created_at).total_seconds() < 2
        assert (bobs.finished_at - bobs.created_at).total_seconds() < 5
        hers = GenerationJob.objects.filter(pk__in=[j.pk for j in backlog])
        assert hers.filter(finished_at__lte=bobs.finished_at).count() < 20
        # Her queue goes on, one at a time: each run that ends sends her next job.
        wait_terminal(backlog[:6], 30, beat=None)
        for job in backlog[6:]:
            services.job_cancel(job=GenerationJob.objects.get(pk=job.pk))
        wait_terminal(backlog, 30, beat=None)
    finished = hers.filter(status="succeeded")
    assert finished.count() >= 6
    assert set(finished.values_list("attempts", flat=True)) == {1}
    # Never more than one of hers at a time: their runs do not overlap.
    spans = sorted(finished.values_list("started_at", "finished_at"))
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    assert set(hers.values_list("status", flat=True)) <= {"succeeded", "cancelled"}
