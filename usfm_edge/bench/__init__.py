"""``usfm-edge bench``: format x speed x accuracy of one model on every backend x precision.

    result = run_bench("bundles/seg_ov_int8", backends=["onnxruntime", "openvino", "torch"],
                       precisions=["fp32", "int8"], threads=2, iters=50, val="data/seg")
    write_json(result, "b.json"); plot(result, "b.png"); rich.print(table(result))

Each cell runs in a process of its own (``usfm_edge.bench.cell``); see ``plan`` for which
artifact a cell runs, ``runner`` for the reference and the scoring, ``vendor`` for the
comparison with ``benchmark_app`` / ``trtexec``. Torch-free on a bundle (torch only when a
torch cell runs, in its own process); a model directory TARGET needs the train extra.

The result document (``schema`` "usfm-edge/bench", ``schema_version`` 1); times in
milliseconds unless named ``_s``, memory in MiB, null where not measured::

    schema, schema_version, usfm_edge_version, created (UTC, ISO 8601)
    machine     cpu, cores, usable_cores, cpu_flags, gpu, platform, python, libraries{name: version}
    target      path, kind ("bundle" | "model_dir"), task, labels, input_shape [C, H, W],
                model_dir (the fp32 source, when on this machine), work (exported variants)
    settings    backends, precisions, threads, device, warmup, iters, batch_size, val, val_frames,
                vendor_tools, known_backends
    metric      "dice" | "balanced_accuracy" | "psnr" | null (no --val)
    reference   backend, precision, artifact, status, reason, metric_value
    cells[]     one per requested backend x precision, in request order:
      backend, precision, status ("ok" | "skipped" | "failed"), reason (why not ok),
      artifact (the file or model directory run), reference (this cell is the reference),
      runs_in (what the backend computes in), float_precision (OpenVINO: the precision of
      the layers not quantized, bf16 by default on CPUs with it),
      load_s (load / compile), first_run_ms,
      latency   {batch 1, iters, p50_ms, p90_ms, p99_ms, mean_ms, min_ms, fps}
      batch     same at --batch-size B (null when B is 1; {batch, error} when the artifact
                cannot take B)
      peak_rss_mb, rss_before_load_mb   (the cell's own process)
      parity    {max_abs, max_rel, mean_abs} against the reference, on the same frames
      metric    {name, value, drop} (drop: the reference's value minus this one)
      vendor    {tool, command, median_ms, min_ms, ours_p50_ms, ours_min_ms, ratio (p50 / their
                median), ratio_min (min / min), within_target (ratio <= 1.05)} or
                {tool, skipped | error}; null for backends without a vendor tool
"""

from usfm_edge.bench.plan import PRECISIONS, Status
from usfm_edge.bench.report import plot, table, write_json
from usfm_edge.bench.runner import BENCH_SCHEMA, BENCH_SCHEMA_VERSION, DEFAULT_BACKENDS, DEFAULT_PRECISIONS, run_bench

__all__ = ["BENCH_SCHEMA", "BENCH_SCHEMA_VERSION", "DEFAULT_BACKENDS", "DEFAULT_PRECISIONS", "PRECISIONS", "Status",
           "plot", "run_bench", "table", "write_json"]
