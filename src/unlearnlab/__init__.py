"""unlearnlab: machine unlearning for PyTorch models.

    import unlearnlab as ul
    task = ul.make_task("digits", forget="random:0.1", seed=1)
    model = ul.models.create("mlp", task)
    ul.train(model, task.train, ul.Recipe.default(task))
    result = ul.unlearn(model, task, method="salun")
    print(ul.evaluate(result.model, task).metrics)
"""

from unlearnlab import distributed, families, generation, methods, models
from unlearnlab.api import UnlearnResult, train, unlearn
from unlearnlab.data import ForgetTask, StreamData, TensorData, list_datasets, load_dataset, make_task
from unlearnlab.errors import DivergenceError, UnlearnlabError
from unlearnlab.evaluation import EvalOptions, Evaluation, evaluate
from unlearnlab.methods import compose, get_method, list_methods, register_method
from unlearnlab.metrics import list_metrics
from unlearnlab.training import Recipe
from unlearnlab.version import __version__

__all__ = [
    "DivergenceError", "EvalOptions", "Evaluation", "ForgetTask", "Recipe", "StreamData", "TensorData", "UnlearnResult",
    "UnlearnlabError", "__version__", "compose", "distributed", "evaluate", "families", "generation", "get_method",
    "list_datasets", "list_methods", "list_metrics", "load_dataset", "make_task", "methods", "models",
    "register_method", "train", "unlearn",
]
