"""The lent-GPU scripts under benchmarks/ hand back what a device call can return.

A device call returns at most 8 files from $OUT, at most two folders deep, named in letters, digits,
'.', '_' and '-' (see benchmarks/device_out.sh). Each script runs here with stand-ins for python3,
nvidia-smi and taskset that write as many files as a real report does, and what it leaves under $OUT
is checked against those limits, with the outputs inside the one tarball.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.sh") if p.name not in {"device_env.sh", "device_out.sh"})
NAME = re.compile(r"^[A-Za-z0-9._-]+$")

# python3 stand-in: a report folder gets 12 files (results.json, gates.jsonl, plots ...), --out a file
FAKE_PYTHON = """#!/usr/bin/env bash
prev=
for a in "$@"; do
  case $prev in
    --goni-report) mkdir -p "$a"; for i in $(seq 1 12); do echo x > "$a/file$i.json"; done ;;
    --out) mkdir -p "$(dirname "$a")"; echo '{}' > "$a" ;;
  esac
  prev=$a
done
echo "1 passed in 0.01s"
"""
FAKE_SMI = "#!/usr/bin/env bash\necho 'name, driver_version, memory.total [MiB]'\n"
FAKE_TASKSET = '#!/usr/bin/env bash\nshift 2\nexec "$@"\n'  # taskset -c LIST cmd...


def _stub(bin_dir: Path, name: str, text: str) -> None:
    path = bin_dir / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("tar") is None, reason="needs bash and tar")
@pytest.mark.parametrize("script", SCRIPTS)
def test_device_script_returns_at_most_8_files(tmp_path: Path, script: str) -> None:
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    out.mkdir()
    _stub(bin_dir, "python3", FAKE_PYTHON)
    _stub(bin_dir, "nvidia-smi", FAKE_SMI)
    _stub(bin_dir, "taskset", FAKE_TASKSET)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out),
           "GONI_WORK": str(tmp_path / "work"), "SERIAL_DIR": "", "T_SPEC": "20"}
    subprocess.run(["bash", f"benchmarks/{script}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files, f"{script} left nothing under $OUT"
    assert len(files) <= 8, f"{script} leaves {len(files)} files under $OUT; the device returns 8"
    for f in files:
        rel = f.relative_to(out)
        assert len(rel.parts) <= 3, f"{script}: {rel} is more than two folders down"
        assert all(NAME.match(part) for part in rel.parts), f"{script}: {rel} has a name the device drops"
    tarballs = [f for f in files if f.name.endswith(".tar.gz")]
    assert tarballs, f"{script} packs no tarball"
    with tarfile.open(tarballs[0]) as tar:
        assert len(tar.getnames()) > 1, f"{script}'s tarball is empty"
