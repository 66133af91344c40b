"""Training workflow: the fit loop, callbacks, checkpoints and metrics.

    >>> import numpy as np
    >>> from tinycnn.train import rank_k_accuracy
    >>> rank_k_accuracy(np.eye(3), np.arange(3), k=(1,))
    (1.0,)
"""
from .metrics import rank_k_accuracy, confusion_matrix, classification_report, plot_confusion_matrix
from .fit import fit, evaluate, predict, History, Trainer
from .callbacks import Callback, ModelCheckpoint, EarlyStopping, CSVLogger, TrainingMonitor
from .checkpoint import read_checkpoint

__all__ = ["rank_k_accuracy", "confusion_matrix", "classification_report", "plot_confusion_matrix",
           "fit", "evaluate", "predict", "History", "Trainer", "Callback", "ModelCheckpoint",
           "EarlyStopping", "CSVLogger", "TrainingMonitor", "read_checkpoint"]
