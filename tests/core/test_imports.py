"""Importing the library must not pull in heavy optional stacks."""

import subprocess
import sys


def test_import_splat_core_loads_no_gsplat_gradio_or_pyg():
    code = (
        "import sys, splat, splat.core\n"
        "from splat.core.rasterization import rasterization\n"
        "heavy = [m for m in ('gsplat', 'gradio', 'torch_geometric') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
