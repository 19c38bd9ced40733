"""The roster tables' kinds and columns: what import reads and export writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model

from .. import phones
from ..models import Equipment, Member, Unit

UNIT, MEMBER, EQUIPMENT = "unit", "member", "equipment"
KINDS = (UNIT, MEMBER, EQUIPMENT)  # also the order tables are written in
MODELS: dict[str, type[Model]] = {UNIT: Unit, MEMBER: Member, EQUIPMENT: Equipment}
SHEET_TITLES = {UNIT: "单元", MEMBER: "队员", EQUIPMENT: "装备"}
SHEET_TITLE_ALIASES = {
    UNIT: {"单元", "应急单元", "units", "unit"},
    MEMBER: {"队员", "members", "member"},
    EQUIPMENT: {"装备", "kit", "equipment"},
}

WRITE_BATCH = 2_000  # rows per bulk call (with their history rows)
KEY_CHUNK = 2_000  # keys per IN (...) lookup (SQLite's variable limit)
MAX_ROWS = 1_000_000
SAMPLE_SIZE = 10  # changes shown per sheet in a preview
CN_MOBILE = phones.CN_MOBILE

ProgressCallback = Callable[[str, int, int], None]  # phase, done, total


# --- columns ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # what export writes; import accepts it and the aliases
    aliases: tuple[str, ...] = ()
    required: bool = False
    imported: bool = True  # False: written by export for information, ignored on import


COLUMNS: dict[str, tuple[Column, ...]] = {
    UNIT: (
        Column("code", "单元编码", ("code", "unit_code"), required=True),
        Column("name", "单元名称", ("name",), required=True),
        Column("kind", "类型", ("kind",), required=True),
        Column("region", "街镇代码", ("region", "region_code", "street_code"), required=True),
        Column("region_name", "街镇名称", ("region_name",), imported=False),
        Column("address", "地址", ("address",)),
        Column("lat", "纬度", ("lat", "latitude"), required=True),
        Column("lon", "经度", ("lon", "lng", "longitude"), required=True),
        Column("post_min", "本岗最少留守人数", ("post_min",)),
        Column("is_active", "启用", ("is_active", "active")),
    ),
    MEMBER: (
        Column("phone", "手机号", ("phone", "mobile"), required=True),
        Column("name", "姓名", ("name",), required=True),
        Column("unit", "单元编码", ("unit", "unit_code"), required=True),
        Column("role", "角色", ("role",)),
        Column("trained", "已培训", ("trained",)),
        Column("is_active", "有效", ("is_active", "active")),
        # Duty is live state clocked by members; a file must not overwrite it.
        Column("on_duty", "在岗", ("on_duty",), imported=False),
    ),
    EQUIPMENT: (
        Column("unit", "单元编码", ("unit", "unit_code"), required=True),
        Column("kind", "装备", ("kind", "equipment"), required=True),
        Column("quantity", "数量", ("quantity", "qty"), required=True),
        Column("condition", "状态", ("condition",)),
        Column("last_inspected", "上次检查", ("last_inspected",)),
        Column("expires", "有效期至", ("expires",)),
    ),
}


def norm_header(value: object) -> str:
    text = "" if value is None else str(value)
    return re.sub(r"[\s*＊]", "", text.replace("\ufeff", "")).lower()


HEADER_INDEX: dict[str, dict[str, Column]] = {
    kind: {norm_header(name): col for col in cols for name in (col.header, col.key, *col.aliases)}
    for kind, cols in COLUMNS.items()
}
