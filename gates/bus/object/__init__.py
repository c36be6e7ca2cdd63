"""The object-store bus: slots in an S3-compatible bucket (`s3://bucket/prefix`). See `store`.

Needs obstore (`pip install "dataset-gates[s3]"`); nothing here imports it until a bus is
opened, so the pack imports without it.
"""

from .gc import GcReport, collect_garbage
from .store import ObjectBus

__all__ = ["GcReport", "ObjectBus", "collect_garbage"]
