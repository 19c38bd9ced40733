"""A city-wide drill by SMS: 41,000 on-duty members through the Alibaba Cloud SMS
backend (the real SDK, SendBatchSms, 100 numbers a call) against the local fake
cloud (tests/fakes/cloud.py), paced by the shared Redis token bucket at the
provider's limit.

Prints the time until every message was accepted, the duplicates (a member
texted twice: must be 0, also after the step is run again as a retried task
would), the busiest second as the provider saw it, and the worker's peak RSS.

    .venv/bin/python bench/sms_drill.py [--members 41000] [--qps 100] [--concurrency 8]

The fake cloud runs in a process of its own (``CloudProcess``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=41_000)
    parser.add_argument("--qps", type=float, default=100.0)
    parser.add_argument("--profile", action="store_true", help="profile the drill's step")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="provider calls in flight per worker"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the step (and the bucket)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sms-drill-"))
    from config.embedded_redis import free_port, redis_start

    redis_port = free_port()
    redis = redis_start(port=redis_port, data_dir=tmp / "redis", persist=False)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(tmp),
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "ALIYUN_PROTOCOL": "http",
            "ALIYUN_SMS_QPS": str(args.qps),
            "ALIYUN_SMS_SIGN": "应急",
            "ALIYUN_SMS_TEMPLATE": "SMS_1",
            "NOTIFY_BACKENDS": '{"sms": "dispatch.gateways.aliyun.AliyunSmsBackend"}',
            "NOTIFY_CHAIN": '[{"channel": "sms", "after_s": 0, "while": "unanswered"}]',
        }
    )
    import django

    django.setup()
    from django.conf import settings

    # Imported once Django is set up: the fake cloud checks signatures with the
    # government platform's helpers, which import dispatch's models.
    from tests.fakes.cloud import ALIYUN_AK, ALIYUN_SECRET

    cloud = CloudProcess()
    settings.NOTIFY_GATEWAYS["aliyun_sms"].update(
        access_key_id=ALIYUN_AK,
        access_key_secret=ALIYUN_SECRET,
        endpoint=cloud.endpoint,
        concurrency=args.concurrency,
    )
    try:
        run(args, cloud)
    finally:
        cloud.stop()
        redis.kill()
        redis.wait()


class CloudProcess:
    """The fake cloud in a process of its own: the provider is another machine,
    and its signature checks and JSON must not share the worker's interpreter
    (and GIL), nor count in the worker's memory. Arrival times are
    ``time.monotonic()``, one clock for both processes."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_cloud_serve, args=(child,), daemon=True)
        self._proc.start()
        self.endpoint = self._conn.recv()

    def calls(self, provider: str, action: str | None = None) -> list:
        self._conn.send(("calls", provider, action))
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send(("stop",))
        self._proc.join(timeout=10)


def _cloud_serve(conn) -> None:
    from tests.fakes.cloud import FakeCloud

    cloud = FakeCloud().start()
    conn.send(cloud.endpoint)
    while True:
        message = conn.recv()
        if message[0] == "stop":
            cloud.stop()
            return
        conn.send(cloud.calls(message[1], message[2]))


def run(args, cloud) -> None:
    import django
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from dispatch import notify
    from dispatch.models import Delivery, Dispatch, Incident, NotificationAttempt, Wave
    from units.models import Member, Region, Unit

    started = time.monotonic()
    region = Region.objects.create(code="B0001", name="bench", level=Region.Level.STREET)
    per_unit = 3
    n_units = -(-args.members // per_unit)
    Unit.objects.bulk_create(
        Unit(
            code=f"BU{i:06d}",
            name=f"u{i}",
            kind=Unit.Kind.MALL,
            region=region,
            lat=23.13,
            lon=113.32,
        )
        for i in range(n_units)
    )
    units = list(Unit.objects.values_list("pk", flat=True))
    Member.objects.bulk_create(
        (
            Member(name=f"m{i}", phone=f"139{i:08d}", unit_id=units[i // per_unit], on_duty=True)
            for i in range(args.members)
        ),
        batch_size=5000,
    )
    incident = Incident.objects.create(
        kind="knife",
        lat=23.13,
        lon=113.32,
        source="drill",
        is_drill=True,
        policy={},
        discovered_at=django.utils.timezone.now(),
        region=region,
    )
    wave = Wave.objects.create(incident=incident, number=1, radius_m=50_000)
    Dispatch.objects.bulk_create(
        (
            Dispatch(
                incident=incident, wave=wave, unit_id=u, rank=1, distance_m=100 + i % 900, eta_s=60
            )
            for i, u in enumerate(units)
        ),
        batch_size=5000,
    )
    dispatch_of = dict(Dispatch.objects.values_list("unit_id", "pk"))
    Delivery.objects.bulk_create(
        (
            Delivery(dispatch_id=dispatch_of[unit_id], member_id=pk)
            for pk, unit_id in Member.objects.values_list("pk", "unit_id")
        ),
        batch_size=5000,
    )
    print(f"setup: {args.members} members, {n_units} units in {time.monotonic() - started:.1f}s")

    # A worker imports its backend (and the provider's SDK, seconds of imports)
    # once when it starts, not per drill.
    notify.backend_for("sms")
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.monotonic()
    cpu0 = _cpu_s()
    if args.workers > 1:
        sent, worker_rss = _in_workers(wave_id=wave.pk, workers=args.workers)
    else:
        sent = notify.chain_step(wave_id=wave.pk, step=0, schedule_next=False)
        worker_rss = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
    if profiler is not None:
        profiler.disable()
        profiler.print_stats(os.environ.get("PROFILE_SORT", "cumulative"))
    elapsed = time.monotonic() - t0
    # The worker's own CPU (both forked workers when --workers > 1): on a shared,
    # loaded machine the wall time measures the others too; this does not.
    cpu = _cpu_s() - cpu0
    again = notify.chain_step(wave_id=wave.pk, step=0, schedule_next=False)  # a retried task

    arrivals = cloud.calls("aliyun", "SendBatchSms") + cloud.calls("aliyun", "SendSms")
    counts = Counter(phone for a in arrivals for phone in a.phones)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    times = sorted(a.at for a in arrivals)
    last = times[-1] - t0 if times else 0.0
    busiest = max(
        (sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0
    )
    rss = ", ".join(f"{r:.0f}" for r in worker_rss)
    print(f"accepted: {sent} members in {len(arrivals)} calls; second run sent {again}")
    print(f"time until every message accepted: {last:.1f}s (step returned after {elapsed:.1f}s)")
    print(f"provider limit {args.qps:.0f} QPS; busiest second at the provider: {busiest} calls")
    print(f"members never texted: {args.members - len(counts)}; duplicates: {duplicates}")
    print(f"attempt rows: {NotificationAttempt.objects.count()}; worker peak RSS (MB): {rss}")
    print(f"worker CPU: {cpu:.1f}s, {1000 * cpu / max(sent, 1):.2f} ms a member")


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # joined workers only
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _in_workers(*, wave_id: int, workers: int) -> tuple[int, list[float]]:
    """Split the wave's members over forked worker processes, as several Celery
    workers would: each claims and sends its share; Redis paces them together."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # a forked child must open its own
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(wave_id, i, workers, results)) for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    answers = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(a[0] for a in answers), [a[1] for a in answers]


def _worker(wave_id: int, index: int, workers: int, results) -> None:
    from django.db.models.functions import Mod

    from dispatch import notify

    deliveries = notify.deliveries_load(
        notify._pending(wave_id=wave_id, condition="unanswered")
        .annotate(share=Mod("pk", workers))
        .filter(share=index)
    )
    sent = notify.notify_deliveries(channel="sms", deliveries=deliveries)
    results.put((sent, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
