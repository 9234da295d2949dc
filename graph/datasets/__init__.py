"""Small real graphs that load offline (bundled under ``assets/graphs/`` or shipped by networkx).

>>> from graph.datasets import load_dataset, available_datasets
>>> "karate" in available_datasets()
True
"""

from graph.datasets.connectome import load_directed_connectome, load_task_dataset
from graph.datasets.features import structural_features
from graph.datasets.registry import (
    DatasetInfo,
    available_datasets,
    available_graph_classification,
    dataset_info,
    load_dataset,
    load_graph_classification,
)
from graph.datasets.splits import LinkSplit, sample_non_edges, split_edges, stratified_masks

__all__ = [
    "DatasetInfo",
    "LinkSplit",
    "available_datasets",
    "available_graph_classification",
    "dataset_info",
    "load_dataset",
    "load_directed_connectome",
    "load_graph_classification",
    "load_task_dataset",
    "sample_non_edges",
    "split_edges",
    "stratified_masks",
    "structural_features",
]
