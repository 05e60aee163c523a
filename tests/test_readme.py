"""The README's pictures and tables in step with the files they describe."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_pipeline_picture_is_dvc_dag():
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dag = subprocess.run(
        [BIN / "dvc", "dag", "--mermaid"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()  # fmt: skip
    assert dag.startswith("flowchart") and "node4" in dag  # four stages: a real picture
    readme = (ROOT / "README.md").read_text()
    pipeline = readme.split("## The pipeline\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```mermaid\n(.*?)\n```", pipeline, flags=re.DOTALL)
    assert blocks == [dag], f"README's '## The pipeline' should show `dvc dag --mermaid`:\n{dag}"
