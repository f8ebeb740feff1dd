"""The README's example for PyTorch users runs as written."""
import os
import re
import subprocess
import sys

from conftest import REPO


def example():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text.split("## For PyTorch users", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_the_readme_example_trains_detects_and_retrains(tmp_path):
    run = subprocess.run([sys.executable, "-c", example()], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 4, run.stdout
    assert any(line.startswith("OOD views: ") for line in lines), run.stdout
