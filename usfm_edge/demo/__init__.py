"""The one-command demo: the whole chain on the synthetic phantom, on a laptop's CPU, with no
data or weights to download, ending in DIR/report.html and DIR/summary.json.

    from usfm_edge.demo import FAST, run_demo
    summary = run_demo("usfm-edge-demo", FAST)
"""

from usfm_edge.demo.chain import run_demo
from usfm_edge.demo.plan import FAST, FULL, DemoPlan, plan_for

__all__ = ["FAST", "FULL", "DemoPlan", "plan_for", "run_demo"]
