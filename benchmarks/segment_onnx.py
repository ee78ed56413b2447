"""PyTorch eager against ONNX Runtime for the segmentation network (run by hand).

    .venv/bin/pip install onnxruntime onnx onnxscript   # benchmark only, not a dependency
    .venv/bin/python benchmarks/segment_onnx.py [--repeats 5] [--threads 2]

Issue 5 welcomes ONNX Runtime inference if it is faster, measured before choosing. On the
input of ``benchmarks/segment.py`` (a real T2 volume resampled to 15 × 512 × 512 at
0.6 × 0.6 × 4 mm) this prints, in one process with the same thread count:

- the median time of the whole ``segment_spine`` (for scale: the network is one part);
- the median time of the network alone on the same network-grid tensor (batches of 4
  slices, as ``segment.infer.predict_probabilities`` runs it), in PyTorch eager and in
  ONNX Runtime (the shipped weights exported with ``torch.onnx.export``, CPU execution
  provider, all graph optimisations), and their ratio;
- how far the two agree: the largest difference of any class probability and the share
  of pixels whose arg-max class differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from discquant.io.study import Volume
from discquant.segment import load_segmentation_model, segment_spine
from discquant.segment.preprocess import pad_to_multiple, reorient, to_network_grid

HERE = Path(__file__).resolve().parent
BATCH = 4


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("onnxruntime is not installed: .venv/bin/pip install onnxruntime onnx onnxscript")
    torch.set_num_threads(a.threads)

    spec = importlib.util.spec_from_file_location("bench_segment", HERE / "segment.py")
    assert spec is not None and spec.loader is not None
    bench_segment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_segment)
    inp = Path(tempfile.gettempdir()) / "discquant-bench-segment.npz"
    bench_segment.make_input(inp)
    d = np.load(inp)
    vol = Volume(data=d["data"], affine=d["affine"])

    model = load_segmentation_model()
    net = model.net.eval()
    x, (h, w) = pad_to_multiple(to_network_grid(reorient(vol), spacing_mm=model.spacing_mm), 16)
    batches = [x[i : i + BATCH] for i in range(0, x.shape[0], BATCH)]

    whole, _ = median_seconds(lambda: segment_spine(vol, model=model), a.repeats)

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([torch.softmax(net(b), dim=1).numpy() for b in batches])

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "segment.onnx"
        torch.onnx.export(
            net,
            (batches[0],),
            str(onnx_path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", max=64)}},
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def run_ort() -> np.ndarray:
        logits = np.concatenate([sess.run(None, {"x": b.numpy()})[0] for b in batches])
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    t_torch, times_torch = median_seconds(run_torch, a.repeats)
    t_ort, times_ort = median_seconds(run_ort, a.repeats)
    p_torch = run_torch()[:, :, :h, :w]
    p_ort = run_ort()[:, :, :h, :w]
    differ = float(np.mean(p_torch.argmax(axis=1) != p_ort.argmax(axis=1)))

    print(f"input: 15 x 512 x 512 sagittal T2; network input {tuple(x.shape)}, batches of {BATCH}")
    print(f"threads: {a.threads}; torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"segment_spine, whole (PyTorch eager): median {whole:.3f} s")
    print(f"network alone, PyTorch eager:  median {t_torch:.3f} s  ({_fmt(times_torch)})")
    print(f"network alone, ONNX Runtime:   median {t_ort:.3f} s  ({_fmt(times_ort)})")
    print(f"ratio eager / ONNX Runtime: {t_torch / t_ort:.2f}x; network share of segment_spine "
          f"{100 * t_torch / whole:.0f} %")  # fmt: skip
    print(
        f"agreement: max |probability difference| {np.abs(p_torch - p_ort).max():.2e}, "
        f"arg-max differs on {100 * differ:.4f} % of pixels"
    )


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


if __name__ == "__main__":
    main()
