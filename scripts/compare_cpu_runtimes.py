"""Measure the candidate fast CPU runtimes side by side: how OpenVINO was chosen.

    python scripts/compare_cpu_runtimes.py [--model resunetpp] [--runs 30]

Times batch-1 inference of an untrained network (latency does not depend on the weights' values)
in torch eager fp32, ONNX Runtime fp32, OpenVINO fp32 and OpenVINO at its default precision (bf16
where the CPU computes it natively), in one run, and prints each one's speed-up over torch and
its largest difference from torch's logits.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import openvino as ov
import torch

from polypview.bench import time_calls
from polypview.nets import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resunetpp")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    torch.manual_seed(0)
    network = create_model(args.model).eval()
    images = torch.randn(1, 3, args.size, args.size)
    batch = images.numpy()
    with torch.inference_mode():
        reference = network(images).numpy()
    candidates = {"torch eager fp32": lambda: network(images).numpy()}

    scratch = Path(tempfile.mkdtemp(prefix="polypview-runtimes-"))
    onnx_path = scratch / "model.onnx"
    torch.onnx.export(network, (images,), onnx_path, input_names=["images"], dynamo=False)
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    candidates["onnxruntime fp32"] = lambda: session.run(None, {"images": batch})[0]

    exported = ov.convert_model(torch.export.export(network, (images,)))
    for label, hint in [
        ("openvino fp32", {"INFERENCE_PRECISION_HINT": "f32"}),
        ("openvino default", {}),
    ]:
        compiled = ov.Core().compile_model(exported, "CPU", {"PERFORMANCE_HINT": "LATENCY", **hint})
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        request = compiled.create_infer_request()

        def infer(request: ov.InferRequest = request) -> np.ndarray:
            request.infer({0: batch})
            return request.get_output_tensor(0).data.copy()

        candidates[f"{label} ({precision})"] = infer

    cpu = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    threads = torch.get_num_threads()
    print(f"{args.model} at {args.size}x{args.size}, batch 1, {threads} threads, {cpu}")
    baseline = None
    for label, infer in candidates.items():
        with torch.inference_mode():
            median = float(np.median(time_calls(infer, args.runs, warmup=5)))
            difference = float(np.abs(infer() - reference).max())
        baseline = baseline or median
        print(
            f"{label:<28} {median:8.1f} ms  {baseline / median:5.2f}x  max |diff| {difference:.1e}"
        )


if __name__ == "__main__":
    main()
