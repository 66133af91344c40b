"""Learning-rate schedules: each sets the ``"lr"`` of an optimizer's groups.

A schedule remembers each group's base lr and its ``position`` (how many
times ``step()`` was called). The lr at a position is a pure function of the
two, ``lr_at(position, base_lr)``, so a resumed run that loads the position
continues exactly where it stopped. ``per`` ("epoch" or "step") tells the
training loop when to call ``step()``: position p then covers epoch p + 1
(or batch p + 1).

    >>> import numpy as np, tinycnn
    >>> w = tinycnn.nn.Parameter(np.zeros(1, dtype=np.float32))
    >>> opt = tinycnn.optim.SGD([w], lr=0.1)
    >>> schedule = StepDecay(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"])   # train one epoch with this lr
    ...     schedule.step()
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.025]

To resume with a lower lr (stop with ctrl+c, lower the lr, resume), load the
schedule's state and then call ``schedule.set_base_lr(new_lr)``.
"""
import bisect
import math

import numpy as np


class Schedule:
    """Base class: subclasses define ``lr_at(position, base_lr)``."""

    uses_base_lr = True  # False when the lrs are given outright (PiecewiseConstant)

    def __init__(self, optimizer, per="epoch"):
        if per not in ("epoch", "step"):
            raise ValueError(f"{type(self).__name__}: per must be 'epoch' or 'step', got {per!r}")
        self.optimizer = optimizer
        self.per = per
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.position = 0
        self.apply()

    def lr_at(self, position, base_lr):
        """The lr after ``position`` calls to ``step()`` for a group whose base lr is ``base_lr``."""
        raise NotImplementedError

    def step(self):
        """Advance by one epoch (or one batch, when ``per == "step"``) and set the new lrs."""
        self.position += 1
        self.apply()

    def apply(self):
        """Write the lrs of the current position into the optimizer's groups."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} parameter groups, "
                             f"the schedule knows {len(self.base_lrs)} base lrs")
        for group, base_lr in zip(groups, self.base_lrs):
            group["lr"] = float(self.lr_at(self.position, base_lr))

    @property
    def lrs(self):
        """The current lr of each group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def set_base_lr(self, lr):
        """Restart the curve from a new base lr (one number, or one per group), keeping the position."""
        if not self.uses_base_lr:
            raise TypeError(f"{type(self).__name__}.set_base_lr: this schedule takes its lrs from "
                            f"its 'values'; build it with new values and load_state_dict() to keep the position")
        self.base_lrs = self._lrs_per_group(lr, "set_base_lr")
        self.apply()

    def state_dict(self):
        """``{"position": int, "base_lrs": [float, ...]}``: enough to continue where it stopped."""
        return {"position": self.position, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        """Restore a saved position and base lrs (npz-loaded arrays are fine) and set the lrs."""
        self.base_lrs = self._lrs_per_group(state["base_lrs"], "load_state_dict")
        self.position = int(state["position"])
        self.apply()

    def _lrs_per_group(self, lr, caller):
        groups = len(self.optimizer.param_groups)
        lrs = [float(v) for v in np.ravel(np.asarray(lr, dtype=np.float64))]
        if len(lrs) == 1:
            lrs = lrs * groups
        if len(lrs) != groups:
            raise ValueError(f"{type(self).__name__}.{caller}: got {len(lrs)} lrs for {groups} parameter groups")
        return lrs

    def __repr__(self):
        return f"{type(self).__name__}(position={self.position}, per={self.per!r}, lrs={self.lrs})"


class StepDecay(Schedule):
    """Multiply the lr by ``gamma`` every ``step_size`` steps: ``base * gamma ** (position // step_size)``.

    Same values as ``torch.optim.lr_scheduler.StepLR``.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, per="epoch"):
        if int(step_size) < 1:
            raise ValueError(f"StepDecay: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, per)

    def lr_at(self, position, base_lr):
        return base_lr * self.gamma ** (position // self.step_size)


class ExponentialDecay(Schedule):
    """``base * gamma ** position``; same values as ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, optimizer, gamma, per="epoch"):
        self.gamma = float(gamma)
        super().__init__(optimizer, per)

    def lr_at(self, position, base_lr):
        return base_lr * self.gamma ** position


class PolynomialDecay(Schedule):
    """``base * (1 - position / max_epochs) ** power``, 0 from ``max_epochs`` on.

    MiniGoogLeNet's schedule (power=1 is a straight line down to 0); same values
    as ``torch.optim.lr_scheduler.PolynomialLR(total_iters=max_epochs, power=power)``.
    """

    def __init__(self, optimizer, max_epochs, power=1.0, per="epoch"):
        if int(max_epochs) < 1:
            raise ValueError(f"PolynomialDecay: max_epochs must be >= 1, got {max_epochs}")
        self.max_epochs, self.power = int(max_epochs), float(power)
        super().__init__(optimizer, per)

    def lr_at(self, position, base_lr):
        return base_lr * (1 - min(position, self.max_epochs) / self.max_epochs) ** self.power


class CosineAnnealing(Schedule):
    """``eta_min + (base - eta_min) * (1 + cos(pi * position / T_max)) / 2``.

    Falls from base to ``eta_min`` over ``T_max`` steps (and rises again after, like
    ``torch.optim.lr_scheduler.CosineAnnealingLR``, whose values it equals).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, per="epoch"):
        if int(T_max) < 1:
            raise ValueError(f"CosineAnnealing: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, per)

    def lr_at(self, position, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * position / self.T_max)) / 2


class PiecewiseConstant(Schedule):
    """Constant lrs between boundaries: ``values[i]`` once ``boundaries[i-1]`` steps are done.

    The lecture notes' experiment (epochs 1-20 at 1e-3, 21-30 at 1e-4, 31-40 at 1e-5):

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.zeros(1, dtype=np.float32))
        >>> opt = tinycnn.optim.SGD([w], lr=1e-3, momentum=0.9)
        >>> schedule = PiecewiseConstant(opt, boundaries=[20, 30], values=[1e-3, 1e-4, 1e-5])
        >>> [schedule.lr_at(epoch - 1, None) for epoch in (1, 20, 21, 30, 31, 40)]
        [0.001, 0.001, 0.0001, 0.0001, 1e-05, 1e-05]

    The values are the lrs of every group (the optimizer's own lr is ignored).
    """

    uses_base_lr = False

    def __init__(self, optimizer, boundaries, values, per="epoch"):
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"PiecewiseConstant: expected len(values) == len(boundaries) + 1, got "
                             f"{len(self.values)} values for {len(self.boundaries)} boundaries")
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])) or any(b < 1 for b in self.boundaries):
            raise ValueError(f"PiecewiseConstant: boundaries must be increasing and >= 1, got {self.boundaries}")
        super().__init__(optimizer, per)

    def lr_at(self, position, base_lr):
        return self.values[bisect.bisect_right(self.boundaries, position)]


class LinearWarmup(Schedule):
    """Ramp the lr up linearly for ``warmup_steps`` steps, then follow ``after``.

    During warmup the lr is ``target * (position + 1) / (warmup_steps + 1)``, where
    ``target`` is the lr ``after`` starts from (the base lr if ``after`` is None);
    then ``after`` runs from its own position 0. Only call the warmup's ``step()``:
    it counts for both, in the unit of ``after.per``.

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.zeros(1, dtype=np.float32))
        >>> opt = tinycnn.optim.SGD([w], lr=0.4)
        >>> schedule = LinearWarmup(opt, warmup_steps=3, after=StepDecay(opt, step_size=1, gamma=0.5))
        >>> lrs = []
        >>> for _ in range(6):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 6))
        ...     schedule.step()
        >>> lrs
        [0.1, 0.2, 0.3, 0.4, 0.2, 0.1]
    """

    def __init__(self, optimizer, warmup_steps, after=None, per=None):
        if int(warmup_steps) < 0:
            raise ValueError(f"LinearWarmup: warmup_steps must be >= 0, got {warmup_steps}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: 'after' must schedule the same optimizer")
        self.warmup_steps, self.after = int(warmup_steps), after
        self.uses_base_lr = after is None or after.uses_base_lr
        super().__init__(optimizer, per or (after.per if after is not None else "step"))
        if after is not None:
            self.base_lrs = list(after.base_lrs)  # after has already replaced the optimizer's lrs
            self.apply()

    def lr_at(self, position, base_lr):
        if position < self.warmup_steps:
            return self._lr_after(0, base_lr) * (position + 1) / (self.warmup_steps + 1)
        return self._lr_after(position - self.warmup_steps, base_lr)

    def apply(self):
        if self.after is not None:
            self.after.position = max(0, self.position - self.warmup_steps)
        super().apply()

    def _lr_after(self, position, base_lr):
        return base_lr if self.after is None else self.after.lr_at(position, base_lr)
