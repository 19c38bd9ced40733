"""Mainland mobile numbers: the one normaliser every entry point uses.

Sign-in, the roster import, SMS replies and the admin all accept what people
type or spreadsheets hold ("+86 139-1234-5678", "0086 13912345678",
"8613912345678") and store 11 digits, so a member is found by one key.
"""

from __future__ import annotations

import re

CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = re.compile(r"[\s\-()（）]")
_SCIENTIFIC = re.compile(r"\d(\.\d+)?[eE]\+?\d+")


class PhoneInvalid(ValueError):
    """Not a mainland mobile number. ``scientific`` when Excel mangled it (1.39E+10)."""

    def __init__(self, raw: str, *, scientific: bool = False) -> None:
        super().__init__(raw)
        self.raw = raw
        self.scientific = scientific


def phone_normalize(raw: object) -> str:
    """11 digits from a typed or imported number, or ``PhoneInvalid``."""
    text = "" if raw is None else str(raw).strip()
    digits = _SEPARATORS.sub("", text)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if CN_MOBILE.fullmatch(digits):
        return digits
    raise PhoneInvalid(text, scientific=bool(_SCIENTIFIC.fullmatch(digits)))
