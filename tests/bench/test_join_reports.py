"""``pdekit bench NAME --from A.json,B.json``: saved reports joined into one table and plot."""

import json

import pytest

from pdekit.bench import join_reports, run_benchmark
from pdekit.bench.record import BenchmarkReport
from pdekit.cli import main


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def two_reports(tmp_path_factory):
    """Two CG-only dcdm runs at two grid sizes, saved as JSON."""
    folder = tmp_path_factory.mktemp("reports")
    paths = []
    for size in (16, 24):
        path = folder / f"dcdm-{size}.json"
        run_benchmark("dcdm", problems=[f"poisson2d-{size}"], instances=1, methods=("pdekit-cg",),
                      json_path=path, echo=quiet)
        paths.append(path)
    return paths


def test_a_report_reads_back_as_written(two_reports):
    data = json.loads(two_reports[0].read_text())
    report = BenchmarkReport.read_json(two_reports[0])
    assert (report.benchmark, report.device, report.date) == (data["benchmark"], data["device"], data["date"])
    assert report.records == data["records"]


def test_joined_reports_hold_every_record_and_plot_the_sizes_together(two_reports, tmp_path):
    out = tmp_path / "joined.json"
    report = run_benchmark("dcdm", sources=two_reports, json_path=out, echo=quiet)
    assert [r["problem"] for r in report.records] == ["poisson2d-16", "poisson2d-24"]
    assert report.device == BenchmarkReport.read_json(two_reports[0]).device  # one device: kept as is
    assert BenchmarkReport.read_json(out).records == report.records
    assert out.with_suffix(".png").stat().st_size > 0


def test_reports_of_two_devices_name_both(two_reports, tmp_path):
    other = BenchmarkReport.read_json(two_reports[1])
    other.device = "some GPU"
    path = other.write_json(tmp_path / "gpu.json")
    joined = join_reports("dcdm", [two_reports[0], path])
    assert joined.device.endswith(" / some GPU") and len(joined.records) == 2


def test_the_cli_replots_without_running(two_reports, tmp_path, capsys):
    plot = tmp_path / "sizes.png"
    code = main(["bench", "dcdm", "--from", ",".join(map(str, two_reports)), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0 and plot.stat().st_size > 0
    assert "poisson2d-16" in out and "poisson2d-24" in out and "wrote" in out


def test_bad_sources_are_one_line_errors(two_reports, tmp_path, capsys):
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    cases = {str(tmp_path / "missing.json"): "no report at",
             str(tmp_path / "other.json"): "is not a benchmark report",
             str(two_reports[0]): "is a 'dcdm' report, not 'ot'"}
    for source, message in cases.items():
        name = "ot" if "dcdm-16" in source else "dcdm"
        assert main(["bench", name, "--from", source]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="`sources`"):
        join_reports("dcdm", [])
