"""Batch embedding at scale: resumable dataset jobs on a local process pool or on Ray."""

from embedbox.scale.job import JobReport, read_errors, run_job
from embedbox.scale.load import LoadReport, load_embeddings_into
from embedbox.scale.spec import JobSpec

__all__ = ["JobReport", "JobSpec", "LoadReport", "load_embeddings_into", "read_errors", "run_job"]
