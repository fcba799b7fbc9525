"""Hypothesis profiles: the test command explores a fixed set of examples, a developer a fresh one each run.

`scripts/test.sh` sets HYPOTHESIS_PROFILE=ci so a landing is never refused by an example that a
random seed happened to find that day; run without it (or with PLACEMENT_EXAMPLES=2000) to hunt.
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
