"""ForwardGNN: graph neural networks trained layer by layer without back-propagation across layers.

Park, Choi, Yoon and Kim, "Forward Learning of Graph Neural Networks", ICLR 2024.
Each layer ``relu(conv(l2_normalise(x)))`` has its own optimiser and a local
loss computed on detached inputs; ``bp`` trains the same stack end to end.

>>> from graph.datasets import load_dataset
>>> from graph.forwardgnn import ForwardGNNConfig, train_forwardgnn
>>> r = train_forwardgnn(load_dataset("karate"), "ff-label", "gcn",
...                      config=ForwardGNNConfig(epochs=10))
>>> r.metric
'accuracy'
"""

from graph.forwardgnn.config import CONVS, TASKS, ForwardGNNConfig
from graph.forwardgnn.layers import ForwardLayer, l2_normalise, make_conv
from graph.forwardgnn.losses import accuracy, forward_forward_loss, goodness, roc_auc
from graph.forwardgnn.memory import PeakMemory, track_memory
from graph.forwardgnn.registry import VARIANTS, available_variants, get_variant
from graph.forwardgnn.tasks import LinkTask, NodeTask, make_task
from graph.forwardgnn.train import RunResult, run_forwardgnn, summarize, train_forwardgnn

__all__ = [
    "CONVS", "TASKS", "VARIANTS", "ForwardGNNConfig", "ForwardLayer", "LinkTask", "NodeTask",
    "PeakMemory", "RunResult", "accuracy", "available_variants", "forward_forward_loss",
    "get_variant", "goodness", "l2_normalise", "make_conv", "make_task", "roc_auc",
    "run_forwardgnn", "summarize", "track_memory", "train_forwardgnn",
]
