"""Portable SQL for the review: whole seconds between two timestamps, week numbers.

SQLite has no interval type and no percentile functions, so durations are
computed as integers in the database and medians from their histogram
(``review.selectors.common.percentile_cont``); the same SQL answers on PostgreSQL.
"""

from __future__ import annotations

from django.db.models import Func, IntegerField

# 1970-01-01 was a Thursday: shifting by three days makes weeks start on Monday.
_MONDAY_SHIFT_S = 3 * 86400
WEEK_S = 7 * 86400


class SecondsBetween(Func):
    """Whole seconds from ``start`` to ``end``, rounded up (NULL if either is NULL).

    Rounded up so that "took at most 60 s" in whole seconds is exactly
    ``end <= start + 60 s``: the compliance rule of ``dispatch.selectors``.
    Exact to the microsecond on both databases (no float day fractions).
    """

    output_field = IntegerField()
    arity = 2

    def __init__(self, end, start, **extra):
        super().__init__(end, start, **extra)

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL and others
        end, start = (compiler.compile(e) for e in self.source_expressions)
        sql = f"CAST(CEIL(EXTRACT(EPOCH FROM ({end[0]} - {start[0]}))) AS INTEGER)"
        return sql, (*end[1], *start[1])

    def as_sqlite(self, compiler, connection, **extra):
        (end, end_p), (start, start_p) = (compiler.compile(e) for e in self.source_expressions)
        # Django stores "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC; the fraction, when
        # present, is always six digits from character 21.
        # strftime('%s') of a time with a fraction rounds to the millisecond
        # (23:59:59.9996 reads as the next second): whole seconds from the text.
        micro = (
            f"((CAST(strftime('%%s', substr({end}, 1, 19)) AS INTEGER)"
            f" - CAST(strftime('%%s', substr({start}, 1, 19)) AS INTEGER)) * 1000000"
            f" + CAST(substr({end}, 21, 6) AS INTEGER)"
            f" - CAST(substr({start}, 21, 6) AS INTEGER))"
        )
        sql = f"(({micro} + 999999) / 1000000)"
        params = (*end_p, *start_p, *end_p, *start_p)
        return sql, params


class WeekNumber(Func):
    """Monday-based week number since the epoch, in local time of ``offset_s``.

    ``offset_s`` is the UTC offset of the reporting time zone (Asia/Shanghai
    keeps +8 h all year, so a fixed offset is exact there).
    """

    output_field = IntegerField()
    arity = 1

    def __init__(self, expression, *, offset_s: int, **extra):
        self.offset_s = int(offset_s)
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        shift = self.offset_s + _MONDAY_SHIFT_S
        sql = f"CAST(FLOOR((EXTRACT(EPOCH FROM {inner}) + {shift}) / {WEEK_S}) AS INTEGER)"
        return sql, params

    def as_sqlite(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        shift = self.offset_s + _MONDAY_SHIFT_S
        # Timestamps are after 1970: integer division is floor division here. The
        # whole seconds from the text: strftime('%s') rounds a fraction to the
        # millisecond, and 23:59:59.9996 on a Sunday fell in the next week.
        sql = f"((CAST(strftime('%%s', substr({inner}, 1, 19)) AS INTEGER) + {shift}) / {WEEK_S})"
        return sql, params


DAY_S = 86400


class DayNumber(Func):
    """Local day number since 1970-01-01, in local time of ``offset_s`` (as
    ``WeekNumber``): day ``d`` lies in week ``(d + 3) // 7``."""

    output_field = IntegerField()
    arity = 1

    def __init__(self, expression, *, offset_s: int, **extra):
        self.offset_s = int(offset_s)
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        sql = f"CAST(FLOOR((EXTRACT(EPOCH FROM {inner}) + {self.offset_s}) / {DAY_S}) AS INTEGER)"
        return sql, params

    def as_sqlite(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        seconds = f"CAST(strftime('%%s', substr({inner}, 1, 19)) AS INTEGER)"  # as WeekNumber
        sql = f"(({seconds} + {self.offset_s}) / {DAY_S})"
        return sql, params
