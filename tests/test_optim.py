"""Optimizers and lr schedules, side by side with torch.optim (the oracle)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinycnn
import tinycnn.io
from tinycnn import optim
from tinycnn.nn import Parameter

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 3, 3)]
TORCH_OPTIMIZERS = {"SGD": "SGD", "Adam": "Adam", "AdamW": "AdamW", "RMSprop": "RMSprop"}
TOLERANCE = {np.float64: 1e-6, np.float32: 1e-5}


# ----- a small problem run by both libraries ------------------------------------------
def make_problem(dtype, seed=0):
    """Initial parameters, targets and per-step noise for the loss sum(c * (p - target)**2 / 2)."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    targets = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    curvature = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]
    noise = [[0.1 * rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(40)]
    return initial, targets, curvature, noise


def gradients(values, problem, step):
    """Gradient of the quadratic at the current values, plus fixed noise; the last
    parameter gets no gradient on odd steps (its grad is None and it must not move)."""
    _, targets, curvature, noise = problem
    grads = [c * (v - t) + n for v, t, c, n in zip(values, targets, curvature, noise[step])]
    if step % 2 == 1:
        grads[-1] = None
    return grads


def group_specs(params, groups):
    """[{"params": [...], **hyper}] from index lists, or the bare list when groups is None."""
    if groups is None:
        return params
    return [{"params": [params[i] for i in spec["indices"]], **spec["hyper"]} for spec in groups]


def run_tinycnn(name, kwargs, problem, dtype, steps, groups=None):
    params = [Parameter(v.copy()) for v in problem[0]]
    opt = getattr(optim, name)(group_specs(params, groups), **kwargs)
    for step in range(steps):
        for p, g in zip(params, gradients([p.data for p in params], problem, step)):
            p.grad = g
        opt.step()
    return params, opt


def run_torch(name, kwargs, problem, dtype, steps, groups=None):
    params = [torch.tensor(v.copy(), requires_grad=True) for v in problem[0]]
    opt = getattr(torch.optim, TORCH_OPTIMIZERS[name])(group_specs(params, groups), **kwargs)
    for step in range(steps):
        grads = gradients([p.detach().numpy() for p in params], problem, step)
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in params]


def assert_close(actual, expected, dtype):
    rtol = TOLERANCE[dtype]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max())


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("Adam", dict()),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=5e-3, amsgrad=True, weight_decay=1e-2)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, centered=True)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.5, weight_decay=1e-2)),
    ("RMSprop", dict(lr=5e-3, alpha=0.9, eps=1e-6)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch(name, kwargs, dtype):
    problem = make_problem(dtype)
    params, opt = run_tinycnn(name, kwargs, problem, dtype, steps=20)
    expected = run_torch(name, kwargs, problem, dtype, steps=20)
    assert_close([p.data for p in params], expected, dtype)
    assert all(p.data.dtype == dtype for p in params)
    for state in opt.state.values():
        assert all(v.dtype == dtype for v in state.values() if hasattr(v, "dtype"))
    moved = [not np.array_equal(p.data, v) for p, v in zip(params, problem[0])]
    assert all(moved)


GROUP_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9),
     [{"indices": [0, 2], "hyper": {}}, {"indices": [1], "hyper": {"lr": 0.01, "nesterov": True}}]),
    ("Adam", dict(lr=1e-2),
     [{"indices": [0], "hyper": {"lr": 1e-3}}, {"indices": [1, 2], "hyper": {"weight_decay": 0.1, "amsgrad": True}}]),
    ("RMSprop", dict(lr=1e-3),
     [{"indices": [2], "hyper": {"centered": True}}, {"indices": [0, 1], "hyper": {"lr": 1e-2, "momentum": 0.5}}]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs,groups", GROUP_CONFIGS, ids=[c[0] for c in GROUP_CONFIGS])
def test_parameter_groups_match_torch(name, kwargs, groups, dtype):
    problem = make_problem(dtype, seed=1)
    params, opt = run_tinycnn(name, kwargs, problem, dtype, steps=20, groups=groups)
    expected = run_torch(name, kwargs, problem, dtype, steps=20, groups=groups)
    assert_close([p.data for p in params], expected, dtype)
    assert [g["lr"] for g in opt.param_groups] == [spec["hyper"].get("lr", kwargs["lr"]) for spec in groups]


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["SGD", "Adam", "AdamW", "RMSprop"]),
       lr=st.floats(1e-4, 0.1), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       weight_decay=st.sampled_from([0.0, 1e-3, 0.1]), flag=st.booleans(), seed=st.integers(0, 100))
def test_drawn_configurations_match_torch(name, lr, momentum, weight_decay, flag, seed):
    kwargs = {"lr": lr, "weight_decay": weight_decay}
    if name == "SGD":
        kwargs.update(momentum=momentum, nesterov=flag and momentum > 0)
    elif name == "RMSprop":
        kwargs.update(momentum=momentum, centered=flag)
    else:
        kwargs.update(amsgrad=flag)
    problem = make_problem(np.float64, seed)
    params, _ = run_tinycnn(name, kwargs, problem, np.float64, steps=20)
    assert_close([p.data for p in params], run_torch(name, kwargs, problem, np.float64, steps=20), np.float64)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_numpy_scalar_hyperparameters_do_not_upcast_float32(name):
    problem = make_problem(np.float32)
    kwargs = {"lr": np.float64(0.01), "weight_decay": np.float64(0.01)}
    params, opt = run_tinycnn(name, kwargs, problem, np.float32, steps=5)
    expected = run_torch(name, {"lr": 0.01, "weight_decay": 0.01}, problem, np.float32, steps=5)
    assert all(p.data.dtype == np.float32 for p in params)
    assert type(opt.param_groups[0]["lr"]) is float
    assert_close([p.data for p in params], expected, np.float32)


def test_updates_happen_in_place():
    problem = make_problem(np.float32)
    params = [Parameter(v.copy()) for v in problem[0]]
    arrays = [p.data for p in params]
    opt = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    assert all(p.data is a for p, a in zip(params, arrays))
    assert all(np.all(a != v) for a, v in zip(arrays, problem[0]))


def test_zero_grad_clears_and_none_grads_are_skipped():
    w = Parameter(np.ones(3, dtype=np.float32))
    b = Parameter(np.ones(2, dtype=np.float32))
    opt = optim.SGD([w, b], lr=0.5, momentum=0.9)
    w.grad = np.full(3, 2.0, dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(w.data, np.zeros(3, dtype=np.float32))
    np.testing.assert_array_equal(b.data, np.ones(2, dtype=np.float32))
    assert id(b) not in opt.state
    opt.zero_grad()
    assert w.grad is None and b.grad is None


def test_state_follows_the_parameter_dtype():
    w = Parameter(np.ones(3, dtype=np.float32))
    opt = optim.Adam([w], lr=0.1)
    w.grad = np.ones(3, dtype=np.float32)
    opt.step()
    w.data = w.data.astype(np.float64)  # what model.to(np.float64) does
    w.grad = np.ones(3, dtype=np.float64)
    opt.step()
    assert w.data.dtype == np.float64
    assert opt.state[id(w)]["exp_avg"].dtype == np.float64


# ----- state_dict round trip -------------------------------------------------------------
ROUND_TRIP_CONFIGS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-2, amsgrad=True, betas=(0.85, 0.995))),
    ("AdamW", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.5)),
]


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("name,kwargs", ROUND_TRIP_CONFIGS, ids=[c[0] for c in ROUND_TRIP_CONFIGS])
def test_state_dict_round_trip_is_bit_identical(name, kwargs, through_file, tmp_path):
    dtype = np.float32
    problem = make_problem(dtype, seed=2)
    straight, _ = run_tinycnn(name, kwargs, problem, dtype, steps=20)

    params, opt = run_tinycnn(name, kwargs, problem, dtype, steps=10)
    saved_values = [p.data.copy() for p in params]
    saved = opt.state_dict()
    for step in range(10, 20):  # keep training: the saved copy must not change
        for p, g in zip(params, gradients([p.data for p in params], problem, step)):
            p.grad = g
        opt.step()
    if through_file:
        tinycnn.io.save({"optimizer": saved}, tmp_path / "checkpoint.npz")
        saved = tinycnn.io.load(tmp_path / "checkpoint.npz")["optimizer"]

    resumed = [Parameter(v) for v in saved_values]
    fresh = getattr(optim, name)(resumed, lr=123.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    hyper = lambda group: {k: v for k, v in group.items() if k != "params"}
    assert hyper(fresh.param_groups[0]) == hyper(opt.param_groups[0])
    for step in range(10, 20):
        for p, g in zip(resumed, gradients([p.data for p in resumed], problem, step)):
            p.grad = g
        fresh.step()
    for a, b in zip(resumed, straight):
        assert a.data.dtype == dtype
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_holds_plain_values_keyed_by_index():
    problem = make_problem(np.float32)
    _, opt = run_tinycnn("Adam", dict(lr=1e-2), problem, np.float32, steps=3)
    state = opt.state_dict()
    assert sorted(state["state"]) == [0, 1, 2]
    assert state["state"][0]["step"] == 3 and state["state"][2]["step"] == 2  # no grad on odd steps
    assert isinstance(state["state"][1]["exp_avg"], np.ndarray)
    assert state["param_groups"][0]["params"] == [0, 1, 2]


def test_load_state_dict_rejects_mismatched_layouts():
    problem = make_problem(np.float32)
    _, opt = run_tinycnn("SGD", dict(lr=0.1, momentum=0.9), problem, np.float32, steps=2)
    saved = opt.state_dict()
    two_params = optim.SGD([Parameter(np.zeros(s, np.float32)) for s in SHAPES[:2]], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="SGD.load_state_dict: group 0 has 2 parameters"):
        two_params.load_state_dict(saved)
    wrong_shapes = optim.SGD([Parameter(np.zeros((7,), np.float32)) for _ in SHAPES], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffer' of parameter 0 has shape"):
        wrong_shapes.load_state_dict(saved)


# ----- bad input ---------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    w = Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="SGD: got an empty list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="SGD: lr must be a number >= 0, got -1"):
        optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: betas must be two numbers in \[0, 1\)"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"RMSprop: unknown hyper-parameter\(s\) \['learning_rate'\]"):
        optim.RMSprop([{"params": [w], "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="Adam: a parameter appears in more than one place"):
        optim.Adam([w, w])
    with pytest.raises(TypeError, match="SGD: expected Parameters"):
        optim.SGD([np.zeros(2)], lr=0.1)
    opt = optim.SGD([w], lr=0.1)
    w.grad = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"SGD.step: a parameter of shape \(2,\) has a gradient of shape \(3,\)"):
        opt.step()


def test_set_lr_changes_every_group():
    a, b = Parameter(np.zeros(1, np.float32)), Parameter(np.zeros(1, np.float32))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    opt.set_lr(1e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3]


# ----- schedules ----------------------------------------------------------------------------
def two_group_optimizer(lr_a=0.1, lr_b=0.03):
    a, b = Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(3, np.float32))
    return optim.SGD([{"params": [a], "lr": lr_a}, {"params": [b], "lr": lr_b}], lr=lr_a, momentum=0.9)


def torch_lrs(scheduler_name, kwargs, steps, lr_a=0.1, lr_b=0.03):
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": lr_a}, {"params": [b], "lr": lr_b}], lr=lr_a, momentum=0.9)
    scheduler = getattr(torch.optim.lr_scheduler, scheduler_name)(opt, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return lrs


def our_lrs(schedule, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.lrs)
        schedule.step()
    return lrs


TORCH_EQUIVALENTS = [
    (optim.StepDecay, dict(step_size=3, gamma=0.5), "StepLR", dict(step_size=3, gamma=0.5)),
    (optim.StepDecay, dict(step_size=1, gamma=0.9), "StepLR", dict(step_size=1, gamma=0.9)),
    (optim.ExponentialDecay, dict(gamma=0.9), "ExponentialLR", dict(gamma=0.9)),
    (optim.PolynomialDecay, dict(max_epochs=10), "PolynomialLR", dict(total_iters=10, power=1.0)),
    (optim.PolynomialDecay, dict(max_epochs=12, power=2.0), "PolynomialLR", dict(total_iters=12, power=2.0)),
    (optim.PolynomialDecay, dict(max_epochs=7, power=0.5), "PolynomialLR", dict(total_iters=7, power=0.5)),
    (optim.CosineAnnealing, dict(T_max=10), "CosineAnnealingLR", dict(T_max=10)),
    (optim.CosineAnnealing, dict(T_max=8, eta_min=1e-3), "CosineAnnealingLR", dict(T_max=8, eta_min=1e-3)),
]


@pytest.mark.parametrize("schedule_class,kwargs,torch_name,torch_kwargs", TORCH_EQUIVALENTS,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(TORCH_EQUIVALENTS)])
def test_schedules_match_torch(schedule_class, kwargs, torch_name, torch_kwargs):
    steps = 30  # past max_epochs / T_max too
    schedule = schedule_class(two_group_optimizer(), **kwargs)
    np.testing.assert_allclose(our_lrs(schedule, steps), torch_lrs(torch_name, torch_kwargs, steps),
                               rtol=1e-9, atol=1e-15)


def epochs_to_lr(table):
    """{epoch (1-based): lr} from rows (first_epoch, last_epoch, lr), as the lecture notes' tables read."""
    return {epoch: lr for first, last, lr in table for epoch in range(first, last + 1)}


@pytest.mark.parametrize("boundaries,values,table", [
    ([20, 30], [1e-3, 1e-4, 1e-5], [(1, 20, 1e-3), (21, 30, 1e-4), (31, 40, 1e-5)]),  # experiment #02
    ([25, 35], [1e-2, 1e-3, 1e-4], [(1, 25, 1e-2), (26, 35, 1e-3), (36, 65, 1e-4)]),  # experiment #03
    ([40, 60], [1e-3, 1e-4, 1e-5], [(1, 40, 1e-3), (41, 60, 1e-4), (61, 70, 1e-5)]),  # DeeperGoogLeNet, Adam
])
def test_piecewise_constant_reproduces_the_seed_experiments(boundaries, values, table):
    expected = epochs_to_lr(table)
    opt = two_group_optimizer()
    schedule = optim.PiecewiseConstant(opt, boundaries, values)
    for epoch in range(1, max(expected) + 1):
        assert schedule.lrs == [expected[epoch]] * 2, f"epoch {epoch}"
        schedule.step()


def test_polynomial_decay_is_minigooglenets_formula():
    base, max_epochs, power = 5e-3, 70, 1.0
    opt = two_group_optimizer(lr_a=base, lr_b=base)
    schedule = optim.PolynomialDecay(opt, max_epochs, power)
    for epoch in range(max_epochs):  # Keras' LearningRateScheduler passes 0-based epochs
        assert schedule.lrs[0] == pytest.approx(base * (1 - epoch / float(max_epochs)) ** power, rel=1e-12)
        schedule.step()


def test_linear_warmup_alone_and_wrapping_a_schedule():
    opt = two_group_optimizer(lr_a=0.4, lr_b=0.2)
    warmup = optim.LinearWarmup(opt, warmup_steps=3)
    assert warmup.per == "step"
    np.testing.assert_allclose(our_lrs(warmup, 6), [[0.1, 0.05], [0.2, 0.1], [0.3, 0.15]] + [[0.4, 0.2]] * 3)

    opt = two_group_optimizer(lr_a=0.4, lr_b=0.2)
    cosine = optim.CosineAnnealing(opt, T_max=10, per="step")
    warmup = optim.LinearWarmup(opt, warmup_steps=4, after=cosine)
    lrs = our_lrs(warmup, 16)
    reference = our_lrs(optim.CosineAnnealing(two_group_optimizer(0.4, 0.2), T_max=10), 12)
    np.testing.assert_allclose(lrs[:4], [[0.4 * k / 5, 0.2 * k / 5] for k in range(1, 5)])
    np.testing.assert_allclose(lrs[4:], reference)
    assert cosine.position == 12


SCHEDULE_FACTORIES = [
    lambda opt: optim.StepDecay(opt, step_size=3, gamma=0.5),
    lambda opt: optim.ExponentialDecay(opt, gamma=0.8),
    lambda opt: optim.PolynomialDecay(opt, max_epochs=15, power=2.0),
    lambda opt: optim.CosineAnnealing(opt, T_max=9, eta_min=1e-4),
    lambda opt: optim.PiecewiseConstant(opt, [5, 12], [1e-2, 1e-3, 1e-4]),
    lambda opt: optim.LinearWarmup(opt, 3, after=optim.StepDecay(opt, step_size=4, gamma=0.5)),
]


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("factory", SCHEDULE_FACTORIES,
                         ids=["step", "exponential", "polynomial", "cosine", "piecewise", "warmup"])
def test_schedule_state_round_trip(factory, through_file, tmp_path):
    straight = our_lrs(factory(two_group_optimizer()), 17)

    schedule = factory(two_group_optimizer())
    first = our_lrs(schedule, 7)
    saved = schedule.state_dict()
    if through_file:
        tinycnn.io.save({"schedule": saved}, tmp_path / "checkpoint.npz")
        saved = tinycnn.io.load(tmp_path / "checkpoint.npz")["schedule"]
    # a resumed run: new optimizer (its lrs as the user typed them), new schedule, load the position
    resumed = factory(two_group_optimizer(lr_a=0.5, lr_b=0.5))
    resumed.load_state_dict(saved)
    assert first + our_lrs(resumed, 10) == straight


def test_set_base_lr_on_resume_rescales_the_curve():
    schedule = optim.PolynomialDecay(two_group_optimizer(), max_epochs=10)
    for _ in range(4):
        schedule.step()
    schedule.set_base_lr(1e-3)  # ctrl+c, lower the lr, resume
    assert schedule.lrs == pytest.approx([1e-3 * 0.6] * 2)
    schedule.step()
    assert schedule.lrs == pytest.approx([1e-3 * 0.5] * 2)
    schedule.set_base_lr([1e-2, 1e-4])
    assert schedule.lrs == pytest.approx([1e-2 * 0.5, 1e-4 * 0.5])
    assert schedule.state_dict() == {"position": 5, "base_lrs": [1e-2, 1e-4]}


def test_schedule_bad_input():
    opt = two_group_optimizer()
    with pytest.raises(ValueError, match="per must be 'epoch' or 'step', got 'batch'"):
        optim.StepDecay(opt, 3, per="batch")
    with pytest.raises(ValueError, match="expected len\\(values\\) == len\\(boundaries\\) \\+ 1"):
        optim.PiecewiseConstant(opt, [10, 20], [1e-3, 1e-4])
    with pytest.raises(ValueError, match="boundaries must be increasing"):
        optim.PiecewiseConstant(opt, [20, 10], [1e-3, 1e-4, 1e-5])
    with pytest.raises(TypeError, match="PiecewiseConstant.set_base_lr"):
        optim.PiecewiseConstant(opt, [20], [1e-3, 1e-4]).set_base_lr(1e-2)
    with pytest.raises(ValueError, match="set_base_lr: got 3 lrs for 2 parameter groups"):
        optim.StepDecay(opt, 3).set_base_lr([1, 2, 3])
    with pytest.raises(ValueError, match="PolynomialDecay: max_epochs must be >= 1"):
        optim.PolynomialDecay(opt, 0)


def test_schedule_per_attribute_and_position():
    opt = two_group_optimizer()
    assert optim.CosineAnnealing(opt, 10).per == "epoch"
    schedule = optim.CosineAnnealing(opt, 10, per="step")
    assert schedule.per == "step"
    schedule.step()
    schedule.step()
    assert schedule.position == 2
    assert schedule.lrs[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 2 / 10)) / 2)
