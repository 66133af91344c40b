"""Training workflow: metrics (and the fit loop and callbacks).

    >>> import numpy as np
    >>> from tinycnn.train import rank_k_accuracy
    >>> rank_k_accuracy(np.eye(3), np.arange(3), k=(1,))
    (1.0,)
"""
from .metrics import rank_k_accuracy, confusion_matrix, classification_report, plot_confusion_matrix
