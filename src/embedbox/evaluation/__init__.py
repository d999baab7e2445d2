"""Evaluate models, compute dtypes, dimensions and output precisions on tasks, or a
collection's search modes on queries + qrels.

>>> from embedbox.evaluation import evaluate, suite
>>> report = evaluate(suite(["sts-b"]), ["all-MiniLM-L6-v2"], compute=["fp32", "auto"])
>>> report.to_dicts()[0]["spearman"]
"""

from embedbox.evaluation.collection import (
    CollectionReport,
    SearchResult,
    SearchSetting,
    evaluate_collection,
)
from embedbox.evaluation.data import (
    Labelled,
    Pair,
    RetrievalData,
    read_beir,
    read_labelled,
    read_pairs,
    read_qrels,
    read_queries,
)
from embedbox.evaluation.runner import EvalReport, Setting, TaskResult, evaluate
from embedbox.evaluation.suites import SUITE, suite
from embedbox.evaluation.tasks import (
    ClassificationTask,
    ClusteringTask,
    RetrievalTask,
    STSTask,
    Task,
)

__all__ = [
    "SUITE",
    "ClassificationTask",
    "ClusteringTask",
    "CollectionReport",
    "EvalReport",
    "Labelled",
    "Pair",
    "RetrievalData",
    "RetrievalTask",
    "STSTask",
    "SearchResult",
    "SearchSetting",
    "Setting",
    "Task",
    "TaskResult",
    "evaluate",
    "evaluate_collection",
    "read_beir",
    "read_labelled",
    "read_pairs",
    "read_qrels",
    "read_queries",
    "suite",
]
