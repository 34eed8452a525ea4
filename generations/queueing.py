"""The database is the job queue; the broker only carries "run this job now".

Each person and each team may have at most JOB_MAX_IN_FLIGHT_PER_USER and JOB_MAX_IN_FLIGHT_PER_TEAM jobs
running. A task whose job is over a limit leaves it queued (no attempt spent), and every run that ends sends
tasks for the fairest queued jobs: those whose creator and team have the fewest running, oldest first. So
one person's hundred jobs run a few at a time, and a colleague's single job starts at the next free worker.
Each held job gets one task however many runs end at once, and jobs whose task is on the way count against
the limits, so the worker spends its time on runs, not on refusing duplicates (bench/throughput.py).
"""

import logging
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import Team, User
from generations.models import ApiRequest, GenerationJob

logger = logging.getLogger(__name__)

DISPATCH_AT_MOST = 16  # tasks sent when a run ends: enough to fill the slots it and its peers freed


@dataclass(frozen=True)
class Waiting:
    """Why a queued job has not started, for its card: `position` 1 starts next."""

    position: int
    reason: str


def per_user() -> int:
    return max(1, settings.JOB_MAX_IN_FLIGHT_PER_USER)


def per_team() -> int:
    return max(1, settings.JOB_MAX_IN_FLIGHT_PER_TEAM)


@dataclass(frozen=True)
class Running:
    """What runs now: how many jobs per person and per team, and who is at a limit."""

    per_user: Counter[int]
    per_team: Counter[int]

    @classmethod
    def now(cls) -> "Running":
        rows = GenerationJob.objects.filter(status=GenerationJob.Status.RUNNING).values_list(
            "created_by_id", "team_id"
        )
        users: Counter[int] = Counter()
        teams: Counter[int] = Counter()
        for user_id, team_id in rows:
            users[user_id] += 1
            teams[team_id] += 1
        return cls(users, teams)

    @classmethod
    def soon(cls) -> "Running":
        """What runs now plus the jobs whose task is on the way (new, or taken by a dispatch), as far as
        their creator has room: those will claim. Without them, every run that ends would see the slots of
        jobs sent a moment ago as free, and send more jobs than the limits let start."""
        running = cls.now()
        on_the_way = GenerationJob.objects.filter(
            status=GenerationJob.Status.QUEUED, attempts=0, progress_at__isnull=True
        ).values_list("created_by_id", "team_id")
        for user_id, team_id in on_the_way:
            if running.has_room(user_id, team_id):
                running.per_user[user_id] += 1
                running.per_team[team_id] += 1
        return running

    def full_users(self) -> list[int]:
        return [user for user, count in self.per_user.items() if count >= per_user()]

    def full_teams(self) -> list[int]:
        return [team for team, count in self.per_team.items() if count >= per_team()]

    def has_room(self, user_id: int, team_id: int) -> bool:
        return self.per_user[user_id] < per_user() and self.per_team[team_id] < per_team()


def due() -> Q:
    """Not waiting out a lock-out (those carry the time they are due again)."""
    return Q(progress_at__isnull=True) | Q(progress_at__lte=timezone.now())


def claimable(running: Running) -> QuerySet[GenerationJob]:
    """Queued jobs that are due and whose creator and team are under their limits, oldest first."""
    return (
        GenerationJob.objects.filter(due(), status=GenerationJob.Status.QUEUED)
        .exclude(created_by_id__in=running.full_users())
        .exclude(team_id__in=running.full_teams())
        .order_by("created_at", "pk")
    )


def in_flight(*, user_id: int, team_id: int) -> tuple[int, int]:
    """Jobs running for the person (in every team) and for the team, in one query."""
    counts = GenerationJob.objects.filter(
        Q(created_by_id=user_id) | Q(team_id=team_id), status=GenerationJob.Status.RUNNING
    ).aggregate(
        user=Count("pk", filter=Q(created_by_id=user_id)), team=Count("pk", filter=Q(team_id=team_id))
    )
    return counts["user"], counts["team"]


def held_by_limit(job: GenerationJob) -> str:
    """Why the job may not start now because of a limit ("" when it may). Call inside the claim's transaction
    after `lock_for_claim`, so that two claims cannot both take the last slot."""
    user_running, team_running = in_flight(user_id=job.created_by_id, team_id=job.team_id)
    return _limit_reason(user_running, team_running)


def _limit_reason(user_running: int, team_running: int) -> str:
    if user_running >= per_user():
        return (
            f"Waiting: its creator already has {user_running} jobs running (the limit per person is "
            f"{per_user()})."
        )
    if team_running >= per_team():
        return (
            f"Waiting: the team already has {team_running} jobs running (the limit per team is {per_team()})."
        )
    return ""


def lock_for_claim(job: GenerationJob) -> None:
    """Serialise claims of the same team and person: team first, then person, always in this order, so two
    claims never deadlock. (SQLite's IMMEDIATE transactions serialise every write already.)"""
    # FOR NO KEY UPDATE: it does not wait for (nor hold up) the key-share locks of rows referring to the
    # team or person, such as a job being created.
    list(Team.objects.select_for_update(no_key=True).filter(pk=job.team_id).values_list("pk", flat=True))
    list(
        User.objects.select_for_update(no_key=True).filter(pk=job.created_by_id).values_list("pk", flat=True)
    )


def fairest(limit: int = DISPATCH_AT_MOST) -> list[UUID]:
    """The held jobs to start next (queued, never started, their task spent on a refusal: see
    `held_stamp`), as many as the limits leave room for, counting those picked before them, at most
    `limit`: the job of whoever has the fewest running goes first, then the oldest."""
    running = Running.soon()
    picked: list[UUID] = []
    while len(picked) < limit:
        held = claimable(running).filter(attempts=0, progress_at__isnull=False).exclude(pk__in=picked)
        rows = list(held.values_list("pk", "created_by_id", "team_id")[:200])
        before = len(picked)
        while len(picked) < limit:
            room = [row for row in rows if row[0] not in picked and running.has_room(row[1], row[2])]
            if not room:
                break
            # min() keeps the first (oldest) of equals.
            pk, user_id, team_id = min(
                room, key=lambda row: (running.per_user[row[1]], running.per_team[row[2]])
            )
            picked.append(pk)
            running.per_user[user_id] += 1
            running.per_team[team_id] += 1
        if len(rows) < 200 or len(picked) == before:
            break
    return picked


def held_stamp(job_id: UUID | str) -> None:
    """Mark a never-started job whose task was refused by a limit: its task is spent, so a run that ends
    sends it a new one (a job not marked still has its first task on the way)."""
    GenerationJob.objects.filter(pk=job_id, status=GenerationJob.Status.QUEUED, attempts=0).update(
        progress_at=timezone.now()
    )


def held_take(job_id: UUID) -> bool:
    """Take a held job for sending, once: its stamp is cleared (a task is on the way again, as for a new
    job), and only the dispatcher whose conditional UPDATE cleared it sends the task. Runs that end together
    each pick the same fairest jobs; without this each would send them all, and the worker would spend its
    time refusing duplicates while the slots stay empty."""
    return bool(
        GenerationJob.objects.filter(
            pk=job_id, status=GenerationJob.Status.QUEUED, attempts=0, progress_at__isnull=False
        ).update(progress_at=None)
    )


def jobs_dispatch(*, queue: str | None = None) -> int:
    """Send a task for each of the fairest held jobs (after a run ended and freed its slot), to `queue` (the
    one the ending task came from) or the default. Each held job gets one task, however many runs end at
    once (`held_take`); a job that gets two anyway (the reconciler's) runs once: the claim is a conditional
    UPDATE. How many were sent."""
    from generations.tasks import job_run_task  # the task module imports this one

    sent = 0
    try:
        for pk in fairest():
            if not held_take(pk):
                continue  # another run's dispatch sent it
            job_run_task.apply_async((str(pk),), queue=queue)
            sent += 1
    except OperationalError as exc:  # the reconciler sends them once the broker is back
        logger.warning("could not send queued jobs to the workers: %s", exc)
    return sent


def waiting(job: GenerationJob) -> Waiting | None:
    """Where a queued job stands and why it has not started (None once it runs or has ended). Two queries
    at most."""
    if job.status != GenerationJob.Status.QUEUED or job.cancel_requested_at is not None:
        return None
    now = timezone.now()
    if job.progress_at is not None and job.progress_at > now:
        seconds = max(1, round((job.progress_at - now).total_seconds()))
        if job.api_requests.filter(outcome=ApiRequest.Outcome.PENDING).exclude(generation_id="").exists():
            return Waiting(
                position=1,
                reason=f"Stability is still making it; the studio asks for the result again in {seconds} s.",
            )
        return Waiting(
            position=1,
            reason="Waiting for the API: the studio is at Stability's rate limit; "
            f"it tries again in {seconds} s.",
        )
    running = Running.now()
    user_running, team_running = running.per_user[job.created_by_id], running.per_team[job.team_id]
    older = GenerationJob.objects.filter(status=GenerationJob.Status.QUEUED).filter(
        Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, pk__lt=job.pk)
    )
    if user_running >= per_user():
        ahead = older.filter(created_by_id=job.created_by_id).count()
    elif team_running >= per_team():
        ahead = older.filter(team_id=job.team_id).count()
    else:
        # Older jobs held by their own limits, or waiting out a lock-out, do not go first.
        ahead = claimable(running).filter(pk__in=older.values("pk")).count()
        return Waiting(position=ahead + 1, reason="Queued: it starts as soon as a worker is free.")
    return Waiting(position=ahead + 1, reason=_limit_reason(user_running, team_running))
