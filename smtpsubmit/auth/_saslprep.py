"""SASLprep (RFC 4013), the stringprep (RFC 3454) profile for user names and passwords.

Everything uses Unicode 3.2, the version stringprep is defined against: the stdlib
`stringprep` tables are 3.2, so normalisation uses `unicodedata.ucd_3_2_0` too. Mixing in
the interpreter's current Unicode version would make the result depend on the Python
release for characters whose decomposition changed since.
"""

from __future__ import annotations

import stringprep
import unicodedata

from ._base import SASLError

# RFC 4013 2.3: the prohibited-output tables, each paired with a message. C.1.2 is listed
# although step 1 maps it to SPACE, because NFKC could in principle reintroduce it.
_PROHIBITED = (
    (stringprep.in_table_c12, "a non-ASCII space"),
    (stringprep.in_table_c21_c22, "a control character"),
    (stringprep.in_table_c3, "a private-use character"),
    (stringprep.in_table_c4, "a non-character code point"),
    (stringprep.in_table_c5, "a surrogate code point"),
    (stringprep.in_table_c6, "a character inappropriate for plain text"),
    (stringprep.in_table_c7, "a character inappropriate for canonical representation"),
    (stringprep.in_table_c8, "a display-changing or deprecated character"),
    (stringprep.in_table_c9, "a tagging character"),
)


def saslprep(text: str, *, allow_unassigned: bool = True, what: str = "string") -> str:
    """Prepare ``text`` with SASLprep (RFC 4013 2).

    ``allow_unassigned`` selects a "query" (True) or "stored" (False) string, RFC 3454 7.
    Raises `SASLError` naming the rule that failed; the message never echoes ``text`` (it may
    be a password) -- ``what`` says which credential it was.
    """
    # 2.1 Mapping: non-ASCII spaces become SPACE, "commonly mapped to nothing" disappears.
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    # 2.2 Normalisation: NFKC (Unicode 3.2, see the module comment).
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    # 2.3 Prohibited output, 2.5 unassigned code points.
    for position, ch in enumerate(normalized):
        for in_table, label in _PROHIBITED:
            if in_table(ch):
                raise SASLError(f"{what} contains {label} at position {position} (RFC 4013 2.3)")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise SASLError(
                f"{what} contains an unassigned code point at position {position} (RFC 4013 2.5)"
            )
    # 2.4 Bidirectional characters, RFC 3454 6: a string with any RandALCat character must
    # not contain LCat characters and must start and end with RandALCat.
    if any(stringprep.in_table_d1(ch) for ch in normalized):
        if any(stringprep.in_table_d2(ch) for ch in normalized):
            raise SASLError(f"{what} mixes right-to-left and left-to-right characters (RFC 3454 6)")
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            raise SASLError(
                f"{what} must start and end with a right-to-left character (RFC 3454 6)"
            )
    return normalized
