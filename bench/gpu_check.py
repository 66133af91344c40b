"""The one-shot device check (issue #18): everything worth knowing from one short GPU session.

    python -m bench.gpu_check --out DIR             # on the GPU machine (bench/gpu_check.sh runs it)
    python -m bench.gpu_check --out DIR --dry-run   # the same stages on the CPU stand-in, tiny sizes

Stages, each in a subprocess of its own with a time cap, so a crash, a hang or a CUDA error in
one is logged and the next still runs:

1. ``environment``: nvidia-smi, nvcc, compute-sanitizer, Python and package versions, the device.
2. ``gpu_tests``: the GPU-marked kernel, backend and AMP tests on the device (pytest -m gpu).
3. ``kernel_check``: every CUDA kernel against kernels/reference.py at the MiniVGG and
   MiniGoogLeNet layer shapes for batch 128 (float16 too where a kernel has it): max errors.
4. ``timing``: training steps of MiniVGG and MiniGoogLeNet at batch 128 and 512, tinycnn in
   float32, TF32, AMP and, where the engine offers them (detected at run time), CUDA graphs,
   beside PyTorch (float32 defaults; autocast float16 + channels_last + cudnn.benchmark), in the
   same run: images/s, ratio to PyTorch, TFLOP/s, host ms vs wall ms vs GPU ms per step.
5. ``sanitizer``: ``compute-sanitizer --tool memcheck`` on one small training step.

Everything goes to DIR/log (all output) and DIR/summary.json. With --dry-run the stages use
PYTHONPATH=tests/fake_gpu (the NumPy stand-in of CuPy), batch 2 and one model size; PyTorch
runs on the CPU in float32, its AMP column is marked absent.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
FAKE_GPU = REPOSITORY / "tests" / "fake_gpu"
# (stage, seconds it may take on the GPU machine): 470 s in all, under the 8 minutes
STAGES = [("environment", 30), ("gpu_tests", 120), ("kernel_check", 60), ("timing", 180), ("sanitizer", 80)]
MODELS = ("minivgg", "minigooglenet")


# ---------------------------------------------------------------------------------------------
# the driver

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"))
    parser.add_argument("--dry-run", action="store_true", help="the CPU stand-in, tiny sizes")
    parser.add_argument("--stage", help=argparse.SUPPRESS)        # run one stage in this process
    parser.add_argument("--only", nargs="*", help="run only these stages")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    if args.stage:
        return run_stage(args.stage, out, args.dry_run)
    summary = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "stages": {}}
    with open(out / "log", "a") as log:
        for name, cap in STAGES:
            if args.only and name not in args.only:
                continue
            summary["stages"][name] = run_subprocess_stage(name, cap, out, args.dry_run, log)
            _write_summary(out, summary)
    _write_summary(out, summary)
    failed = [name for name, stage in summary["stages"].items() if stage["status"] != "ok"]
    print(f"gpu_check: {len(summary['stages']) - len(failed)} stages ok" + (f", not ok: {failed}" if failed else ""))
    return 1 if failed else 0


def _write_summary(out, summary):
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1, default=str)


def stage_environment(dry_run):
    """PYTHONPATH for the stages: the stand-in first in a dry run."""
    env = dict(os.environ)
    if dry_run:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAKE_GPU), env.get("PYTHONPATH")]))
    return env


def run_subprocess_stage(name, cap, out, dry_run, log):
    """Run one stage in a subprocess under its time cap; its output goes to the log."""
    log.write(f"\n== stage {name} (cap {cap} s) {time.strftime('%H:%M:%S')}\n")
    log.flush()
    command = [sys.executable, "-m", "bench.gpu_check", "--stage", name, "--out", str(out)]
    command += ["--dry-run"] if dry_run else []
    result_file = out / "stages" / f"{name}.json"
    result_file.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        process = subprocess.run(command, cwd=REPOSITORY, env=stage_environment(dry_run), stdout=log,
                                 stderr=subprocess.STDOUT, timeout=cap)
        status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {cap} s"
    seconds = round(time.perf_counter() - start, 1)
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    log.write(f"== stage {name}: {status} in {seconds} s\n")
    log.flush()
    return {"status": status, "seconds": seconds, "result": result}


def run_stage(name, out, dry_run):
    """In the stage's subprocess: run it, write stages/NAME.json (also what it got to before an error)."""
    result = {}
    try:
        STAGE_FUNCTIONS[name](result, dry_run, out)
        code = 0
    except Exception:
        traceback.print_exc()
        result["error"] = traceback.format_exc(limit=3)
        code = 1
    with open(out / "stages" / f"{name}.json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    return code


def _save_progress(result, out, name):
    """Write what a stage has so far, so a timeout still leaves its figures."""
    with open(out / "stages" / f"{name}.json", "w") as f:
        json.dump(result, f, indent=1, default=str)


# ---------------------------------------------------------------------------------------------
# 1. environment

def _command(*argv, timeout=20):
    if shutil.which(argv[0]) is None:
        return f"{argv[0]}: not found"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired:
        return f"{argv[0]}: timed out"


def sanitizer_path():
    found = shutil.which("compute-sanitizer")
    for candidate in (found, "/usr/local/cuda/bin/compute-sanitizer"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def environment(result, dry_run, out):
    result["python"] = sys.version.split()[0]
    result["platform"] = platform.platform()
    result["nvidia_smi"] = _command("nvidia-smi")
    result["nvcc"] = _command("nvcc", "--version").splitlines()[-1:]
    tool = sanitizer_path()
    result["compute_sanitizer"] = _command(tool, "--version").splitlines()[-1:] if tool else "not found"
    for package in ("numpy", "numba", "cupy", "torch", "hypothesis", "pytest"):
        try:
            module = __import__(package)
            result[package] = getattr(module, "__version__", "?")
        except Exception as error:                 # absent or broken: say which
            result[package] = f"absent ({type(error).__name__}: {error})"
    import tinycnn
    result["tinycnn"] = tinycnn.__version__
    result["gpu_available"] = tinycnn.cuda.is_available()
    result["device"] = device_name()
    result["offers"] = engine_offers()
    print(json.dumps(result, indent=1))


def device_name():
    import cupy
    if getattr(cupy, "IS_STAND_IN", False):
        return "CPU stand-in (tests/fake_gpu)"
    properties = cupy.cuda.runtime.getDeviceProperties(0)
    name = properties["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def engine_offers():
    """What this tinycnn can do on the GPU, detected (not assumed): TF32, AMP, CUDA graphs."""
    import inspect
    import tinycnn
    from tinycnn.train import fit
    parameters = inspect.signature(fit).parameters
    return {"tf32": hasattr(type(tinycnn.cuda), "allow_tf32"),
            "amp": _has_module("tinycnn.amp"),
            "fit_amp": "amp" in parameters,
            "fit_cuda_graph": "cuda_graph" in parameters}


def _has_module(name):
    import importlib
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------------
# 2. the GPU-marked tests

def gpu_tests(result, dry_run, out):
    files = ["tests/test_cuda_kernels.py", "tests/test_cuda_backend.py", "tests/test_amp.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rfE",
               "--durations=5"]
    if dry_run:      # the stand-in runs these suites in CI already: a few quick ones prove the wiring
        command += ["tests/test_amp.py", "-k", "default_scaler or doubles"]
    else:
        command += files
    result["command"] = " ".join(command)
    # streamed to the log line by line, and stopped before the stage's cap, so a slow run
    # still leaves its progress and this stage's result
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.perf_counter() + dict(STAGES)["gpu_tests"] - 15
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line.strip())
        if time.perf_counter() > deadline:
            process.kill()
            lines.append("stopped: the stage's time cap")
            break
    result["exit"] = process.wait()
    result["summary_line"] = next((line for line in reversed(lines) if line), "")
    if result["exit"] != 0:
        raise RuntimeError(f"pytest exited {result['exit']}: {result['summary_line']}")


# ---------------------------------------------------------------------------------------------
# 3. every kernel against the reference at the zoo's layer shapes

def layer_shapes(model_name):
    """The arguments of every convolution, pooling, BatchNorm and dropout of one training forward
    pass at batch 1, as the engine calls them (recorded with a FunctionHook)."""
    import tinycnn
    from tinycnn import models
    seen = []

    class Record(tinycnn.FunctionHook):
        def forward_postprocess(self, function, inputs, outputs):
            kind = type(function).__name__
            shape = tuple(inputs[0].shape[1:])
            if kind.startswith("Conv2d") and hasattr(function, "oh"):
                seen.append(("conv", shape, tuple(function.weight.shape), function.stride, function.padding,
                             function.dilation, (function.oh, function.ow)))
            elif kind in ("MaxPool2d", "AvgPool2d"):
                seen.append((kind, shape, function.kernel, function.stride, function.padding, function.out))
            elif kind == "BatchNorm":
                seen.append(("BatchNorm", shape))
            elif kind == "Dropout":
                seen.append(("Dropout", shape))

    tinycnn.manual_seed(0)
    model = models.get(model_name, num_classes=10)
    model.train()
    with Record(), tinycnn.no_grad():
        model(tinycnn.Tensor(np.zeros((2, 3, 32, 32), np.float32)))
    return list(dict.fromkeys(seen))           # unique, in order


def kernel_tasks(batch):
    """(kernel, label, arguments builder) for each unique layer shape of both models, plus the
    kernels the two models do not use (LRN, depthwise) at a MiniVGG-sized shape."""
    from tinycnn.kernels import Window
    tasks = []
    for model_name in MODELS:
        for layer in layer_shapes(model_name):
            kind, shape = layer[0], layer[1]
            if kind == "conv":
                _, _, weight, stride, padding, dilation, (oh, ow) = layer
                kh, kw = weight[2:]
                if (kh, kw) == (1, 1) and stride == (1, 1) and padding == (0, 0):
                    continue                     # a 1x1 convolution runs no kernel of ours
                window = Window((kh, kw), stride, padding, dilation)
                label = f"{model_name} x{(batch, *shape)} w{weight}"
                tasks.append(("im2col", label, (batch, *shape), (window,)))
                tasks.append(("im2col_by_channel", label, (batch, *shape), (window,)))
                tasks.append(("col2im", label, (batch, shape[0], kh, kw, oh, ow), (window, shape[1:])))
            elif kind in ("MaxPool2d", "AvgPool2d"):
                _, _, kernel, stride, padding, pool_out = layer
                label = f"{model_name} x{(batch, *shape)} k{kernel} s{stride}"
                tasks.append((kind, label, (batch, *shape), (*kernel, *stride, *padding, *pool_out)))
            elif kind in ("BatchNorm", "Dropout"):
                tasks.append((kind, f"{model_name} x{(batch, *shape)}", (batch, *shape), ()))
    tasks.append(("LRN", "MiniVGG-sized", (batch, 64, 16, 16), ()))
    tasks.append(("depthwise", "MiniVGG-sized", (batch, 64, 16, 16), (Window.of(3, padding=1),)))
    return list(dict.fromkeys(tasks))


# Largest error allowed, relative to the largest reference value: float32 results sum up to a
# few thousand terms (BatchNorm's gradient over a batch's pixels cancels most of them);
# float16 ones are computed in float and rounded once, 2**-11, plus float sums in other orders.
TOLERANCE = {"float32": 1e-3, "float16": 2.0**-9}


def _errors(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = float(np.max(np.abs(want), initial=0.0)) or 1.0
    error = float(np.max(np.abs(got - want), initial=0.0))
    return {"max_abs": error, "max_rel": error / scale}


def run_kernel_task(task, dtype, rng):
    """[(kernel name, {max_abs, max_rel})] of one task in one dtype: the device result against the
    reference computed in float64 from the same (dtype-rounded) inputs."""
    import cupy
    from tinycnn import kernels
    from tinycnn.kernels import reference
    kind, _, shape, args = task
    put = lambda a: cupy.asarray(a.astype(dtype))
    exact = lambda a: a.astype(dtype).astype(np.float64)
    x = rng.standard_normal(shape).astype(np.float32)
    out = []
    if kind in ("im2col", "col2im"):
        got = getattr(kernels, kind)(put(x), *args)
        out.append((kind, _errors(cupy.asnumpy(got), getattr(reference, kind)(exact(x), *args))))
    elif kind == "im2col_by_channel":       # im2col's columns with the batch inside each row
        if not hasattr(kernels, kind):
            return []
        got = kernels.im2col_by_channel(put(x), *args)
        want = reference.im2col(exact(x), *args).transpose(1, 2, 3, 0, 4, 5)
        out.append((kind, _errors(cupy.asnumpy(got), want)))
    elif kind == "MaxPool2d":
        y, argmax = kernels.max_pool2d_forward(put(x), *args)
        want_y, want_argmax = reference.max_pool2d_forward(exact(x), *args)
        out.append(("max_pool2d_forward", _errors(cupy.asnumpy(y), want_y)))
        out.append(("max_pool2d_forward argmax mismatches",
                    {"count": int(np.sum(cupy.asnumpy(argmax) != want_argmax))}))
        gy = rng.standard_normal(want_y.shape).astype(np.float32)
        got = kernels.max_pool2d_backward(put(gy), argmax, *shape[2:], *args[:6])
        out.append(("max_pool2d_backward",
                    _errors(cupy.asnumpy(got), reference.max_pool2d_backward(exact(gy), cupy.asnumpy(argmax),
                                                                              *shape[2:], *args[:6]))))
    elif kind == "AvgPool2d":
        y = kernels.avg_pool2d_forward(put(x), *args, True)
        want = reference.avg_pool2d_forward(exact(x), *args, True)
        out.append(("avg_pool2d_forward", _errors(cupy.asnumpy(y), want)))
        gy = rng.standard_normal(want.shape).astype(np.float32)
        got = kernels.avg_pool2d_backward(put(gy), *shape[2:], *args[:6], True)
        out.append(("avg_pool2d_backward",
                    _errors(cupy.asnumpy(got), reference.avg_pool2d_backward(exact(gy), *shape[2:], *args[:6], True))))
    elif kind == "BatchNorm":
        x3 = x.reshape(shape[0], shape[1], -1)
        gamma, beta = rng.standard_normal((2, shape[1])).astype(np.float32)
        y, mean, var = kernels.batch_norm_forward_train(put(x3), put(gamma), put(beta), 1e-5, True)
        want = reference.batch_norm_forward_train(exact(x3), exact(gamma), exact(beta), 1e-5, True)
        out.append(("batch_norm_forward_train (relu)", _errors(cupy.asnumpy(y), want[0])))
        out.append(("batch_norm mean", _errors(cupy.asnumpy(mean), want[1])))
        out.append(("batch_norm var", _errors(cupy.asnumpy(var), want[2])))
        gy = rng.standard_normal(x3.shape).astype(np.float32)
        got = kernels.batch_norm_backward(put(x3), put(gy), put(gamma), mean, var, 1e-5, y)
        expected = reference.batch_norm_backward(exact(x3), exact(gy), exact(gamma), want[1], want[2], 1e-5, want[0])
        for name, g, w in zip(("gx", "ggamma", "gbeta"), got, expected):
            out.append((f"batch_norm_backward {name}", _errors(cupy.asnumpy(g), w)))
        running = rng.random(shape[1]).astype(np.float32) + 0.5
        got = kernels.batch_norm_forward_eval(put(x3), put(gamma), put(beta), put(mean.get() * 0 + running),
                                              put(running), 1e-5)
        out.append(("batch_norm_forward_eval",
                    _errors(cupy.asnumpy(got), reference.batch_norm_forward_eval(
                        exact(x3), exact(gamma), exact(beta), exact(running), exact(running), 1e-5))))
    elif kind == "Dropout":
        mask = rng.random(shape) >= 0.5
        got = kernels.dropout_apply(put(x), cupy.asarray(mask), 2.0)
        out.append(("dropout_apply", _errors(cupy.asnumpy(got), exact(x) * mask * 2.0)))
    elif kind == "LRN":
        y, scale = kernels.lrn_forward(put(x), 5, 1e-4, 0.75, 2.0)
        want_y, want_scale = reference.lrn_forward(exact(x), 5, 1e-4, 0.75, 2.0)
        out.append(("lrn_forward", _errors(cupy.asnumpy(y), want_y)))
        gy = rng.standard_normal(shape).astype(np.float32)
        got = kernels.lrn_backward(put(x), y, scale, put(gy), 5, 1e-4, 0.75)
        out.append(("lrn_backward", _errors(cupy.asnumpy(got), reference.lrn_backward(
            exact(x), want_y, want_scale, exact(gy), 5, 1e-4, 0.75))))
    elif kind == "depthwise":
        (window,), size = args, shape[2:]
        weight = rng.standard_normal((shape[1], 1, *window.kernel)).astype(np.float32)
        got = kernels.depthwise_conv2d_forward(put(x), put(weight), window)
        want = reference.depthwise_conv2d_forward(exact(x), exact(weight), window)
        out.append(("depthwise_conv2d_forward", _errors(cupy.asnumpy(got), want)))
        gy = rng.standard_normal(want.shape).astype(np.float32)
        got = kernels.depthwise_conv2d_backward_input(put(gy), put(weight), window, size)
        out.append(("depthwise_conv2d_backward_input", _errors(cupy.asnumpy(got), reference.depthwise_conv2d_backward_input(
            exact(gy), exact(weight), window, size))))
        got = kernels.depthwise_conv2d_backward_weight(put(x), put(gy), window)
        out.append(("depthwise_conv2d_backward_weight", _errors(cupy.asnumpy(got), reference.depthwise_conv2d_backward_weight(
            exact(x), exact(gy), window))))
    return out


def kernel_check(result, dry_run, out, cap=dict(STAGES)["kernel_check"]):
    from tinycnn.kernels import cuda as kcuda
    batch = 2 if dry_run else 128
    deadline = time.perf_counter() + 0.8 * cap
    tasks = kernel_tasks(batch)
    tasks.sort(key=lambda task: int(np.prod(task[2])))       # smallest first: every kernel early
    half_kernels = getattr(kcuda, "HALF_KERNELS", frozenset())
    half_tasks = {"im2col": "im2col", "im2col_by_channel": "im2col_by_channel", "col2im": "col2im",
                  "MaxPool2d": "max_pool2d_forward", "AvgPool2d": "avg_pool2d_forward", "Dropout": "dropout_apply"}
    worst, skipped = {}, []
    rng = np.random.default_rng(0)
    result.update(batch=batch, worst=worst, skipped_for_time=skipped)
    for task in tasks:
        if time.perf_counter() > deadline:
            skipped.append(task[:2])
            continue
        dtypes = [np.float32] + ([np.float16] if half_tasks.get(task[0]) in half_kernels else [])
        for dtype in dtypes:
            for kernel, errors in run_kernel_task(task, dtype, rng):
                key = f"{kernel} {np.dtype(dtype).name}"
                previous = worst.get(key)
                if previous is None or errors.get("max_rel", errors.get("count", 0)) > \
                        previous.get("max_rel", previous.get("count", 0)):
                    worst[key] = {**errors, "shape": task[1]}
                worst[key]["shapes_checked"] = worst[key].get("shapes_checked", 0) + 1
        _save_progress(result, out, "kernel_check")
    result["over_tolerance"] = {key: value for key, value in worst.items()
                                if value.get("count", 0) > 0 or value.get("max_rel", 0) > TOLERANCE[key.split()[-1]]}
    checked = {key.split()[0] for key in worst}
    result["kernels_not_checked"] = sorted(
        name for name in dir(kcuda) if not name.startswith("_") and callable(getattr(kcuda, name))
        and name not in checked and name not in ("source_files", "program_source") and name[0].islower())
    print(json.dumps(result, indent=1, default=str))
    if result["over_tolerance"]:
        raise RuntimeError(f"kernels over tolerance: {sorted(result['over_tolerance'])}")


# ---------------------------------------------------------------------------------------------
# 4. training steps, tinycnn beside PyTorch

def _flops_per_image(model_name):
    import tinycnn
    from tinycnn import models
    return 2 * 3 * tinycnn.summary(models.get(model_name, num_classes=10), (3, 32, 32)).total_macs


def measure(step, sync, events, steps, warmup):
    """Run `step` warmup + steps times -> {host_ms, wall_ms, gpu_ms} per step. host_ms: Python's
    time to queue one step; wall_ms: the measured steps end to end (synchronised once at the end);
    gpu_ms: the device's elapsed time from the first to the last step (events), None without."""
    for _ in range(warmup):
        step()
    sync()
    start_event, end_event = events() if events else (None, None)
    host = 0.0
    start = time.perf_counter()
    if start_event is not None:
        start_event.record()
    for _ in range(steps):
        before = time.perf_counter()
        step()
        host += time.perf_counter() - before
    if end_event is not None:
        end_event.record()
    sync()
    wall = time.perf_counter() - start
    gpu = None
    if start_event is not None:
        try:
            gpu = start_event.elapsed_time(end_event) if hasattr(start_event, "elapsed_time") else \
                _cupy_elapsed(start_event, end_event)
        except Exception:                # the stand-in's events carry no time
            gpu = None
    return {"host_ms": 1e3 * host / steps, "wall_ms": 1e3 * wall / steps,
            "gpu_ms": None if gpu is None else gpu / steps}


def _cupy_elapsed(start, end):
    import cupy
    return cupy.cuda.get_elapsed_time(start, end)


def tinycnn_runner(model_name, batch, mode):
    """A training step of the zoo model in `mode` ("float32", "tf32", "amp") -> (step, sync, events)."""
    import cupy
    import tinycnn
    import tinycnn.functions as F
    from tinycnn import models, nn
    tinycnn.manual_seed(0)
    tinycnn.keep_freed_memory()
    tinycnn.cuda.allow_tf32 = mode == "tf32"
    model = nn.fuse(models.get(model_name, num_classes=10)).to("cuda")
    model.train()
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.random((batch, 3, 32, 32), dtype=np.float32)).to("cuda")
    labels = tinycnn.Tensor(rng.integers(0, 10, batch)).to("cuda").data
    use_amp = mode == "amp"
    if use_amp:
        from tinycnn import amp
        scaler = amp.GradScaler()

    def step():
        optimizer.zero_grad()
        if use_amp:
            with amp.autocast():
                loss = F.softmax_cross_entropy(model(x), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss = F.softmax_cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()

    return step, lambda: cupy.cuda.Device().synchronize(), lambda: (cupy.cuda.Event(), cupy.cuda.Event())


def tinycnn_fit_runner(model_name, batch, mode, cuda_graph):
    """One epoch of tinycnn.train.fit over `steps` identical batches, graphed or eager -> seconds
    per step from the difference of two epochs' lengths (capture and start-up cancel)."""
    import cupy
    import tinycnn
    from tinycnn import models
    from tinycnn.data import DataLoader
    from tinycnn.train import fit

    def epoch(batches):
        tinycnn.manual_seed(0)
        tinycnn.cuda.allow_tf32 = mode == "tf32"
        model = models.get(model_name, num_classes=10).to("cuda")
        images = np.random.default_rng(0).integers(0, 255, (batches * batch, 3, 32, 32), dtype=np.uint8)
        loader = DataLoader((images, np.arange(batches * batch) % 10), batch_size=batch, device="cuda",
                            prefetch=False)
        options = {"cuda_graph": cuda_graph}
        if mode == "amp":
            options["amp"] = True
        start = time.perf_counter()
        fit(model, loader, optimizer=tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), epochs=1,
            verbose=0, **options)
        cupy.cuda.Device().synchronize()
        return time.perf_counter() - start

    return epoch


def torch_runner(model_name, batch, mode, device):
    """A PyTorch training step: "float32" (defaults) or "amp" (autocast float16, channels_last,
    cudnn.benchmark, GradScaler) -> (step, sync, events)."""
    import torch
    from .torch_models import BUILDERS
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = mode == "amp"
    model = BUILDERS[model_name]().to(device)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((batch, 3, 32, 32), dtype=np.float32)).to(device)
    labels = torch.from_numpy(rng.integers(0, 10, batch)).to(device)
    if mode == "amp":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        scaler = torch.amp.GradScaler("cuda")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        if mode == "amp":
            with torch.autocast("cuda", dtype=torch.float16):
                loss = torch.nn.functional.cross_entropy(model(x), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss = torch.nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()

    on_gpu = device == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    events = (lambda: (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))) if on_gpu else None
    return step, sync, events


def timing(result, dry_run, out, cap=dict(STAGES)["timing"]):
    import cupy
    import tinycnn
    offers = engine_offers()
    batches = (2,) if dry_run else (128, 512)
    steps, warmup = (1, 0) if dry_run else (10, 3)
    models = MODELS[:1] if dry_run else MODELS          # the stand-in is slow: MiniVGG shows the wiring
    deadline = time.perf_counter() + 0.9 * cap
    try:
        import torch
        torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        torch, torch_device = None, None
    rows = []
    result.update(rows=rows, device=device_name(), offers=offers, steps=steps, warmup=warmup,
                  torch_device=torch_device)
    tinycnn_modes = ["float32"] + ["tf32"] * offers["tf32"] + ["amp"] * offers["amp"]
    for batch in batches:
        for model_name in models:
            flops = _flops_per_image(model_name) * batch
            plans = [("pytorch", mode) for mode in ("float32", "amp")] + [("tinycnn", m) for m in tinycnn_modes]
            if offers["fit_cuda_graph"]:
                plans += [("tinycnn fit", m) for m in ("float32", "amp") if m == "float32" or offers["fit_amp"]]
                plans += [("tinycnn fit graphed", m) for m in ("float32", "amp") if m == "float32" or offers["fit_amp"]]
            for framework, mode in plans:
                row = {"model": model_name, "batch": batch, "framework": framework, "mode": mode}
                rows.append(row)
                if time.perf_counter() > deadline:
                    row["status"] = "not run (stage time cap)"
                    continue
                try:
                    if framework == "pytorch":
                        if torch is None:
                            row["status"] = "absent (torch not importable)"
                            continue
                        if mode == "amp" and torch_device != "cuda":
                            row["status"] = "absent (no CUDA in torch: autocast float16 needs the GPU)"
                            continue
                        row.update(measure(*torch_runner(model_name, batch, mode, torch_device), steps, warmup))
                    elif framework == "tinycnn":
                        row.update(measure(*tinycnn_runner(model_name, batch, mode), steps, warmup))
                    else:
                        epoch = tinycnn_fit_runner(model_name, batch, mode, cuda_graph="graphed" in framework)
                        short, long = epoch(warmup + 1), epoch(warmup + 1 + steps)
                        row.update(wall_ms=1e3 * (long - short) / steps, host_ms=None, gpu_ms=None)
                    row["img_per_s"] = batch / (row["wall_ms"] / 1e3) if row["wall_ms"] > 0 else None
                    row["tflops"] = flops / (row["wall_ms"] / 1e3) / 1e12 if row["wall_ms"] > 0 else None
                    row["status"] = "ok"
                except Exception as error:
                    traceback.print_exc()
                    row["status"] = f"failed: {type(error).__name__}: {error}"[:300]
                finally:
                    tinycnn.cuda.allow_tf32 = False
                    cupy.get_default_memory_pool().free_all_blocks() if hasattr(cupy, "get_default_memory_pool") \
                        else None
                print(json.dumps(row, default=str), flush=True)
                _save_progress(result, out, "timing")
    _add_ratios(rows)
    _save_progress(result, out, "timing")
    print(_table(rows))
    failed = [f"{r['model']} {r['batch']} {r['framework']} {r['mode']}" for r in rows
              if r["status"].startswith("failed")]
    if failed:
        raise RuntimeError(f"timing failed for {failed}")


def _add_ratios(rows):
    """ratio_to_pytorch: img/s over PyTorch's at the same model and batch, float32 modes against
    PyTorch float32, AMP against PyTorch AMP (channels_last, cudnn.benchmark)."""
    baseline = {(r["model"], r["batch"], r["mode"]): r.get("img_per_s") for r in rows if r["framework"] == "pytorch"}
    for row in rows:
        reference = baseline.get((row["model"], row["batch"], "amp" if row["mode"] == "amp" else "float32"))
        if row["framework"] != "pytorch" and row.get("img_per_s") and reference:
            row["ratio_to_pytorch"] = row["img_per_s"] / reference


def _table(rows):
    lines = [f"{'model':14s} {'batch':>5s} {'framework':20s} {'mode':8s} {'img/s':>9s} {'ratio':>6s} "
             f"{'TFLOP/s':>8s} {'host ms':>8s} {'wall ms':>8s} {'gpu ms':>8s}  status"]
    number = lambda value, digits: "-" if value is None else f"{value:.{digits}f}"
    for r in rows:
        lines.append(f"{r['model']:14s} {r['batch']:5d} {r['framework']:20s} {r['mode']:8s} "
                     f"{number(r.get('img_per_s'), 0):>9s} {number(r.get('ratio_to_pytorch'), 2):>6s} "
                     f"{number(r.get('tflops'), 2):>8s} {number(r.get('host_ms'), 2):>8s} "
                     f"{number(r.get('wall_ms'), 2):>8s} {number(r.get('gpu_ms'), 2):>8s}  {r.get('status')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# 5. compute-sanitizer memcheck on one small step

def tiny_step(result, dry_run, out):
    """One float32 and one AMP training step of a small net at batch 4 on the device."""
    import tinycnn
    import tinycnn.functions as F
    from tinycnn import amp, nn
    tinycnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Dropout(0.3),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32)).to("cuda")
    labels = tinycnn.Tensor(rng.integers(0, 10, 4)).to("cuda").data
    scaler = amp.GradScaler(init_scale=2.0**8)
    losses = []
    for use_amp in (False, True):
        optimizer.zero_grad()
        with amp.autocast(use_amp):
            loss = F.softmax_cross_entropy(model(x), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    result["losses"] = losses
    if not all(np.isfinite(losses)):
        raise RuntimeError(f"the small step's losses are not finite: {losses}")
    print("tiny step losses", losses)


def sanitizer(result, dry_run, out, cap=dict(STAGES)["sanitizer"]):
    tool = sanitizer_path()
    command = [sys.executable, "-m", "bench.gpu_check", "--stage", "tiny_step", "--out", str(out)]
    command += ["--dry-run"] if dry_run else []
    if tool is None or dry_run:
        result["tool"] = "not used: " + ("a dry run (the stand-in runs on the CPU)" if dry_run else
                                         "compute-sanitizer not found")
    else:
        command = [tool, "--tool", "memcheck", "--error-exitcode", "99", "--leak-check", "no"] + command
        result["tool"] = tool
    result["command"] = " ".join(command)
    try:
        done = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=cap - 10)
    except subprocess.TimeoutExpired:
        result["status"] = f"timed out after {cap - 10} s"
        raise
    output = done.stdout + done.stderr
    print(output[-8000:])
    result["exit"] = done.returncode
    result["error_summary"] = [line for line in output.splitlines() if "ERROR SUMMARY" in line]
    if done.returncode != 0:
        raise RuntimeError(f"the small step under the sanitizer exited {done.returncode}")


STAGE_FUNCTIONS = {"environment": environment, "gpu_tests": gpu_tests, "kernel_check": kernel_check,
                   "timing": timing, "sanitizer": sanitizer, "tiny_step": tiny_step}


if __name__ == "__main__":
    sys.exit(main())
