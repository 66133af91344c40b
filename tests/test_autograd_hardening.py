"""Autograd hardening: grad mode per thread, PyTorch's truth and identity semantics for
Tensors, and version counters that turn a tensor changed in place between forward and
backward into a clear error instead of a wrong gradient."""
import threading

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import Function, Tensor, nn, optim
from tinycnn.nn import Parameter

INPLACE_ERROR = "needed for gradient computation has been modified by an inplace operation"
TIMEOUT = 30   # seconds a thread may wait for the other: a broken handshake fails, never hangs


def run_threads(*targets):
    """Run each target in its own thread; re-raise the first failure in the calling thread."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as error:  # noqa: B902  (handed to the test thread)
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]


# ----- item 6: grad mode is per thread ------------------------------------------------
def test_no_grad_in_one_thread_leaves_another_recording():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def evaluator():
        with tinycnn.no_grad():
            inside.set()
            assert done.wait(TIMEOUT)
            seen["evaluator"] = tinycnn.is_grad_enabled()

    def trainer():
        assert inside.wait(TIMEOUT)
        w = Tensor([1.0, 2.0], requires_grad=True)
        y = (w * w).sum()
        seen["trainer"] = tinycnn.is_grad_enabled(), y.requires_grad, y.creator is not None
        y.backward()
        seen["grad"] = w.grad.copy()
        done.set()

    run_threads(evaluator, trainer)
    assert seen["evaluator"] is False
    assert seen["trainer"] == (True, True, True)
    np.testing.assert_array_equal(seen["grad"], [2.0, 4.0])


def test_overlapping_no_grad_blocks_in_two_threads_each_restore_their_own():
    """A enters, B enters, A leaves, B leaves: with one global switch A's exit would turn
    gradients back on inside B's block, and B's exit would restore A's False for good."""
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {"a": [], "b": []}

    def a():
        with tinycnn.no_grad():
            barrier.wait()          # 1: both inside
            barrier.wait()          # 2: B is inside too
        seen["a"].append(tinycnn.is_grad_enabled())
        barrier.wait()              # 3: A has left, B still inside
        barrier.wait()              # 4: B has left
        seen["a"].append(tinycnn.is_grad_enabled())

    def b():
        barrier.wait()              # 1
        with tinycnn.no_grad():
            barrier.wait()          # 2
            barrier.wait()          # 3
            seen["b"].append(tinycnn.is_grad_enabled())
        barrier.wait()              # 4
        seen["b"].append(tinycnn.is_grad_enabled())
        y = Tensor([1.0], requires_grad=True) * 2.0
        seen["b"].append(y.requires_grad)

    run_threads(a, b)
    assert seen["a"] == [True, True]
    assert seen["b"] == [False, True, True]
    assert tinycnn.is_grad_enabled()


def test_a_new_thread_starts_with_gradients_on():
    seen = []
    with tinycnn.no_grad():
        run_threads(lambda: seen.append(tinycnn.is_grad_enabled()))
        assert not tinycnn.is_grad_enabled()
    assert seen == [True]


def test_enable_grad_and_nesting_restore_the_previous_mode():
    with tinycnn.no_grad():
        with tinycnn.enable_grad():
            assert tinycnn.is_grad_enabled()
            with tinycnn.no_grad():
                assert not tinycnn.is_grad_enabled()
            assert tinycnn.is_grad_enabled()
        assert not tinycnn.is_grad_enabled()
    assert tinycnn.is_grad_enabled()
    with pytest.raises(KeyError):
        with tinycnn.no_grad():
            raise KeyError("leaving by an exception restores the mode too")
    assert tinycnn.is_grad_enabled()


def test_conv_on_the_worker_threads_trains_while_another_thread_is_in_no_grad():
    """Convolution chunks run on tinycnn.parallel's workers; their result and gradient must
    not depend on a no_grad block held open by some other thread."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 9, 9)).astype(np.float32)
    w0 = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)

    def weight_grad():
        w = Tensor(w0, requires_grad=True)
        F.conv2d(Tensor(x), w, padding=1).sum().backward()
        return w.grad

    expected = weight_grad()
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def evaluator():
        with tinycnn.no_grad():
            inside.set()
            assert done.wait(TIMEOUT)

    def trainer():
        assert inside.wait(TIMEOUT)
        try:
            seen["grad"] = weight_grad()
        finally:
            done.set()

    run_threads(evaluator, trainer)
    np.testing.assert_array_equal(seen["grad"], expected)   # the same arithmetic: bit for bit


# ----- item 7: truth value, identity, len/int/float -------------------------------------
def test_bool_of_a_one_element_tensor_is_its_value():
    assert not Tensor([0.0])
    assert Tensor([2.0])
    assert not Tensor(np.array(0))
    assert bool(Tensor(np.array([[True]])))
    assert not (Tensor([1.0]) > 3.0)


@pytest.mark.parametrize("data, words", [([1.0, 2.0], "more than one value"), (np.zeros(0), "no values")])
def test_bool_of_other_tensors_is_ambiguous(data, words):
    with pytest.raises(RuntimeError, match=f"Boolean value of Tensor with {words} is ambiguous"):
        bool(Tensor(data))
    with pytest.raises(RuntimeError, match="ambiguous"):
        if Tensor(data):
            pass


def test_membership_and_removal_never_confuse_two_tensors():
    v, w = Tensor([1.0, 2.0]), Tensor([1.0, 2.0])
    assert w in [w] and w in [w, v]                   # identity matches before any comparison
    with pytest.raises(RuntimeError, match="ambiguous"):
        w in [v]                                      # noqa: B015  (values would need .all(): refused)
    params = [v, w]
    with pytest.raises(RuntimeError, match="ambiguous"):
        params.remove(w)                              # used to remove v
    assert params[0] is v and params[1] is w
    assert w not in {v} and w in {w}                  # sets and dicts hash by identity
    with pytest.raises(KeyError):
        {v: "v"}[w]


def test_equality_is_elementwise_and_none_is_never_equal():
    x = Tensor([1.0, 2.0])
    np.testing.assert_array_equal((x == Tensor([1.0, 3.0])).data, [True, False])
    assert (x == None) is False and (x != None) is True   # noqa: E711  (the operators are the test)
    with pytest.raises(TypeError, match="not supported"):
        x < None                                          # noqa: B015


def test_len_int_float_follow_pytorch():
    assert len(Tensor(np.zeros((3, 2)))) == 3
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(np.array(1.0)))
    assert int(Tensor([3.7])) == 3 and float(Tensor(np.array([[2.5]]))) == 2.5
    for convert in (int, float):
        with pytest.raises(ValueError, match="only one element tensors"):
            convert(Tensor([1.0, 2.0]))
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert [r.shape for r in rows] == [(2,)] * 3
    np.testing.assert_array_equal(rows[2].data, [4.0, 5.0])


def test_optimizer_and_module_tell_equal_valued_parameters_apart():
    a, b = Parameter(np.ones(1, np.float32)), Parameter(np.ones(1, np.float32))
    opt = optim.SGD([a, b], lr=0.5)                    # not "a parameter appears twice"
    assert [id(p) for p in opt.parameters()] == [id(a), id(b)]
    a.grad, b.grad = np.ones(1, np.float32), np.full(1, 2.0, np.float32)
    opt.step()
    assert a.data[0] == 0.5 and b.data[0] == 0.0
    with pytest.raises(ValueError, match="more than one place"):
        optim.SGD([a, a], lr=0.1)

    model = nn.Module()
    model.first, model.second, model.again = a, b, a
    assert [id(p) for p in model.parameters()] == [id(a), id(b)]


# ----- item 8: version counters ---------------------------------------------------------
def two_layer_net():
    tinycnn.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def batch():
    rng = np.random.default_rng(1)
    return Tensor(rng.standard_normal((6, 4)).astype(np.float32)), rng.integers(0, 3, 6)


@pytest.mark.parametrize("make_optimizer", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                            lambda ps: optim.Adam(ps, lr=0.01)], ids=["SGD", "Adam"])
def test_an_optimizer_step_between_forward_and_backward_raises(make_optimizer):
    model = two_layer_net()
    opt = make_optimizer(list(model.parameters()))
    x, labels = batch()
    F.softmax_cross_entropy(model(x), labels).backward()
    loss = F.softmax_cross_entropy(model(x), labels)
    weight = model[2].weight                           # the last layer's weight: its backward reads it
    version = weight._version
    opt.step()                                         # changes the weights the graph saved
    expected = (f"{INPLACE_ERROR}: input 1 of Linear, of shape \\(3, 5\\), was changed by {type(opt).__name__}.step "
                f"and is at version {version + 1}; expected version {version}")
    with pytest.raises(RuntimeError, match=expected):
        loss.backward()


def test_a_normal_training_loop_never_raises_and_steps_bump_each_version_once():
    model = two_layer_net()
    params = list(model.parameters())
    opt = optim.Adam(params, lr=0.01)
    x, labels = batch()
    losses, versions = [], [p._version for p in params]
    for _ in range(5):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert [p._version for p in params] == [v + 5 for v in versions]
    assert losses[-1] < losses[0]


def test_setitem_on_a_saved_tensor_raises():
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = Tensor([4.0, 5.0, 6.0])
    y = (w * x).sum()
    x[0] = 1.0
    with pytest.raises(RuntimeError, match=f"{INPLACE_ERROR}: input 1 of Mul, of shape \\(3,\\), "
                                           "was changed by x\\[index\\] = value and is at version 1"):
        y.backward()


@pytest.mark.parametrize("change", [lambda x: x.__iadd__(1.0), lambda x: x.__isub__(1.0), lambda x: x.__imul__(2.0),
                                    lambda x: x.__itruediv__(2.0), lambda x: x.fill_(0.0), lambda x: x.zero_(),
                                    lambda x: x.copy_(Tensor([0.0, 1.0]))],
                         ids=["+=", "-=", "*=", "/=", "fill_", "zero_", "copy_"])
def test_every_in_place_change_of_a_saved_tensor_raises(change):
    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([3.0, 4.0])
    y = (w * x).sum()
    data = x.data
    assert change(x) is x and x.data is data           # really in place: the same array
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        y.backward()


def test_augmented_assignment_on_a_saved_tensor_raises():
    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([3.0, 4.0])
    y = (w * x).sum()
    x += 1.0
    with pytest.raises(RuntimeError, match=f"{INPLACE_ERROR}.*changed by \\+="):
        y.backward()


def test_changing_an_input_whose_value_backward_does_not_read_is_fine():
    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([3.0, 4.0])
    y = (w + x).sum() - x.sum() + x.reshape(2, 1).transpose().sum()   # add/sub/reshape/transpose read no input
    x += 10.0
    x[1] = -1.0
    y.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])

    weight = Tensor(np.ones((2, 3)), requires_grad=True)
    bias = Tensor(np.zeros(2), requires_grad=True)
    out = F.linear(Tensor(np.ones((4, 3))), weight, bias).sum()
    with tinycnn.no_grad():
        bias += 1.0                                    # linear's backward never reads the bias
    out.backward()
    np.testing.assert_array_equal(bias.grad, [4.0, 4.0])
    np.testing.assert_array_equal(weight.grad, np.full((2, 3), 4.0))


def test_conv_and_batch_norm_check_what_their_backward_reads():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(2, 3, 5, 5)))
    conv = nn.Conv2d(3, 4, 3).to(np.float64)
    out = conv(x).sum()
    with tinycnn.no_grad():
        conv.bias += 1.0                                   # conv's backward never reads the bias
    out.backward()
    np.testing.assert_allclose(conv.bias.grad, np.full(4, 9.0 * 2))
    out = conv(x).sum()
    with tinycnn.no_grad():
        conv.weight *= 2.0
    with pytest.raises(RuntimeError, match=r"Conv2d\w*.backward: .* modified by an inplace operation"):
        out.backward()


def test_batch_norm_eval_backward_uses_the_statistics_of_its_forward():
    """A training step between an eval forward and its backward moves the running statistics in
    place; the eval backward still divides by the standard deviation its forward used."""
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm2d(3).to(np.float64)
    bn.running_var[:] = 4.0
    x = Tensor(rng.normal(size=(2, 3, 4, 4)), requires_grad=True)
    out = bn.eval()(x).sum()
    bn.train()(Tensor(10 * rng.normal(size=(2, 3, 4, 4))))
    out.backward()
    np.testing.assert_allclose(x.grad, np.full(x.shape, 1 / np.sqrt(4.0 + bn.eps)))


def test_a_saved_output_changed_in_place_raises():
    x = Tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()                                        # exp's backward reads its output
    with tinycnn.no_grad():
        y *= 2.0
    with pytest.raises(RuntimeError, match=f"{INPLACE_ERROR}: output 0 of Exp"):
        y.sum().backward()


def test_views_and_detached_tensors_share_the_version():
    w = Tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    for change in (lambda x: x.reshape(2, 2).__setitem__(0, 9.0), lambda x: x[1:].fill_(0.0),
                   lambda x: x.detach().__setitem__(0, 9.0)):
        x = Tensor([1.0, 1.0, 1.0, 1.0])
        y = (w * x).sum()
        change(x)
        assert x._version == 1
        with pytest.raises(RuntimeError, match=INPLACE_ERROR):
            y.backward()


def test_a_function_without_declarations_checks_all_its_inputs_and_outputs():
    class Cube(Function):
        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, gy):
            return 3 * self.x ** 2 * gy

    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    y = Cube()(h)
    with tinycnn.no_grad():
        h += 1.0
    with pytest.raises(RuntimeError, match=f"{INPLACE_ERROR}: input 0 of Cube"):
        y.sum().backward()


def test_load_state_dict_and_retained_graphs_are_checked_too():
    model = two_layer_net()
    x, labels = batch()
    loss = F.softmax_cross_entropy(model(x), labels)
    loss.backward(retain_graph=True)
    model.load_state_dict(two_layer_net().state_dict())
    with pytest.raises(RuntimeError, match=f"{INPLACE_ERROR}.*changed by load_state_dict"):
        loss.backward()


def test_a_leaf_that_requires_grad_changes_in_place_only_under_no_grad():
    w = Parameter(np.ones(2, np.float32))
    for change in (lambda: w.__iadd__(1.0), lambda: w.__setitem__(0, 5.0), lambda: w.zero_()):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            change()
    np.testing.assert_array_equal(w.data, [1.0, 1.0])
    with tinycnn.no_grad():
        w -= 0.5 * Tensor([1.0, 2.0])                  # a hand-written SGD step, as in PyTorch
    assert isinstance(w, Parameter) and w.requires_grad and w._version == 1
    np.testing.assert_array_equal(w.data, [0.5, 0.0])


def test_augmented_assignment_inside_a_recorded_graph_is_out_of_place():
    w = Tensor([1.0, 2.0], requires_grad=True)
    h = w * 3.0
    first = h
    h += 1.0                                           # residual-style `out += identity`
    assert h is not first and first._version == 0
    (h * first).sum().backward()                       # d/dw (3w + 1) * 3w = 18w + 3
    np.testing.assert_allclose(w.grad, 18 * w.data + 3)
    with pytest.raises(RuntimeError, match="part of a recorded graph"):
        first[0] = 0.0


def test_in_place_errors_name_the_op_and_what_came():
    ints = Tensor(np.arange(3))
    with pytest.raises(TypeError, match="\\+=: the result has dtype float"):
        ints += 1.5
    with pytest.raises(TypeError, match="/=: .* int64 tensor"):
        ints /= 2
    with pytest.raises(ValueError, match="\\+=: an operand of shape \\(2,\\) does not broadcast to .* \\(3,\\)"):
        ints += np.ones(2, np.int64)
    with pytest.raises(IndexError, match="x\\[index\\] = value: .*out of bounds"):
        ints[5] = 1
    with pytest.raises(ValueError, match="copy_: .*shape"):
        ints.copy_(np.ones(4))
    assert ints._version == 0                          # nothing was written
    ints += 2
    ints *= 3
    np.testing.assert_array_equal(ints.data, [6, 9, 12])
    assert ints._version == 2
