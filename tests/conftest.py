"""Suite-wide settings: the Hypothesis profiles.

The property tests run with a fixed, derandomised profile by default (``ci``): every run
tries the same examples, so a failure is a change in the code, never a new seed. No example
is read from or written to ``.hypothesis/``: one found once cannot fail every later run in
that checkout. ``make test-random`` sets ``HYPOTHESIS_PROFILE=random``: fresh seeds, ten
times the examples and the example database, to look for new failures (add each one found
as an ``@example`` or an explicit test). A test that wants more examples than the profile
gives asks for a multiple of ``settings.default.max_examples``, so it scales too. This
module is imported before any test module, so the settings objects the tests build at
import time inherit the profile (a ``--hypothesis-profile`` option still overrides it).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
# Keeps the example database: a failure found replays on the next random run until fixed.
settings.register_profile("random", deadline=None, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
