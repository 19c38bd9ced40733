from __future__ import annotations

import contextlib
import csv
import io
import socket

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from tests.factories import EquipmentFactory, MemberFactory, StaffFactory, UnitFactory, UserFactory
from units import importing, services
from units.importing import RosterFileError, roster_import
from units.models import Equipment, ImportJob, Member, Region, RosterChange, StaffProfile, Unit

pytestmark = pytest.mark.django_db

UNIT_HEADER = ["单元编码", "单元名称", "类型", "街镇代码", "地址", "纬度", "经度"]
MEMBER_HEADER = ["手机号", "姓名", "单元编码", "角色"]
KIT_HEADER = ["单元编码", "装备", "数量", "状态", "上次检查", "有效期至"]


def csv_bytes(header: list[str], rows: list[list], encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def unit_row(code: str, street: Region, **over) -> list:
    row = {
        "name": f"单元{code}",
        "kind": "商场",
        "address": "天河路1号",
        "lat": 23.13,
        "lon": 113.32,
    }
    row |= over
    return [code, row["name"], row["kind"], street.code, row["address"], row["lat"], row["lon"]]


def run(data: bytes, user, dry_run: bool = False, filename: str = "roster.csv"):
    return roster_import(data=data, filename=filename, user=user, dry_run=dry_run)


def errors_of(report) -> list[tuple[int | None, str]]:
    return [(e.row, e.field) for e in report.errors]


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


# --- dry run and commit ----------------------------------------------------------------


def test_dry_run_previews_new_updated_and_unchanged_rows_and_writes_nothing(
    tianhe_street, superuser
):
    UnitFactory(code="A1", name="旧名", region=tianhe_street, kind="mall", lat=23.13, lon=113.32)
    UnitFactory(code="A2", name="单元A2", region=tianhe_street, kind="mall", lat=23.13, lon=113.32)
    Unit.objects.filter(code="A2").update(address="天河路1号")
    data = csv_bytes(
        UNIT_HEADER,
        [
            unit_row("A1", tianhe_street, name="新名"),
            unit_row("A2", tianhe_street),
            unit_row("A3", tianhe_street),
        ],
    )

    report = run(data, superuser, dry_run=True)

    sheet = report.sheets[0]
    assert (sheet.kind, sheet.rows, sheet.new, sheet.updated, sheet.unchanged) == (
        "unit",
        3,
        1,
        1,
        1,
    )
    changed = next(s for s in sheet.sample if s["key"] == "A1")
    assert changed["action"] == "update"
    assert changed["changes"]["name"] == ["旧名", "新名"]
    assert report.ok and not report.committed
    assert Unit.objects.get(code="A1").name == "旧名"
    assert not Unit.objects.filter(code="A3").exists()


def test_import_creates_units_members_and_kit_from_one_workbook(tianhe_street, superuser):
    book = openpyxl.Workbook()
    units = book.active
    units.title = "单元"
    units.append(UNIT_HEADER)
    units.append(unit_row("B1", tianhe_street))
    members = book.create_sheet("队员")
    members.append(MEMBER_HEADER)
    members.append([13800138000, "张三", "B1", "负责人"])  # Excel keeps phones as numbers
    kit = book.create_sheet("装备")
    kit.append(KIT_HEADER)
    kit.append(["B1", "盾牌", 2, "完好", "2026-01-05", "2029-01-01"])
    out = io.BytesIO()
    book.save(out)

    report = run(out.getvalue(), superuser, filename="city.xlsx")

    assert report.ok, report.errors
    unit = Unit.objects.get(code="B1")
    member = Member.objects.get(phone="13800138000")
    assert (member.unit, member.role) == (unit, "leader")
    shield = Equipment.objects.get(unit=unit, kind="shield")
    assert (shield.quantity, str(shield.last_inspected)) == (2, "2026-01-05")


def test_importing_the_same_file_twice_updates_instead_of_duplicating(tianhe_street, superuser):
    UnitFactory(code="C1", region=tianhe_street)
    members = csv_bytes(MEMBER_HEADER, [["13900000001", "李四", "C1", "队员"]])
    kit = csv_bytes(KIT_HEADER, [["C1", "钢叉", 1, "完好", "", ""]])

    run(members, superuser)
    run(kit, superuser)
    second = run(csv_bytes(MEMBER_HEADER, [["139 0000 0001", "李四四", "C1", "队员"]]), superuser)
    run(csv_bytes(KIT_HEADER, [["C1", "steel_fork", 3, "", "", ""]]), superuser)

    assert (second.sheets[0].new, second.sheets[0].updated) == (0, 1)
    assert list(Member.objects.values_list("phone", "name")) == [("13900000001", "李四四")]
    assert list(Equipment.objects.values_list("kind", "quantity")) == [("steel_fork", 3)]


def test_a_member_can_move_to_a_unit_created_in_the_same_file(tianhe_street, superuser):
    old = UnitFactory(code="D1", region=tianhe_street)
    member = MemberFactory(unit=old, phone="13700000000")
    book = openpyxl.Workbook()
    book.active.title = "单元"
    book.active.append(UNIT_HEADER)
    book.active.append(unit_row("D2", tianhe_street))
    sheet = book.create_sheet("队员")
    sheet.append(MEMBER_HEADER)
    sheet.append(["13700000000", member.name, "D2", "队员"])
    out = io.BytesIO()
    book.save(out)

    report = run(out.getvalue(), superuser, filename="move.xlsx")

    assert report.ok, report.errors
    assert Member.objects.get(pk=member.pk).unit.code == "D2"
    assert report.sheets[1].sample[0]["changes"]["unit"] == ["D1", "D2"]


def test_a_committed_import_records_history_by_the_importing_user(tianhe_admin, tianhe_street):
    UnitFactory(code="E1", name="旧", region=tianhe_street, lat=23.13, lon=113.32)
    data = csv_bytes(
        UNIT_HEADER, [unit_row("E1", tianhe_street, name="新"), unit_row("E2", tianhe_street)]
    )

    run(data, tianhe_admin, filename="e.csv")

    history = Unit.history.filter(history_user=tianhe_admin).order_by("code")
    assert [(h.code, h.history_type, h.history_user) for h in history] == [
        ("E1", "~", tianhe_admin),
        ("E2", "+", tianhe_admin),
    ]
    assert history[0].history_change_reason == "e.csv"
    assert history[0].name == "新"


def test_a_committed_import_asks_every_process_to_reload_its_unit_index(tianhe_street, superuser):
    RosterChange.objects.all().delete()

    run(csv_bytes(UNIT_HEADER, [unit_row("F1", tianhe_street)]), superuser)

    assert list(RosterChange.objects.values_list("unit_id", flat=True)) == [None]


# --- bad rows: all listed, nothing written -----------------------------------------------


def test_every_bad_row_is_listed_with_row_column_and_message_and_nothing_is_written(
    tianhe_street, superuser
):
    data = csv_bytes(
        UNIT_HEADER,
        [
            unit_row("G1", tianhe_street),  # good: row 2
            unit_row("G2", tianhe_street, lat=95),  # row 3
            unit_row("G3", tianhe_street, kind="飞机场"),  # row 4
            ["", "无编码", "商场", tianhe_street.code, "", 23.1, 113.3],  # row 5
            unit_row("G1", tianhe_street),  # row 6: duplicate of row 2
            ["G6", "x", "商场", "999999", "", 23.1, 113.3],  # row 7: unknown street
            unit_row("G7", tianhe_street, lon="东经113"),  # row 8
        ],
    )

    report = run(data, superuser)

    assert errors_of(report) == [
        (3, "纬度"),
        (4, "类型"),
        (5, "单元编码"),
        (6, "单元编码"),
        (7, "街镇代码"),
        (8, "经度"),
    ]
    assert "第 2 行重复" in report.errors[3].message
    assert not report.committed
    assert not Unit.objects.exists()


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        ("1380013800", "11 位"),
        ("23800138000", "11 位"),
        ("1.38001E+10", "科学计数法"),
        ("", "不能为空"),
    ],
)
def test_a_bad_phone_number_is_a_row_error(tianhe_street, superuser, phone, message):
    UnitFactory(code="H1", region=tianhe_street)

    report = run(csv_bytes(MEMBER_HEADER, [[phone, "王五", "H1", "队员"]]), superuser)

    assert errors_of(report) == [(2, "手机号")]
    assert message in report.errors[0].message
    assert not Member.objects.exists()


def test_phone_numbers_are_normalised(tianhe_street, superuser):
    UnitFactory(code="H2", region=tianhe_street)

    run(csv_bytes(MEMBER_HEADER, [["+86 138-0013-8001", "赵六", "H2", "队员"]]), superuser)

    assert Member.objects.get().phone == "13800138001"


def test_duplicate_phones_and_kit_lines_inside_one_file_are_row_errors(tianhe_street, superuser):
    UnitFactory(code="H3", region=tianhe_street)
    members = csv_bytes(
        MEMBER_HEADER, [["13800138002", "甲", "H3", "队员"], ["13800138002", "乙", "H3", "队员"]]
    )
    kit = csv_bytes(KIT_HEADER, [["H3", "盾牌", 2, "", "", ""], ["H3", "shield", 3, "", "", ""]])

    assert errors_of(run(members, superuser)) == [(3, "手机号")]
    assert errors_of(run(kit, superuser)) == [(3, "装备")]


def test_coordinates_outside_the_service_area_are_row_errors(tianhe, tianhe_street, superuser):
    box = [[113.30, 23.10], [113.40, 23.10], [113.40, 23.20], [113.30, 23.20], [113.30, 23.10]]
    Region.objects.filter(pk=tianhe.pk).update(boundary={"type": "Polygon", "coordinates": [box]})
    services.district_shapes_reset()
    data = csv_bytes(
        UNIT_HEADER,
        [unit_row("I1", tianhe_street), unit_row("I2", tianhe_street, lat=23.05)],
    )

    report = run(data, superuser)

    assert errors_of(report) == [(3, "纬度")]
    assert "服务区域" in report.errors[0].message
    assert not Unit.objects.exists()


# --- scope ------------------------------------------------------------------------------


def test_a_district_admin_cannot_import_units_into_another_district(
    tianhe_admin, tianhe_street, haizhu_street
):
    data = csv_bytes(UNIT_HEADER, [unit_row("J1", tianhe_street), unit_row("J2", haizhu_street)])

    report = run(data, tianhe_admin)

    assert errors_of(report) == [(3, "街镇代码")]
    assert "不在您的管辖范围" in report.errors[0].message
    assert not Unit.objects.exists()


def test_a_district_admin_cannot_update_units_or_members_of_another_district(
    tianhe_admin, tianhe_street, far_unit
):
    far_member = MemberFactory(unit=far_unit)
    UnitFactory(code="K1", region=tianhe_street)
    units = csv_bytes(UNIT_HEADER, [unit_row(far_unit.code, tianhe_street)])
    members = csv_bytes(
        MEMBER_HEADER,
        [
            [far_member.phone, "抢来的", "K1", "队员"],
            ["13600000000", "新人", far_unit.code, "队员"],
        ],
    )

    assert errors_of(run(units, tianhe_admin)) == [(2, "单元编码")]
    assert errors_of(run(members, tianhe_admin)) == [(2, "手机号"), (3, "单元编码")]
    assert Member.objects.get(pk=far_member.pk).unit_id == far_unit.pk
    assert Unit.objects.get(pk=far_unit.pk).region_id == far_unit.region_id


def test_a_police_reviewer_may_not_import(tianhe, tianhe_street):
    reviewer = StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=tianhe).user

    with pytest.raises(PermissionError):
        run(csv_bytes(UNIT_HEADER, [unit_row("L1", tianhe_street)]), reviewer)


# --- the file as a whole --------------------------------------------------------------------


def test_a_gbk_file_from_excel_imports_like_utf8(tianhe_street, superuser):
    data = csv_bytes(UNIT_HEADER, [unit_row("M1", tianhe_street, name="天河城应急单元")], "gbk")

    report = run(data, superuser)

    assert report.ok and report.encoding == "gb18030"
    assert Unit.objects.get(code="M1").name == "天河城应急单元"


def test_a_file_in_an_unknown_encoding_is_refused_clearly(superuser):
    data = "单元编码,单元名称".encode("utf-16-le")[:-1] + b"\xff\xfe\x00\xd8"

    with pytest.raises(RosterFileError) as exc:
        run(data, superuser)

    assert "编码" in exc.value.messages[0]


def test_missing_columns_are_named(superuser):
    data = csv_bytes(["单元编码", "单元名称", "纬度"], [["N1", "x", 23.1]])

    with pytest.raises(RosterFileError) as exc:
        run(data, superuser)

    assert "缺少列" in exc.value.messages[0]
    assert "类型、街镇代码、经度" in exc.value.messages[0]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(settings, superuser):
    settings.ROSTER_IMPORT_MAX_BYTES = 1024

    with pytest.raises(RosterFileError) as exc:
        run(b"x" * 2048, superuser)

    assert "文件过大" in exc.value.messages[0]


def test_an_old_xls_file_is_refused_with_advice(superuser):
    with pytest.raises(RosterFileError) as exc:
        run(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, superuser, filename="a.xls")

    assert ".xlsx" in exc.value.messages[0]


def test_an_exported_file_imports_back_unchanged(near_unit, near_member, superuser):
    EquipmentFactory(unit=near_unit, kind="radio", quantity=2)
    data = importing.roster_export_xlsx(user=superuser, kinds=importing.KINDS)

    report = run(data, superuser, dry_run=True, filename="export.xlsx")

    assert report.ok, report.errors
    assert [(s.kind, s.unchanged, s.new, s.updated) for s in report.sheets] == [
        ("unit", 1, 0, 0),
        ("member", 1, 0, 0),
        ("equipment", 1, 0, 0),
    ]


# --- command -------------------------------------------------------------------------------


def test_import_roster_command_exits_non_zero_naming_the_bad_rows(tmp_path, tianhe_street):
    path = tmp_path / "units.csv"
    path.write_bytes(
        csv_bytes(
            UNIT_HEADER, [unit_row("P1", tianhe_street), unit_row("P2", tianhe_street, lat=99)]
        )
    )
    err = io.StringIO()

    with pytest.raises(CommandError) as exc:
        call_command("import_roster", str(path), stderr=err, verbosity=0)

    assert "rows 3" in str(exc.value)
    assert "row 3 [纬度]" in err.getvalue()
    assert not Unit.objects.exists()


def test_import_roster_command_dry_run_then_import_as_a_district_admin(
    tmp_path, tianhe_admin, tianhe_street
):
    path = tmp_path / "units.csv"
    path.write_bytes(csv_bytes(UNIT_HEADER, [unit_row("Q1", tianhe_street)]))
    out = io.StringIO()

    call_command("import_roster", str(path), "--dry-run", stdout=out, verbosity=0)
    assert not Unit.objects.exists()
    call_command("import_roster", str(path), "--as", tianhe_admin.username, stdout=out, verbosity=0)

    assert Unit.history.get(code="Q1").history_user == tianhe_admin
    assert "1 new" in out.getvalue()


# --- Celery job and admin pages -------------------------------------------------------------


def test_an_upload_is_previewed_by_a_job_and_committed_on_confirm(
    tianhe_admin, tianhe_street, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(tianhe_admin)
    upload = SimpleUploadedFile(
        "units.csv", csv_bytes(UNIT_HEADER, [unit_row("R1", tianhe_street)]), "text/csv"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:units_importjob_add"), {"file": upload})
    preview = ImportJob.objects.get()
    status = client.get(reverse("admin:units_importjob_status", args=[preview.pk])).json()
    page = client.get(response["Location"])

    assert response.status_code == 302
    assert (status["status"], status["finished"], status["percent"]) == ("done", True, 100)
    assert page.context["can_confirm"] is True
    assert not Unit.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(reverse("admin:units_importjob_confirm", args=[preview.pk]))
    commit = ImportJob.objects.get(previewed=preview)

    assert confirmed.status_code == 302
    assert (commit.status, commit.dry_run, commit.result["committed"]) == ("done", False, True)
    assert Unit.objects.get(code="R1").region == tianhe_street
    assert commit.data is None and ImportJob.objects.get(pk=preview.pk).data is None


@pytest.fixture
def redis_url_listener(settings):
    """REDIS_URL pointed at a throwaway TCP listener this test owns: any client
    that connects to it (as one would to the live system's Redis) is counted."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"

    def connections() -> int:
        # The kernel completes the handshake and queues it even if the client
        # gave up at once: a pending accept is a connection attempt.
        listener.settimeout(0.05)
        count = 0
        with contextlib.suppress(TimeoutError):
            while True:
                conn, _addr = listener.accept()
                conn.close()
                count += 1
        return count

    yield connections
    listener.close()


def test_an_import_under_eager_celery_connects_to_no_redis(
    tianhe_admin, tianhe_street, redis_url_listener, django_capture_on_commit_callbacks
):
    """Unit tests must not reach a Redis they did not start (REDIS_URL is the live
    system's when one runs): the whole upload, poll and confirm path stays off it."""
    client = Client()
    client.force_login(tianhe_admin)
    upload = SimpleUploadedFile(
        "units.csv", csv_bytes(UNIT_HEADER, [unit_row("N1", tianhe_street)]), "text/csv"
    )

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:units_importjob_add"), {"file": upload})
    preview = ImportJob.objects.get()
    client.get(reverse("admin:units_importjob_status", args=[preview.pk]))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:units_importjob_confirm", args=[preview.pk]))

    assert Unit.objects.filter(code="N1").exists()
    assert redis_url_listener() == 0


def test_a_worker_run_shows_its_write_progress_from_a_redis_the_test_started(
    tmp_path, settings, monkeypatch, tianhe_admin, tianhe_street
):
    """The worker's path (live progress) against a Redis this test starts and stops."""
    from tests.e2e.harness import redis_start_owned

    proc, port = redis_start_owned(data_dir=tmp_path / "redis")
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        job = ImportJob.objects.create(
            created_by=tianhe_admin,
            filename="units.csv",
            data=csv_bytes(UNIT_HEADER, [unit_row("W1", tianhe_street)]),
            dry_run=False,
        )
        seen = []
        real_update = importing.JobProgress.__call__

        def watch(progress, phase, done, total):
            real_update(progress, phase, done, total)
            if phase == "write":
                running = ImportJob.objects.get(pk=job.pk)
                running.status, running.phase = ImportJob.Status.RUNNING, "write"
                seen.append(importing.import_job_status(job=running))

        # A spy around the real progress reporter: it polls the status mid-write,
        # where the job row cannot show the figures and only Redis can.
        monkeypatch.setattr(importing.JobProgress, "__call__", watch)
        importing.import_job_run(job_id=job.pk, live_progress=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert Unit.objects.filter(code="W1").exists()
    assert (seen[-1]["phase"], seen[-1]["done"], seen[-1]["total"]) == ("write", 1, 1)


def test_a_job_with_bad_rows_cannot_be_confirmed_and_lists_them(
    tianhe_admin, haizhu_street, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(tianhe_admin)
    data = csv_bytes(UNIT_HEADER, [unit_row("S1", haizhu_street)])

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:units_importjob_add"),
            {"file": SimpleUploadedFile("u.csv", data, "text/csv")},
        )
    job = ImportJob.objects.get()
    page = client.get(reverse("admin:units_importjob_change", args=[job.pk]))
    errors_csv = client.get(reverse("admin:units_importjob_errors", args=[job.pk]))

    assert job.status == "failed"
    assert page.context["can_confirm"] is False
    assert "不在您的管辖范围" in page.content.decode()
    assert "不在您的管辖范围" in b"".join(errors_csv.streaming_content).decode("utf-8-sig")
    confirm = client.post(reverse("admin:units_importjob_confirm", args=[job.pk]))
    assert confirm.status_code == 302
    assert ImportJob.objects.count() == 1


def test_an_oversized_upload_is_refused_on_the_page(settings, tianhe_admin):
    settings.ROSTER_IMPORT_MAX_BYTES = 100
    client = Client()
    client.force_login(tianhe_admin)

    response = client.post(
        reverse("admin:units_importjob_add"),
        {"file": SimpleUploadedFile("big.csv", b"x" * 500, "text/csv")},
    )

    assert response.status_code == 400
    assert "文件过大" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_a_job_runs_only_once_when_its_task_is_delivered_twice(tianhe_street, superuser):
    job = ImportJob.objects.create(
        created_by=superuser,
        filename="u.csv",
        data=csv_bytes(UNIT_HEADER, [unit_row("T1", tianhe_street)]),
        dry_run=False,
    )

    importing.import_job_run(job_id=job.pk)
    importing.import_job_run(job_id=job.pk)

    assert Unit.history.filter(code="T1").count() == 1


def test_another_users_job_is_not_found(tianhe_admin, haizhu_admin):
    job = ImportJob.objects.create(created_by=haizhu_admin, filename="theirs.csv")
    client = Client()
    client.force_login(tianhe_admin)

    assert client.get(reverse("admin:units_importjob_change", args=[job.pk])).status_code == 404
    assert client.get(reverse("admin:units_importjob_status", args=[job.pk])).status_code == 404


def test_a_header_field_past_the_csv_limit_fails_the_job_with_a_reason(superuser):
    """A field over csv's 131,072-character limit in the header row crashed the
    reader before its first row; the job then showed "running 0 / 0" for ever."""
    job = ImportJob.objects.create(
        created_by=superuser,
        filename="u.csv",
        data=("编码" + "x" * 140_000 + ",名称\nT1,单元\n").encode(),
        dry_run=True,
    )

    importing.import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.finished_at is not None
    assert "CSV" in job.result["errors"][0]["message"]


def test_a_job_whose_import_crashes_ends_failed_with_the_reason(
    superuser, tianhe_street, monkeypatch
):
    def crash(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(importing.jobs, "roster_import", crash)
    job = ImportJob.objects.create(
        created_by=superuser,
        filename="u.csv",
        data=csv_bytes(UNIT_HEADER, [unit_row("T1", tianhe_street)]),
        dry_run=True,
    )

    importing.import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.finished_at is not None
    assert job.result["error_count"] == 1
