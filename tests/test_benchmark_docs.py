"""The figures in docs/benchmarks.md's results are the ones job.py wrote, never edited by hand."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _job_script():
    spec = importlib.util.spec_from_file_location("job_bench", ROOT / "benchmarks" / "job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_section_is_what_job_py_renders_from_its_json():
    job = _job_script()
    results = json.loads((ROOT / "benchmarks" / "job-results.json").read_text())
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    written = docs.split(job.MARK_START, 1)[1].split(job.MARK_END, 1)[0]
    assert written.strip() == job.section(results).strip()


def test_section_reads_every_figure_from_the_results():
    job = _job_script()
    results = json.loads((ROOT / "benchmarks" / "job-results.json").read_text())
    before = job.section(results)
    results["after"]["whole_job_seconds"]["median"] = 98.7
    results["after"]["report"][0]["cpu_seconds"]["median"] = 12.34
    after = job.section(results)
    assert "98.7 s after" in after and "12.34 s" in after and after != before
