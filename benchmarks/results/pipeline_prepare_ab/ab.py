import importlib.util, statistics, sys, tempfile, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
import usfm_edge.runtime.app as app
import usfm_edge.runtime.pipeline as new
from usfm_edge.bench import pipeline as bp
from usfm_edge.runtime.model import load_bundle
spec = importlib.util.spec_from_file_location("pipeline_old", "/tmp/pipeline_old.py")
old = importlib.util.module_from_spec(spec); sys.modules["pipeline_old"] = old; spec.loader.exec_module(old)
from benchmarks.pipeline_throughput import build_bundle
tmp = Path(tempfile.mkdtemp())
bundles = {"t16_untrained": build_bundle(tmp, model="usfm_vit_t16", size=224)}
THREADS = int(sys.argv[1])
out = {}
for name, bundle in bundles.items():
    model = load_bundle(bundle, threads=THREADS)
    for source in bp.DEFAULT_SOURCES:
        rows = {"old": [], "new": []}
        for r in range(3):
            for variant, mod in (("old", old), ("new", new)):
                app.Pipeline = mod.Pipeline
                m = bp._round(model, bundle, source, threads=THREADS, frames=300, fps=30.0, warmup=20, sink="none:")
                m.pop("runs")
                rows[variant].append(m)
        summary = {v: {k: round(statistics.median(x[k] for x in rows[v]), 3) for k in rows[v][0]} for v in rows}
        out[f"{name} {source}"] = {"summary": summary, "rounds": rows}
        print(name, source, summary, flush=True)
Path(f"/tmp/ab_{THREADS}.json").write_text(json.dumps(out, indent=2))
