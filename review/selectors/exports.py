"""CSV export rows for incidents, area statistics and units."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.models import Dispatch
from units.models import phone_mask

from .common import DURATIONS
from .incidents import IncidentFilter, incident_list
from .stats import GroupStats, UnitStats

# --- exports ----------------------------------------------------------------------------

EXPORT_MAX_ROWS = 200_000


def incident_export_rows(*, user, filters: IncidentFilter) -> tuple[list[str], Iterable[list]]:
    """Header and rows for the incident export; phone numbers always masked
    (exports leave the system: a reviewer's report needs no full numbers)."""
    first = Dispatch.objects.filter(incident_id=OuterRef("pk"), accepted_at__isnull=False).order_by(
        "accepted_at", "pk"
    )
    qs = incident_list(user=user, filters=filters).annotate(
        first_unit_code=Subquery(first.values("unit__code")[:1]),
        first_member_name=Subquery(first.values("accepted_by__name")[:1]),
        first_member_phone=Subquery(first.values("accepted_by__phone")[:1]),
    )
    header = [
        _("编号"),
        _("类型"),
        _("区"),
        _("街道/镇"),
        _("地址"),
        _("第一时间发现"),
        _("第一时间响应"),
        _("第一时间管控"),
        _("第一时间处置"),
        _("响应用时(秒)"),
        _("到场用时(秒)"),
        _("处置用时(秒)"),
        _("1分钟响应"),
        _("3分钟到场"),
        _("5分钟处置"),
        _("首个响应单元"),
        _("首个响应队员"),
        _("队员手机(脱敏)"),
    ]
    yes, no = _("是"), _("否")

    def iso(value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    def rows():
        for i in qs[:EXPORT_MAX_ROWS].iterator(chunk_size=2000):
            district = i.region.parent if i.region and i.region.level == "street" else i.region
            yield [
                i.pk,
                i.get_kind_display(),
                district.name if district else "",
                i.region.name if i.region and i.region.level == "street" else "",
                i.address,
                iso(i.discovered_at),
                iso(i.responded_at),
                iso(i.controlled_at),
                iso(i.handled_at),
                i.to_response_s if i.to_response_s is not None else "",
                i.to_control_s if i.to_control_s is not None else "",
                i.to_handling_s if i.to_handling_s is not None else "",
                yes if i.ok_responded else no,
                yes if i.ok_controlled else no,
                yes if i.ok_handled else no,
                i.first_unit_code or "",
                i.first_member_name or "",
                phone_mask(i.first_member_phone) if i.first_member_phone else "",
            ]

    return header, rows()


def stats_export_rows(rows: Iterable[GroupStats]) -> tuple[list[str], list[list]]:
    header = [
        _("区域/周"),
        _("代码"),
        _("警情数"),
        _("1-3-5达标数"),
        _("达标率(%)"),
        _("1分钟响应率(%)"),
        _("3分钟到场率(%)"),
        _("5分钟处置率(%)"),
        _("响应中位数(秒)"),
        _("响应P90(秒)"),
        _("到场中位数(秒)"),
        _("到场P90(秒)"),
        _("处置中位数(秒)"),
        _("处置P90(秒)"),
    ]
    out = []
    for r in rows:
        d = r.as_dict()
        out.append(
            [
                r.label,
                r.code,
                r.incidents,
                r.compliant,
                d["compliance_pct"],
                d["responded_pct"],
                d["controlled_pct"],
                d["handled_pct"],
                *[d[f"{n}_{s}"] for n in DURATIONS for s in ("median", "p90")],
            ]
        )
    return header, out


def unit_export_rows(rows: Iterable[UnitStats]) -> tuple[list[str], list[list]]:
    header = [
        _("单元编码"),
        _("单元名称"),
        _("街道/镇"),
        _("被调派"),
        _("接受"),
        _("拒绝"),
        _("未应答"),
        _("到场"),
        _("响应中位数(秒)"),
        _("响应P90(秒)"),
        _("到场中位数(秒)"),
        _("到场P90(秒)"),
    ]
    out = []
    for s in rows:
        d = s.as_dict()
        out.append(
            [
                s.code,
                s.name,
                s.street,
                s.alerted,
                s.accepted,
                s.declined,
                s.no_answer,
                s.on_site,
                d["to_response_s_median"],
                d["to_response_s_p90"],
                d["to_control_s_median"],
                d["to_control_s_p90"],
            ]
        )
    return header, out
