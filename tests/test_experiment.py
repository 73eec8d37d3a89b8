import json

import numpy as np
import pytest

from sikd_utils.data import Case
from sikd_utils.experiment import ExperimentConfig, Splits, compare_methods, domain_gap, run_task


def _cases(n, seed, shift=0.0, prefix="c"):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = np.zeros((24, 24, 3), np.int64)
        x, y = rng.integers(3, 10, 2)
        label[y : y + 9, x : x + 9, :] = 1
        label[y + 3 : y + 6, x + 3 : x + 6, 1:] = 2
        image = (0.2 + 0.3 * label + shift + 0.05 * rng.standard_normal(label.shape))[None]
        out.append(Case(image.astype(np.float32), label, (1.0, 1.0, 4.0), f"{prefix}{i}"))
    return out


@pytest.fixture
def splits():
    return Splits(_cases(4, 0), _cases(2, 1), {"source": _cases(2, 2, prefix="s"),
                                                "target@1": _cases(2, 3, shift=0.2, prefix="t")}, tag="toy")


def _config(tmp_path, **kw):
    base = dict(task="cardiac", image_size=16, base_channels=4, epochs=2, batch_size=4, seeds=(0, 1),
                out_dir=str(tmp_path), progress=False)
    base.update(kw)
    return ExperimentConfig(**base)


def test_run_task_tables_files_and_reuse(tmp_path, splits):
    config = _config(tmp_path)
    result = run_task(config, splits)
    pc = result.per_case
    # 2 seeds x 2 methods x (2 + 2 cases) x 3 foreground classes
    assert len(pc) == 2 * 2 * 4 * 3
    assert set(pc["method"]) == {"baseline", "sikd"} and set(pc["test_set"]) == {"source", "target@1"}
    assert pc["dice"].dropna().between(0, 1).all()
    assert len(result.seed_scores) == 2 * 2 * 2
    comp = result.comparison.set_index("test_set")
    assert list(comp.index) == ["source", "target@1"]
    assert comp.loc["source", "n_seeds"] == 2
    expected = (result.seed_scores.query("method == 'sikd' and test_set == 'source'")["dice"].mean()
                - result.seed_scores.query("method == 'baseline' and test_set == 'source'")["dice"].mean())
    assert comp.loc["source", "delta"] == pytest.approx(expected)
    run_root = tmp_path / "cardiac" / config.run_key(splits.tag)
    for seed in (0, 1):
        for role in ("teacher", "baseline", "student"):
            assert (run_root / f"seed{seed}" / role / "last.pt").exists()
    saved = json.loads((run_root / "results" / "result.json").read_text())
    assert saved["provenance"]["commit"] and len(saved["comparison"]) == 2
    # same settings: trained models are reused, so results are identical
    again = run_task(config, splits)
    assert np.allclose(again.seed_scores["dice"], result.seed_scores["dice"], equal_nan=True)


def test_domain_gap_uses_baseline_only(tmp_path, splits):
    table = domain_gap(_config(tmp_path, seeds=(0,)), splits)
    assert set(table["method"]) == {"baseline"}
    assert table.set_index("test_set").loc["source", "gap"] == 0.0
    run_root = tmp_path / "cardiac" / _config(tmp_path).run_key(splits.tag) / "seed0"
    assert (run_root / "baseline").exists() and not (run_root / "teacher").exists()


def test_compare_methods_paired_difference():
    import pandas as pd

    scores = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "method": ["baseline", "sikd"] * 3,
                           "test_set": ["t"] * 6, "dice": [0.5, 0.6, 0.7, 0.7, 0.6, 0.8]})
    row = compare_methods(scores).iloc[0]
    assert row["delta"] == pytest.approx(0.1)
    assert row["sikd_wins"] == 2
    assert row["baseline"] == pytest.approx(0.6)


def test_bad_settings():
    with pytest.raises(KeyError, match="unknown task"):
        ExperimentConfig(task="brain")
    with pytest.raises(ValueError, match="seed"):
        ExperimentConfig(seeds=())
    with pytest.raises(ValueError, match="methods"):
        run_task(ExperimentConfig(), splits=None, methods=("teacher",))


def test_real_splits_and_pipeline_on_fake_acdc_and_mnms(tmp_path):
    from fake_datasets import write_acdc, write_mnms

    from sikd_utils.experiment import real_splits

    write_acdc(tmp_path / "acdc", patients=(1, 3, 2, 4))  # 1, 3 train; 2 val; 4 test (official split)
    write_mnms(tmp_path / "mnms")
    splits = real_splits("cardiac", tmp_path / "acdc", {"mnms": tmp_path / "mnms"})
    assert [len(splits.train), len(splits.val), len(splits.tests["source"])] == [4, 2, 2]
    assert len(splits.tests["mnms"]) > 0 and splits.tag.startswith("real:acdc")
    result = run_task(_config(tmp_path / "runs", seeds=(0,), epochs=1), splits)
    assert set(result.per_case["test_set"]) == {"source", "mnms"}


def test_real_splits_without_official_split_and_bad_root(tmp_path):
    from fake_datasets import write_busi, write_udiat

    from sikd_utils.experiment import real_splits

    write_busi(tmp_path / "busi")  # 4 images, no official split: deterministic 2 / 1 / 1
    write_udiat(tmp_path / "udiat", n=3)
    splits = real_splits("breast_us", tmp_path / "busi", {"udiat": tmp_path / "udiat"})
    ids = [[c.case_id for c in part] for part in (splits.train, splits.val, splits.tests["source"])]
    assert [len(p) for p in ids] == [2, 1, 1] and len(set(sum(ids, []))) == 4
    assert len(splits.tests["udiat"]) == 3
    again = real_splits("breast_us", tmp_path / "busi")
    assert [c.case_id for c in again.train] == ids[0]
    with pytest.raises(FileNotFoundError):
        real_splits("cardiac", tmp_path / "nothing")


def test_command_line_runs_on_real_layout(tmp_path, capsys):
    from fake_datasets import write_busi, write_udiat

    from sikd_utils.__main__ import main

    write_busi(tmp_path / "busi")
    write_udiat(tmp_path / "udiat", n=3)
    main(["run", "--task", "breast_us", "--source-root", str(tmp_path / "busi"), "--target",
          f"udiat={tmp_path / 'udiat'}", "--seeds", "0", "--epochs", "1", "--image-size", "16", "--base-channels",
          "4", "--out-dir", str(tmp_path / "runs"), "--no-progress", "--summary-csv", str(tmp_path / "s.csv")])
    out = capsys.readouterr().out
    assert "=== breast_us ===" in out and "udiat" in out
    import pandas as pd

    assert set(pd.read_csv(tmp_path / "s.csv")["test_set"]) == {"source", "udiat"}
    assert main(["run", "--task", "all", "--source-root", str(tmp_path / "busi")]) == 2


def test_changing_the_task_picks_that_tasks_default_counts():
    """run_task(task=...) replaces the task of a default config: its case counts must follow the task
    (a 2D task trained on the 3D task's six 'volumes' would be a silent, much weaker experiment)."""
    import dataclasses

    from sikd_utils.experiment import IMAGE_COUNTS, VOLUME_COUNTS, synthetic_splits

    cardiac = ExperimentConfig(task="cardiac")
    polyp = dataclasses.replace(cardiac, task="polyp")
    assert tuple(cardiac.counts().values()) == VOLUME_COUNTS
    assert tuple(polyp.counts().values()) == IMAGE_COUNTS
    explicit = dataclasses.replace(ExperimentConfig(task="cardiac", n_train=5), task="polyp")
    assert explicit.counts()["n_train"] == 5  # what the user set is kept
    splits = synthetic_splits(dataclasses.replace(polyp, image_size=32, n_test=2, n_target=1, severities=(1.0, 2.0)))
    assert (len(splits.train), len(splits.val)) == IMAGE_COUNTS[:2]
    assert {k: len(v) for k, v in splits.tests.items()} == {"source": 2, "target@1": 1, "target@2": 1,
                                                           "shape_shift@1": 1}


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_case_counts_are_refused(bad):
    with pytest.raises(ValueError, match="n_train"):
        ExperimentConfig(task="polyp", n_train=bad)
