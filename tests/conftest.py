"""Makes `ansible_collections.stackfleet.cluster` importable for pytest without an install step."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS = os.path.join(_ROOT, ".ansible", "collections")
if not os.path.isdir(os.path.join(_COLLECTIONS, "ansible_collections", "stackfleet", "cluster")):
    raise RuntimeError("run scripts/setup.sh first: %s is missing the collection link" % _COLLECTIONS)
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
