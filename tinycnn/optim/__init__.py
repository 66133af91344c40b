"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedules.

    >>> import numpy as np, tinycnn
    >>> w = tinycnn.nn.Parameter(np.ones(2, dtype=np.float32))
    >>> opt = tinycnn.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    >>> schedule = tinycnn.optim.PolynomialDecay(opt, max_epochs=70, power=1.0)
"""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .schedules import (Schedule, StepDecay, ExponentialDecay, PolynomialDecay, CosineAnnealing,
                        PiecewiseConstant, LinearWarmup)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Schedule", "StepDecay", "ExponentialDecay",
           "PolynomialDecay", "CosineAnnealing", "PiecewiseConstant", "LinearWarmup"]
