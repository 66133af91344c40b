"""Training workflow: the fit loop, callbacks, checkpoints and metrics, and whole runs from a Recipe
(its datasets, models, optimizers and schedules built by name: tinycnn.train.builders).

    >>> import numpy as np
    >>> from tinycnn.train import rank_k_accuracy
    >>> rank_k_accuracy(np.eye(3), np.arange(3), k=(1,))
    (1.0,)
"""
from .metrics import rank_k_accuracy, confusion_matrix, classification_report, plot_confusion_matrix
from .fit import fit, evaluate, predict, History, Trainer
from .callbacks import Callback, ModelCheckpoint, EarlyStopping, ReduceLROnPlateau, CSVLogger, TrainingMonitor
from .checkpoint import read_checkpoint
from .builders import RecipeError, load_split, build_model, make_optimizer, make_schedule, load_model
from .split import stratified_split, split_dataset
from .transfer import extract_features, LogisticRegression
from .recipe import Recipe, run, run_script, write_report

__all__ = ["rank_k_accuracy", "confusion_matrix", "classification_report", "plot_confusion_matrix",
           "fit", "evaluate", "predict", "History", "Trainer", "Callback", "ModelCheckpoint",
           "EarlyStopping", "ReduceLROnPlateau", "CSVLogger", "TrainingMonitor", "read_checkpoint", "RecipeError",
           "load_split", "build_model", "make_optimizer", "make_schedule", "Recipe", "run", "run_script",
           "write_report", "load_model", "stratified_split", "split_dataset", "extract_features", "LogisticRegression"]
