"""The hostile-input corpus (issue 23): inputs an attacker with write access to one input, or a
careless user, would give riskcap; ``cases.yaml`` holds the message each must give.

Unlike ``tests/malformed`` (data folders committed as files), most of these cases need a
trained model, a scores file or a finished run to tamper with, so they are built at test
time by the functions here from a small synthetic population (:class:`Base`); the hostile
configuration files themselves are committed in ``configs/``. Each case function makes its
inputs in ``folder`` and returns the ``riskcap`` arguments to run; ``CHECKS`` holds what
must be true afterwards beyond the message (nothing written outside, nothing deleted...).

tests/test_hostile.py runs every case; ``strings.yaml`` holds the hostile text that
tests/test_hostile_writers.py writes through every CSV/XLSX writer.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
TOKEN = "riskcap-hostile-" + hashlib.sha256(str(HERE).encode()).hexdigest()[:8]


@dataclass
class Base:
    """What the cases tamper with: a data folder, trained models, a scores file, finished runs."""

    data: Path
    models: Path  # gbm/ and logistic/
    scores: Path
    capitation: Path  # a finished `capitation run baseline` folder
    lists: Path  # a finished `casefind` folder

    def model(self, kind: str, folder: Path) -> Path:
        target = folder / "model"
        shutil.copytree(self.models / kind, target)
        return target

    def run_copy(self, which: str, folder: Path) -> Path:
        target = folder / which
        shutil.copytree(getattr(self, which), target, symlinks=True)
        return target

    def data_copy(self, folder: Path, change=None) -> Path:
        """A copy of the data folder, ``change(name, frame) -> frame`` applied to each table."""
        target = folder / "data"
        target.mkdir()
        for name in ("practices", "persons", "conditions", "activity"):
            frame = pd.read_parquet(self.data / f"{name}.parquet")
            if change is not None:
                frame = change(name, frame)
            frame.to_parquet(target / f"{name}.parquet", index=False)
        return target


def invoke(args: list[str], env: dict | None = None):
    from riskcap.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def rehash(model_dir: Path, *names: str) -> None:
    """Record the current SHA-256 of ``names`` in the model's metadata.json (as its author could)."""
    path = model_dir / "metadata.json"
    meta = json.loads(path.read_text())
    for name in names:
        meta["files"][name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    path.write_text(json.dumps(meta))


def edit_metadata(model_dir: Path, change) -> None:
    path = model_dir / "metadata.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _score(base: Base, model: Path, folder: Path) -> list:
    return ["score", "--model", model, "--data", base.data, "--out", folder / "scores.parquet"]


def outside(name: str) -> Path:
    """A path in the system's temporary folder that a case must never create."""
    return Path(tempfile.gettempdir()) / f"{TOKEN}-{name}"


# --- item 1: a model folder names only its own plain files ------------------------------------

def model_traversal(base, folder):
    """The listed name ``../x.pth`` made the loader copy the file out of its temporary folder."""
    model = base.model("gbm", folder)
    outside("traversal.pth").unlink(missing_ok=True)  # left by a run of the unfixed loader
    (folder / f"{TOKEN}-traversal.pth").write_text("import os\n")
    edit_metadata(model, lambda m: m["files"].__setitem__(
        f"../{TOKEN}-traversal.pth", hashlib.sha256(b"import os\n").hexdigest()))
    return _score(base, model, folder)


def model_traversal_evaluate(base, folder):
    args = model_traversal(base, folder)
    return ["evaluate", "--model", args[2], "--data", base.data, "--out", folder / "eval"]


def model_traversal_capitation(base, folder):
    args = model_traversal(base, folder)
    return ["capitation", "run", "baseline", "--data", base.data, "--model", args[2], "--out", folder / "cap"]


def model_absolute_name(base, folder):
    model = base.model("gbm", folder)
    target = folder / "abs.pth"
    target.write_text("import os\n")
    edit_metadata(model, lambda m: m["files"].__setitem__(str(target.resolve()), hashlib.sha256(b"import os\n").hexdigest()))
    return _score(base, model, folder)


def model_unlisted_name(base, folder):
    """A name the kind does not have (e.g. sitecustomize.py), with its correct hash."""
    model = base.model("gbm", folder)
    (model / "sitecustomize.py").write_text("print('hello')\n")
    rehash(model, "sitecustomize.py")
    return _score(base, model, folder)


def model_symlink_inside(base, folder):
    model = base.model("gbm", folder)
    (model / "calibration.json").rename(model / "calibration.real.json")
    (model / "calibration.json").symlink_to("calibration.real.json")
    return _score(base, model, folder)


def model_symlink_outside(base, folder):
    model = base.model("gbm", folder)
    (model / "model.txt").rename(folder / "elsewhere.txt")
    (model / "model.txt").symlink_to(folder / "elsewhere.txt")
    return _score(base, model, folder)


def model_metadata_symlink(base, folder):
    model = base.model("gbm", folder)
    (model / "metadata.json").rename(folder / "metadata.json")
    (model / "metadata.json").symlink_to(folder / "metadata.json")
    return _score(base, model, folder)


def model_file_is_a_folder(base, folder):
    model = base.model("gbm", folder)
    (model / "calibration.json").unlink()
    (model / "calibration.json").mkdir()
    return _score(base, model, folder)


def model_file_is_a_pipe(base, folder):
    model = base.model("gbm", folder)
    (model / "calibration.json").unlink()
    os.mkfifo(model / "calibration.json")
    return _score(base, model, folder)


def _replace(model: Path, name: str, old: str, new: str, count: int = 1) -> None:
    text = (model / name).read_text()
    assert old in text, (name, old)
    (model / name).write_text(text.replace(old, new, count))
    rehash(model, name)


def _tampered(kind: str, name: str, old: str, new: str):
    """A case: score with a ``kind`` model whose file ``name`` has ``old`` replaced (and rehashed)."""
    def case(base, folder):
        model = base.model(kind, folder)
        _replace(model, name, old, new)
        return _score(base, model, folder)
    return case


def model_nan_leaf(base, folder):
    model = base.model("gbm", folder)
    text = (model / "model.txt").read_text()
    start = text.index("leaf_value=") + len("leaf_value=")
    first = text[start:].split()[0]
    _replace(model, "model.txt", f"leaf_value={first}", "leaf_value=nan")
    return _score(base, model, folder)


def model_files_not_a_mapping(base, folder):
    model = base.model("gbm", folder)
    edit_metadata(model, lambda m: m.__setitem__("files", sorted(m["files"])))
    return _score(base, model, folder)


def model_missing_coefficients(base, folder):
    model = base.model("logistic", folder)
    params = json.loads((model / "model.json").read_text())
    del params["coef"]
    (model / "model.json").write_text(json.dumps(params))
    rehash(model, "model.json")
    return _score(base, model, folder)


# --- item 2: --out folders and files ---------------------------------------------------------

def _foreign_folder(folder: Path) -> Path:
    out = folder / "mine"
    (out / "practices").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "practices" / "A99999.csv").write_text("someone else's list\n")
    os.chmod(out, 0o755)
    return out


def out_foreign_casefind(base, folder):
    """casefind into a folder of someone else's files (it used to delete practices/*.csv and chmod it)."""
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", _foreign_folder(folder)]


def out_foreign_capitation(base, folder):
    return ["capitation", "run", "baseline", "--data", base.data, "--out", _foreign_folder(folder)]


def out_foreign_train(base, folder):
    return ["train", "--data", base.data, "--model", "logistic", "--out", _foreign_folder(folder)]


def out_symlinked_practices(base, folder):
    """An earlier casefind run whose practices/ was replaced by a link to another folder."""
    run = base.run_copy("lists", folder)
    target = folder / "elsewhere"
    target.mkdir()
    (target / "keep.csv").write_text("keep me\n")
    shutil.rmtree(run / "practices")
    (run / "practices").symlink_to(target)
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", run]


def out_empty_folder_keeps_its_mode(base, folder):
    out = folder / "shared"
    out.mkdir()
    os.chmod(out, 0o755)
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", out]


def out_score_over_a_foreign_file(base, folder):
    (folder / "notes.parquet").write_text("not a scores file\n")
    return ["score", "--model", base.models / "gbm", "--data", base.data, "--out", folder / "notes.parquet"]


def out_summary_over_a_foreign_file(base, folder):
    (folder / "config.json").write_text('{"mine": true}\n')
    return ["validate", "--data", base.data, "--summary", folder / "config.json"]


def out_report_over_a_foreign_file(base, folder):
    (folder / "index.html").write_text("<html>my page</html>\n")
    return ["report", base.lists.parent, "--out", folder / "index.html"]


def out_synth_over_an_extract(base, folder):
    """synth --out pointed at a real extract (it used to replace persons.parquet and the rest)."""
    extract = base.data_copy(folder)
    return ["synth", "--out", extract, "--people", "300"]


def out_synth_extracts_over_real_extracts(base, folder):
    """synth --extracts pointed at a folder of real extracts (it used to replace gp/events.parquet)."""
    (folder / "real" / "gp").mkdir(parents=True)
    (folder / "real" / "gp" / "events.parquet").write_text("a real extract\n")
    return ["synth", "--out", folder / "synth", "--people", "300", "--extracts", folder / "real",
            "--codelists", HERE.parent / "fixtures" / "import" / "codelists"]


def out_bench_over_a_foreign_file(base, folder):
    (folder / "notes.json").write_text('{"mine": true}\n')
    return ["bench", "--people", "1000", "--repeats", "1", "--json", folder / "notes.json"]


def out_not_writable(base, folder):
    (folder / "a-file").write_text("x\n")
    return ["capitation", "run", "baseline", "--data", base.data, "--out", folder / "a-file" / "run"]


# --- item 3: names are never joined to paths as given ----------------------------------------

def _scenario_run(name: str):
    def case(base, folder):
        Path("/tmp/riskcap-hostile-scheme.parquet").unlink(missing_ok=True)  # left by a run of the unfixed code
        return ["capitation", "run", CONFIGS / f"{name}.yaml", "--data", base.data, "--out", folder / "cap"]
    case.__name__ = f"scenario {name}"
    return case


def _scores_with_code(code: str):
    def case(base, folder):
        scores = pd.read_parquet(base.scores)
        scores.loc[scores.index[:3], "practice_code"] = code
        scores.to_parquet(folder / "scores.parquet", index=False)
        return ["casefind", "--scores", folder / "scores.parquet", "--data", base.data, "--out", folder / "lists"]
    return case


def previous_list_traversal(base, folder):
    """--previous with a summary.json naming a practice '../../outside': its list is read from outside."""
    previous = base.run_copy("lists", folder)
    summary = json.loads((previous / "summary.json").read_text())
    first = next(iter(summary["practices"]))
    summary["practices"]["../../outside"] = summary["practices"][first]
    (previous / "summary.json").write_text(json.dumps(summary))
    (folder / "outside.csv").write_text("rank,pseudo_id,tier\n1,abc,high\n")
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", folder / "lists2",
            "--previous", previous]


# --- item 6: money --------------------------------------------------------------------------

def _costs(value: float, settings=None):
    def change(name, frame):
        if name == "activity":
            rows = frame.index if settings is None else frame.index[frame["setting"].isin(settings)]
            frame.loc[rows, "cost_gbp"] = value
        return frame
    return change


def cost_above_maximum(base, folder):
    def change(name, frame):
        if name == "activity":
            frame.loc[frame.index[[4, 9]], "cost_gbp"] = 1e17
        return frame
    return ["validate", "--data", base.data_copy(folder, change)]


def cost_maximum_not_a_number(base, folder):
    return ["validate", "--data", base.data]


def integers_past_int64(base, folder):
    """Whole numbers too large for int64 in a CSV extract (they wrapped to -9223372036854775808)."""
    data = base.data_copy(folder)
    activity = pd.read_parquet(data / "activity.parquet").astype({"person_id": object, "quantity": object})
    activity.loc[activity.index[1], "person_id"] = "1" * 30
    activity.loc[activity.index[2], "quantity"] = "9" * 25
    (data / "activity.parquet").unlink()
    activity.to_csv(data / "activity.csv", index=False)
    return ["validate", "--data", data]


def costs_overflow_int64(base, folder):
    """Every row at GBP 1e12 (allowed by RISKCAP_MAX_COST_GBP): per-practice pence pass int64."""
    return ["capitation", "run", "baseline", "--data", base.data_copy(folder, _costs(1e12)), "--out", folder / "cap"]


def predicted_cost_overflow(base, folder):
    scores = pd.read_parquet(base.scores, columns=["person_id", "practice_code"])
    scores["predicted_cost_gbp"] = 1e300
    scores["model"] = "cost"
    scores.to_parquet(folder / "cost.parquet", index=False)
    return ["capitation", "run", "fair_shares", "--data", base.data, "--scores", folder / "cost.parquet",
            "--out", folder / "cap"]


def sweep_axis_too_long(base, folder):
    return ["capitation", "sweep", "baseline", "--data", base.data, "--out", folder / "sweep",
            "--vary", "tariff.cost_uplift_pct=0:4:1000000000000000000000"]


def sweep_grid_too_big(base, folder):
    return ["capitation", "sweep", "baseline", "--data", base.data, "--out", folder / "sweep",
            "--vary", "tariff.cost_uplift_pct=0:4:1000", "--vary", "tariff.efficiency_pct=0:4:1000"]


# --- item 7: the manifest certifies only what the run wrote ----------------------------------

def _manifest(run: Path, change) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def verify_dotdot_path(base, folder):
    run = base.run_copy("capitation", folder)
    (folder / "outside.txt").write_text("outside\n")
    _manifest(run, lambda m: m["outputs"].__setitem__(
        "../outside.txt", {"bytes": 8, "sha256": hashlib.sha256(b"outside\n").hexdigest()}))
    return ["verify", run]


def verify_absolute_device(base, folder):
    run = base.run_copy("capitation", folder)
    _manifest(run, lambda m: m["outputs"].__setitem__("/dev/zero", {"bytes": 0, "sha256": "0" * 64}))
    return ["verify", run]


def _budgets_link_to_a_device(base, folder) -> Path:
    """A copy of the finished capitation run in ``folder`` whose budgets.csv links to /dev/zero."""
    run = base.run_copy("capitation", folder)
    (run / "budgets.csv").unlink()
    (run / "budgets.csv").symlink_to("/dev/zero")
    return run


def verify_output_links_to_a_device(base, folder):
    return ["verify", _budgets_link_to_a_device(base, folder)]


def verify_output_is_a_pipe(base, folder):
    run = base.run_copy("capitation", folder)
    (run / "budgets.csv").unlink()
    os.mkfifo(run / "budgets.csv")
    return ["verify", run]


def _rerun_with(base, folder, name: str, content: str) -> list:
    """An earlier capitation run's folder holding file ``name``, run again, then verified."""
    run = base.run_copy("capitation", folder)
    (run / name).write_text(content)
    result = invoke(["capitation", "run", "baseline", "--data", base.data, "--out", run])
    assert result.exit_code == 0, result.output
    return ["verify", run]


def verify_leftover_temporary_file(base, folder):
    """A killed run's temporary file, then a good rerun: verified (the leftover is only noted)."""
    return _rerun_with(base, folder, ".budgets.csv.k1ll3d_x.tmp", "half a file")


def verify_garbled_manifest(base, folder):
    run = base.run_copy("capitation", folder)
    (run / "manifest.json").write_text('{"riskcap_manifest": 1, "outputs": {')
    return ["verify", run]


def verify_manifest_not_an_object(base, folder):
    run = base.run_copy("capitation", folder)
    (run / "manifest.json").write_text("[1, 2, 3]")
    return ["verify", run]


def verify_manifest_bad_outputs(base, folder):
    run = base.run_copy("capitation", folder)
    _manifest(run, lambda m: m.__setitem__("outputs", {"budgets.csv": "fine"}))
    return ["verify", run]


def verify_manifest_is_a_folder(base, folder):
    run = base.run_copy("capitation", folder)
    (run / "manifest.json").unlink()
    (run / "manifest.json").mkdir()
    return ["verify", run]


def report_output_links_to_a_device(base, folder):
    """report reads an earlier run's CSVs back: one of them a link to /dev/zero (it read forever)."""
    _budgets_link_to_a_device(base, folder / "run")
    return ["report", folder / "run"]


def previous_list_is_a_pipe(base, folder):
    """casefind --previous reads the earlier lists back: one of them a named pipe (it waited forever)."""
    lists = base.run_copy("lists", folder)
    first = sorted((lists / "practices").glob("*.csv"))[0]
    first.unlink()
    os.mkfifo(first)
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", folder / "again", "--previous", lists]


def planted_before_the_run(base, folder):
    """A file planted in an earlier run's folder is not certified by the next run."""
    return _rerun_with(base, folder, "planted.csv", "practice_code,budget_pence\nA1,1\n")


# --- item 8: a clear message and exit code 2, never a traceback --------------------------------

def config_is_a_folder(base, folder):
    (folder / "scenario.yaml").mkdir()
    return ["capitation", "run", folder / "scenario.yaml", "--data", base.data, "--out", folder / "cap"]


def config_is_a_pipe(base, folder):
    os.mkfifo(folder / "scenario.yaml")
    return ["capitation", "run", folder / "scenario.yaml", "--data", base.data, "--out", folder / "cap"]


def pyramid_duplicate_key(base, folder):
    (folder / "tiers.yaml").write_text("name: dup\ntiers:\n  - name: high\n    top_percent: 5\n    name: low\n"
                                       "  - name: rest\n    top_percent: 100\n")
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", folder / "lists",
            "--pyramid", folder / "tiers.yaml"]


def _report_of(scenario: str, data=None):
    """A capitation run into RUN/capitation, then `riskcap report RUN`."""
    def case(base, folder):
        run = folder / "run"
        result = invoke(["capitation", "run", scenario, "--data", data(base, folder) if data else base.data,
                         "--out", run / "capitation"])
        assert result.exit_code == 0, result.output
        return ["report", run]
    return case


def _mathtext_code(base, folder):
    code = "$\\frac{$"

    def change(name, frame):
        if name in ("practices", "persons"):
            first = pd.read_parquet(base.data / "practices.parquet")["practice_code"].iloc[0]
            frame["practice_code"] = frame["practice_code"].replace(first, code)
        return frame
    return base.data_copy(folder, change)


def key_file_is_a_device(base, folder):
    return ["casefind", "--scores", base.scores, "--data", base.data, "--out", folder / "lists",
            "--key-file", "/dev/zero"]


def casefind_without_opted_out(base, folder):
    data = base.data_copy(folder, lambda name, frame: frame.drop(columns=["opted_out"]) if name == "persons" else frame)
    return ["casefind", "--scores", base.scores, "--data", data, "--out", folder / "lists"]


CASES = {
    # item 1
    "model_traversal": model_traversal,
    "model_traversal_evaluate": model_traversal_evaluate,
    "model_traversal_capitation": model_traversal_capitation,
    "model_absolute_name": model_absolute_name,
    "model_unlisted_name": model_unlisted_name,
    "model_symlink_inside": model_symlink_inside,
    "model_symlink_outside": model_symlink_outside,
    "model_metadata_symlink": model_metadata_symlink,
    "model_file_is_a_folder": model_file_is_a_folder,
    "model_file_is_a_pipe": model_file_is_a_pipe,
    "model_nan_calibration": _tampered("gbm", "calibration.json", '"slope": ', '"slope": NaN, "was": '),
    "model_infinity_coefficient": _tampered("logistic", "model.json", '"intercept": ',
                                            '"intercept": Infinity, "was": '),
    "model_overflowing_number": _tampered("logistic", "model.json", '"intercept": ', '"intercept": 1e999, "was": '),
    "model_nan_leaf": model_nan_leaf,
    "model_files_not_a_mapping": model_files_not_a_mapping,
    "model_missing_coefficients": model_missing_coefficients,
    # item 2
    "out_foreign_casefind": out_foreign_casefind,
    "out_foreign_capitation": out_foreign_capitation,
    "out_foreign_train": out_foreign_train,
    "out_symlinked_practices": out_symlinked_practices,
    "out_empty_folder_keeps_its_mode": out_empty_folder_keeps_its_mode,
    "out_score_over_a_foreign_file": out_score_over_a_foreign_file,
    "out_summary_over_a_foreign_file": out_summary_over_a_foreign_file,
    "out_report_over_a_foreign_file": out_report_over_a_foreign_file,
    "out_synth_over_an_extract": out_synth_over_an_extract,
    "out_bench_over_a_foreign_file": out_bench_over_a_foreign_file,
    "out_synth_extracts_over_real_extracts": out_synth_extracts_over_real_extracts,
    "out_not_writable": out_not_writable,
    # item 3
    "scenario_named_dotdot": _scenario_run("scenario_dotdot"),
    "scenario_named_hidden": _scenario_run("scenario_hidden"),
    "scenario_named_reserved": _scenario_run("scenario_reserved"),
    "scenario_name_too_long": _scenario_run("scenario_too_long"),
    "scheme_named_absolute": _scenario_run("scenario_absolute_scheme"),
    "scheme_named_dotdot": _scenario_run("scenario_dotdot_scheme"),
    "practice_code_reserved": _scores_with_code("CON"),
    "practice_code_too_long": _scores_with_code("A" * 300),
    "previous_list_traversal": previous_list_traversal,
    # item 6
    "cost_above_maximum": cost_above_maximum,
    "cost_maximum_not_a_number": cost_maximum_not_a_number,
    "costs_overflow_int64": costs_overflow_int64,
    "integers_past_int64": integers_past_int64,
    "predicted_cost_overflow": predicted_cost_overflow,
    "envelope_rounds_to_zero": _scenario_run("envelope_zero_pence"),
    "blend_weights_overflow": _scenario_run("blend_huge_envelope"),
    "sweep_axis_too_long": sweep_axis_too_long,
    "sweep_grid_too_big": sweep_grid_too_big,
    # item 7
    "verify_dotdot_path": verify_dotdot_path,
    "verify_absolute_device": verify_absolute_device,
    "verify_output_links_to_a_device": verify_output_links_to_a_device,
    "verify_output_is_a_pipe": verify_output_is_a_pipe,
    "verify_leftover_temporary_file": verify_leftover_temporary_file,
    "verify_garbled_manifest": verify_garbled_manifest,
    "verify_manifest_not_an_object": verify_manifest_not_an_object,
    "verify_manifest_bad_outputs": verify_manifest_bad_outputs,
    "verify_manifest_is_a_folder": verify_manifest_is_a_folder,
    "planted_before_the_run": planted_before_the_run,
    "report_output_links_to_a_device": report_output_links_to_a_device,
    "previous_list_is_a_pipe": previous_list_is_a_pipe,
    # item 8
    "yaml_duplicate_key": _scenario_run("duplicate_key"),
    "yaml_duplicate_top_key": _scenario_run("duplicate_top_key"),
    "yaml_alias_bomb": _scenario_run("alias_bomb"),
    "yaml_deep_nesting": _scenario_run("deep_nesting"),
    "yaml_huge_integer": _scenario_run("huge_integer"),
    "yaml_key_not_text": _scenario_run("key_not_text"),
    "config_is_a_folder": config_is_a_folder,
    "config_is_a_pipe": config_is_a_pipe,
    "pyramid_duplicate_key": pyramid_duplicate_key,
    "workbook_nul_character": _report_of(str(CONFIGS / "description_nul.yaml")),
    "report_mathtext_practice_code": _report_of("baseline", _mathtext_code),
    "report_mathtext_group_name": _report_of(str(CONFIGS / "scenario_mathtext_scheme.yaml")),
    "casefind_without_opted_out": casefind_without_opted_out,
    "key_file_is_a_device": key_file_is_a_device,
}


# --- what must hold afterwards, beyond the message -----------------------------------------------

def _unchanged_foreign_folder(base, folder):
    out = folder / "mine"
    assert (out / "notes.txt").read_text() == "my notes\n"
    assert (out / "practices" / "A99999.csv").read_text() == "someone else's list\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in out.rglob("*")) == ["A99999.csv", "notes.txt", "practices"]


def _nothing_outside(base, folder):
    assert not outside("traversal.pth").exists()


def _link_target_untouched(base, folder):
    assert sorted(p.name for p in (folder / "elsewhere").iterdir()) == ["keep.csv"]


def _mode_kept(base, folder):
    out = folder / "shared"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert (out / "summary.json").exists() and stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o600


def _file_untouched(name, content):
    def check(base, folder):
        assert (folder / name).read_text() == content
    return check


def _extract_untouched(base, folder):
    names = ("practices", "persons", "conditions", "activity")
    for name in names:
        assert pd.read_parquet(folder / "data" / f"{name}.parquet").equals(pd.read_parquet(base.data / f"{name}.parquet"))
    assert sorted(p.name for p in (folder / "data").iterdir()) == sorted(f"{n}.parquet" for n in names)


def _real_extracts_untouched(base, folder):
    assert (folder / "real" / "gp" / "events.parquet").read_text() == "a real extract\n"
    assert not (folder / "synth").exists()  # the population's folder, claimed first, is given back


def _no_scheme_file_outside(base, folder):
    assert not Path("/tmp/riskcap-hostile-scheme.parquet").exists()  # (removed before the run)
    assert not (folder / "escaped.parquet").exists() and not (folder.parent / "escaped.parquet").exists()


def _no_scenario_folder(base, folder):
    assert not (folder / "cap").exists()


def _planted_not_certified(base, folder):
    manifest = json.loads((folder / "capitation" / "manifest.json").read_text())
    assert "planted.csv" not in manifest["outputs"] and "budgets.csv" in manifest["outputs"]
    assert (folder / "capitation" / "planted.csv").exists()


def _report_written(base, folder):
    assert (folder / "run" / "report.html").stat().st_size > 0
    assert (folder / "run" / "workbook.xlsx").stat().st_size > 0


CHECKS = {
    "model_traversal": _nothing_outside,
    "model_traversal_evaluate": _nothing_outside,
    "model_traversal_capitation": _nothing_outside,
    "out_foreign_casefind": _unchanged_foreign_folder,
    "out_foreign_capitation": _unchanged_foreign_folder,
    "out_foreign_train": _unchanged_foreign_folder,
    "out_symlinked_practices": _link_target_untouched,
    "out_empty_folder_keeps_its_mode": _mode_kept,
    "out_score_over_a_foreign_file": _file_untouched("notes.parquet", "not a scores file\n"),
    "out_summary_over_a_foreign_file": _file_untouched("config.json", '{"mine": true}\n'),
    "out_report_over_a_foreign_file": _file_untouched("index.html", "<html>my page</html>\n"),
    "out_synth_over_an_extract": _extract_untouched,
    "out_bench_over_a_foreign_file": _file_untouched("notes.json", '{"mine": true}\n'),
    "out_synth_extracts_over_real_extracts": _real_extracts_untouched,
    "scenario_named_dotdot": _no_scenario_folder,
    "scheme_named_absolute": _no_scheme_file_outside,
    "scheme_named_dotdot": _no_scheme_file_outside,
    "planted_before_the_run": _planted_not_certified,
    "workbook_nul_character": _report_written,
    "report_mathtext_practice_code": _report_written,
    "report_mathtext_group_name": _report_written,
}


def build_base(root: Path) -> Base:
    """The small population, models and finished runs every case starts from (about a minute)."""
    from riskcap.features import build_features
    from riskcap.models.persist import save_model
    from riskcap.models.train import train_model
    from riskcap.synthetic import TRAIN_INDEX_DATE, SynthConfig, write_population
    from riskcap.data.load import load_tables

    data = root / "data"
    write_population(data, SynthConfig(people=3000, seed=1))
    frame = build_features(load_tables(data)[0], TRAIN_INDEX_DATE)
    for kind, seed in (("logistic", 0), ("gbm", 3)):
        save_model(train_model(kind, frame, TRAIN_INDEX_DATE, seed=seed), root / "models" / kind)
    base = Base(data, root / "models", root / "scores.parquet", root / "run" / "capitation", root / "run" / "lists")
    # scored at capitation's default index date (the data's end less a year), so a cost scores
    # file made from these scores covers everyone capitation counts
    for args in (["score", "--model", base.models / "gbm", "--data", data, "--out", base.scores,
                  "--index-date", "2024-04-01"],
                 ["capitation", "run", "baseline", "--data", data, "--out", base.capitation],
                 ["casefind", "--scores", base.scores, "--data", data, "--out", base.lists]):
        result = invoke(args, env={"RISKCAP_PSEUDONYM_KEY": "k" * 32})
        assert result.exit_code == 0, result.output
    return base

