# tests: tests/core/test_sasl.py
"""SASLprep (RFC 4013): how user names and passwords are prepared before SCRAM and PLAIN use
them (xmppd/sasl.py)."""
from __future__ import annotations

import re
import stringprep
import unicodedata

from xmppd.sasl_errors import SaslFailure

_ucd = unicodedata.ucd_3_2_0  # stringprep is defined on Unicode 3.2 (RFC 3454 §1.2)
_ASCII_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def saslprep(s: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    Non-ASCII spaces map to SPACE and table B.1 to nothing (§2.1), then NFKC (§2.2); output in
    tables C.1.2, C.2.1–C.9 is prohibited (§2.3), RFC 3454 §6 bidi rules apply (§2.4), and
    unassigned code points (table A.1) are prohibited unless `allow_unassigned` — RFC 3454 §7:
    allowed in "queries" (what a client presents), not in "stored strings" (what we keep).

    Raises:
        SaslFailure: `malformed-request` when the output would contain a prohibited character.
    """
    if _ASCII_PRINTABLE.fullmatch(s) is not None:
        return s  # nothing maps, NFKC is the identity, no ASCII printable is prohibited or RTL
    mapped: list[str] = []
    for char in s:
        if stringprep.in_table_c12(char):
            mapped.append(" ")
        elif not stringprep.in_table_b1(char):
            mapped.append(char)
    out = _ucd.normalize("NFKC", "".join(mapped))
    for char in out:
        if (
            stringprep.in_table_c12(char)
            or stringprep.in_table_c21_c22(char)
            or stringprep.in_table_c3(char)
            or stringprep.in_table_c4(char)
            or stringprep.in_table_c5(char)
            or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char)
            or stringprep.in_table_c8(char)
            or stringprep.in_table_c9(char)
        ):
            raise SaslFailure("malformed-request", "Prohibited character in credentials")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise SaslFailure("malformed-request", "Unassigned character in credentials")
    if any(stringprep.in_table_d1(c) for c in out) and (
        any(stringprep.in_table_d2(c) for c in out)
        or not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1]))
    ):
        raise SaslFailure("malformed-request", "Bidirectional text rules violated in credentials")
    return out


