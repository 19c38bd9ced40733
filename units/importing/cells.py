"""Parsing one spreadsheet cell into a value, or a CellError with a message for the row."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .. import phones
from ..exporting import unquote
from .columns import CN_MOBILE

# --- cell parsing --------------------------------------------------------------------


class CellError(ValueError):
    pass


class FormulaWithoutValue:
    """An XLSX formula cell saved without its result: it must not read as blank."""

    def __init__(self, formula: str) -> None:
        self.formula = formula

    def __str__(self) -> str:
        return ""  # what the cell shows to code that only wants text

    def error(self) -> CellError:
        return CellError(
            _(
                "公式单元格没有计算结果（%(formula)s）："
                "请在 Excel 中打开并保存，或粘贴为数值后再导入。"
            )
            % {"formula": self.formula[:60]}
        )


def cell_text(value: Any) -> str:
    if value is None or isinstance(value, FormulaWithoutValue):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    # An export quotes text that would run as a formula ('=...): read it back as it was.
    return unquote(str(value).strip())


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_required_text(value: Any, max_length: int) -> str:
    text = cell_text(value)
    if not text:
        raise CellError(_("不能为空。"))
    if len(text) > max_length:
        raise CellError(_("不能超过 %(n)d 个字符。") % {"n": max_length})
    return text


def parse_code(value: Any, max_length: int = 32) -> str:
    text = parse_required_text(value, max_length)
    if re.search(r"\s", text):
        raise CellError(_("编码不能包含空格。"))
    return text


def parse_choice(choices: Iterable[tuple[str, Any]]) -> Callable[[Any], str]:
    """A parser accepting a choice's stored value or its (Chinese) label."""
    options = list(choices)
    lookup = {str(label): stored for stored, label in options}
    lookup |= {stored: stored for stored, _label in options}
    listed = "、".join(str(label) for _s, label in options)

    def parse(value: Any) -> str:
        text = cell_text(value)
        found = lookup.get(text) or lookup.get(text.lower())
        if found is None:
            raise CellError(
                _("“%(value)s”不是有效的选项，可选：%(options)s。")
                % {"value": text, "options": listed}
            )
        return found

    return parse


_TRUE = {"是", "1", "true", "yes", "y", "启用", "有效", "在岗", "√", "✓", "t"}
_FALSE = {"否", "0", "false", "no", "n", "停用", "无效", "离岗", "×", "f"}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = cell_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(_("请填写“是”或“否”。"))


def parse_int(value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise CellError(_("须为整数。"))
    if isinstance(value, int):
        number = value
    else:
        try:
            as_float = float(cell_text(value))
        except ValueError as exc:
            raise CellError(_("须为整数。")) from exc
        if not as_float.is_integer():
            raise CellError(_("须为整数。"))
        number = int(as_float)
    if not low <= number <= high:
        raise CellError(_("须在 %(low)d 到 %(high)d 之间。") % {"low": low, "high": high})
    return number


def parse_coordinate(value: Any, limit: float) -> float:
    try:
        number = float(value) if isinstance(value, int | float) else float(cell_text(value))
    except ValueError as exc:
        raise CellError(_("坐标须为数字（WGS-84 十进制度）。")) from exc
    if math.isnan(number) or not -limit <= number <= limit:
        raise CellError(_("坐标无效：纬度须在 -90..90，经度须在 -180..180。"))
    return number


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = cell_text(value)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    raise CellError(_("日期格式应为 2025-03-31。"))


def phone_normalize(value: Any) -> str:
    """An 11-digit mainland mobile number from what a spreadsheet holds, or CellError."""
    text = cell_text(value)
    if not text:
        raise CellError(_("不能为空。"))
    try:
        return phones.phone_normalize(text)
    except phones.PhoneInvalid as exc:
        if exc.scientific:
            raise CellError(
                _("手机号被 Excel 显示成了科学计数法（%(value)s）；请把该列设为“文本”后重新导出。")
                % {"value": text}
            ) from None
    raise CellError(_("手机号须为 11 位中国大陆手机号（如 13800138000）。"))


def cn_mobile_validate(value: str) -> None:
    """Form validator: the stored form of a phone is exactly 11 digits, 1[3-9]..."""
    if not CN_MOBILE.fullmatch(value or ""):
        raise ValidationError(_("手机号须为 11 位中国大陆手机号（如 13800138000）。"))
