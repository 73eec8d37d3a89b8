"""Tests of the synthetic suite (sikd_utils.data.synthetic).

Statistical checks run on small images (64 or 96 px) and 14 cases per domain, cached per task, so
the whole file stays well under 30 s on two CPU cores. Each statistic is chosen so that a generator that
ignores its domain, its severity or its seed fails it.
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from sikd_utils.data import TASKS, Case
from sikd_utils.data import synthetic
from sikd_utils.data.synthetic import DOMAINS, describe, make_cases

TASK_KEYS = list(TASKS)
N = 14  # cases per domain in statistical checks
# Image size of the statistical checks: small for speed. Ultrasound speckle and CT noise grain are
# sub-pixel at 64 px (a 64 px CT slice has 5 mm pixels), so those two tasks get a little more.
SIZE = {"breast_us": 96, "abdomen": 96}
# The statistical checks hold for any seed; CI uses 0 (set SIKD_SYNTH_TEST_SEED to try others).
SEED = int(os.environ.get("SIKD_SYNTH_TEST_SEED", "0"))


@lru_cache(maxsize=None)
def cases(task, domain, severity=1.0, n=N, size=None, seed=None):
    size = size or SIZE.get(task, 64)
    seed = SEED if seed is None else seed
    return tuple(make_cases(task, domain, n_cases=n, image_size=size, seed=seed, severity=severity))


# ---------------------------------------------------------------------------------------------
# statistics used below
# ---------------------------------------------------------------------------------------------


def _highpass(img):
    sig = (0, 1, 1, 0) if img.ndim == 4 else (0, 1, 1)
    return img - ndimage.gaussian_filter(img, sig)


def appearance_features(case, num_classes):
    """Per channel: texture energy, global contrast, and per class mean and texture energy."""
    hp = np.abs(_highpass(case.image))
    feats = []
    for ch in range(case.image.shape[0]):
        x, h = case.image[ch], hp[ch]
        feats += [h.mean(), x.std()]
        for k in range(num_classes):
            m = case.label == k
            feats += [x[m].mean(), h[m].mean()] if m.any() else [np.nan, np.nan]
    return np.array(feats)


def feature_matrix(cs, task):
    return np.array([appearance_features(c, TASKS[task].num_classes) for c in cs])


def appearance_distance(ref, other):
    """RMS over features of the mean difference, in units of the reference's spread."""
    sd = np.nanstd(ref, axis=0) + 1e-3
    z = (np.nanmean(other, axis=0) - np.nanmean(ref, axis=0)) / sd
    return float(np.sqrt(np.nanmean(z**2)))


def best_auc(ref, other):
    """Largest single-feature separability (AUC, either direction) between two sets of cases."""
    best = 0.5
    for j in range(ref.shape[1]):
        a, b = ref[:, j], other[:, j]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if a.size == 0 or b.size == 0:
            continue
        u = (a[:, None] < b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
        best = max(best, u, 1 - u)
    return best


def class_fractions(cs, num_classes):
    return np.array([[np.mean(c.label == k) for k in range(num_classes)] for c in cs])


def class_means(cs, num_classes):
    """(n_cases, channels, classes) mean intensity, NaN where a class is absent."""
    out = []
    for c in cs:
        out.append([[c.image[ch][c.label == k].mean() if np.any(c.label == k) else np.nan
                     for k in range(num_classes)] for ch in range(c.image.shape[0])])
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASK_KEYS)
def test_format_shapes_dtypes_and_metadata(task):
    spec = TASKS[task]
    cs = make_cases(task, "source", n_cases=3, image_size=128, seed=1)
    assert len(cs) == 3
    for i, c in enumerate(cs):
        assert isinstance(c, Case)
        assert c.image.dtype == np.float32 and c.label.dtype == np.int64
        assert c.in_channels == spec.in_channels
        assert c.spatial_dims == spec.spatial_dims
        assert c.image.shape[1:3] == (128, 128)
        assert len(c.spacing) == spec.spatial_dims and all(s > 0 for s in c.spacing)
        if spec.spatial_dims == 3:
            assert 6 <= c.image.shape[3] <= 12
            assert c.spacing[0] == pytest.approx(c.spacing[1])
            # thick slices: anisotropic volumes (in-plane spacing = field of view / image_size)
            assert c.spacing[2] > (2.5 if task == "cardiac" else 1.1) * c.spacing[0]
        assert c.case_id == f"{task}-source-{i:03d}"
        assert c.domain == "source" and c.dataset == f"synthetic-{task}"
        assert c.meta["seed"] == 1 and c.meta["severity"] == 1.0 and c.meta["index"] == i
        assert {"anatomy", "appearance"} <= set(c.meta)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_labels_in_range_and_foreground_present(task):
    spec = TASKS[task]
    for domain in DOMAINS:
        cs = cases(task, domain)
        present = np.array([[np.any(c.label == k) for k in range(1, spec.num_classes)] for c in cs])
        for c in cs:
            assert c.label.min() >= 0 and c.label.max() < spec.num_classes
        # every foreground class shows up in most cases, and background everywhere
        assert present.mean(axis=0).min() >= 0.8, (domain, present.mean(axis=0))
        assert all(np.any(c.label == 0) for c in cs)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_images_normalised_to_unit_range(task):
    for domain, sev in (("source", 1.0), ("target", 2.0), ("shape_shift", 2.0)):
        for c in cases(task, domain, sev):
            assert np.isfinite(c.image).all()
            assert c.image.min() >= 0.0 and c.image.max() <= 1.0
            # percentile normalisation: 2% of values at 0 or below, 2% at 1
            assert np.mean(c.image <= 1e-6) >= 0.015 and np.mean(c.image >= 1 - 1e-6) >= 0.015


# ---------------------------------------------------------------------------------------------
# reproducibility
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASK_KEYS)
def test_deterministic_and_seed_dependent(task):
    a = make_cases(task, "target", n_cases=2, image_size=48, seed=3, severity=0.7)
    b = make_cases(task, "target", n_cases=2, image_size=48, seed=3, severity=0.7)
    c = make_cases(task, "target", n_cases=2, image_size=48, seed=4, severity=0.7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.label, y.label)
        assert x.meta == y.meta
    for x, y in zip(a, c):
        assert x.image.shape != y.image.shape or not np.array_equal(x.image, y.image)
        assert x.label.shape != y.label.shape or not np.array_equal(x.label, y.label)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_case_i_does_not_depend_on_n_cases(task):
    few = make_cases(task, "shape_shift", n_cases=2, image_size=48, seed=5)
    more = make_cases(task, "shape_shift", n_cases=4, image_size=48, seed=5)
    for x, y in zip(few, more):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.label, y.label)
    assert not np.array_equal(more[2].label, more[3].label)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_domains_do_not_share_anatomy(task):
    by_domain = {d: cases(task, d, 0.0, n=3) for d in DOMAINS}
    for d1, d2 in itertools.combinations(DOMAINS, 2):
        for x, y in zip(by_domain[d1], by_domain[d2]):
            assert x.label.shape != y.label.shape or not np.array_equal(x.label, y.label), (d1, d2)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_target_severity_changes_appearance_only(task):
    # target cases at different severities share anatomy (labels, spacing), not pixels
    base = cases(task, "target", 0.0, n=3)
    for sev in (1.0, 2.0):
        for x, y in zip(base, cases(task, "target", sev, n=3)):
            np.testing.assert_array_equal(x.label, y.label)
            assert x.spacing == y.spacing
            assert not np.allclose(x.image, y.image)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_anatomy_parameters_do_not_depend_on_image_size(task):
    small = make_cases(task, "source", n_cases=2, image_size=40, seed=2)
    large = make_cases(task, "source", n_cases=2, image_size=72, seed=2)
    for x, y in zip(small, large):
        assert x.meta["anatomy"] == y.meta["anatomy"]
        assert x.meta["appearance"] == y.meta["appearance"]


@pytest.mark.parametrize("task", [t for t in TASK_KEYS if TASKS[t].spatial_dims == 3])
def test_volumes_vary_smoothly_across_slices(task):
    cs = cases(task, "source")
    for c in cs:
        fg = c.label > 0
        pairs = [(fg[..., k], fg[..., k + 1]) for k in range(fg.shape[-1] - 1)]
        overlap = [2 * (a & b).sum() / (a.sum() + b.sum()) for a, b in pairs if a.any() or b.any()]
        assert np.median(overlap) > 0.6  # neighbouring slices show the same anatomy, moved a little
        assert not all(np.array_equal(c.label[..., 0], c.label[..., k]) for k in range(c.label.shape[-1]))
    if task == "cardiac":  # base to apex: the LV cavity shrinks, the RV ends before the LV
        for c in cs:
            lv = (c.label == 3).sum(axis=(0, 1))
            rv = (c.label == 1).sum(axis=(0, 1))
            assert lv[-1] < lv[0] and np.corrcoef(np.arange(lv.size), lv)[0, 1] < -0.5
            assert np.nonzero(rv)[0].max() <= np.nonzero(lv)[0].max()
    if task == "abdomen":  # organs appear or disappear inside the slab
        changing = [any(0 < np.any(c.label == k, axis=(0, 1)).sum() < c.label.shape[-1] for k in range(1, 9))
                    for c in cs]
        assert np.mean(changing) >= 0.5


# ---------------------------------------------------------------------------------------------
# domains and severity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASK_KEYS)
def test_target_appearance_is_shifted_and_severity_monotone(task):
    src = feature_matrix(cases(task, "source"), task)
    tgt = {sev: feature_matrix(cases(task, "target", sev), task) for sev in (0.0, 0.5, 1.0, 2.0)}
    # severity 0: the source's appearance distribution (other random cases: sampling noise only)
    d0 = appearance_distance(src, tgt[0.0])
    assert d0 < 0.75, d0
    # severity 1: clearly outside the source's spread, and separable on at least one statistic
    d1 = appearance_distance(src, tgt[1.0])
    assert d1 > 1.0 and d1 > 2 * d0, (d0, d1)
    assert best_auc(src, tgt[1.0]) >= 0.9
    # bigger severity, bigger appearance change. Target cases at every severity share anatomy and
    # noise, so comparing them with the same cases at severity 0 removes sampling noise.
    ref = np.nanstd(src, axis=0) + 1e-3

    def paired(sev):
        return float(np.sqrt(np.nanmean((np.nanmean(tgt[sev] - tgt[0.0], axis=0) / ref) ** 2)))

    p = [paired(sev) for sev in (0.5, 1.0, 2.0)]
    assert 0 < p[0] < p[1] < p[2], p


@pytest.mark.parametrize("task", TASK_KEYS)
def test_source_has_appearance_variability(task):
    vals = np.array([list(c.meta["appearance"].values()) for c in cases(task, "source")])
    assert np.all(vals.std(axis=0) > 0), "every appearance parameter varies across source cases"


@pytest.mark.parametrize("task", TASK_KEYS)
def test_target_keeps_label_statistics_shape_shift_changes_them(task):
    k = TASKS[task].num_classes
    src = class_fractions(cases(task, "source"), k)[:, 1:]
    tgt = class_fractions(cases(task, "target", 2.0), k)[:, 1:]
    shp = class_fractions(cases(task, "shape_shift", 1.0), k)[:, 1:]

    def zscore(a, b):
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b)) + 1e-9
        return np.abs(b.mean(axis=0) - a.mean(axis=0)) / se

    def rel(a, b):
        return np.abs(b.mean(axis=0) / a.mean(axis=0) - 1)

    # target: the same anatomy distribution (differences at sampling-noise level)
    assert zscore(src, tgt).max() < 3.5, zscore(src, tgt)
    assert rel(src, tgt).max() < 0.4, rel(src, tgt)
    # shape_shift: at least one class area changes far beyond sampling noise and by > 30 %
    z, r = zscore(src, shp), rel(src, shp)
    assert np.any((z > 3.5) & (r > 0.3)), (z, r)
    # and more so at higher severity
    shp2 = class_fractions(cases(task, "shape_shift", 2.0), k)[:, 1:]
    assert rel(src, shp2).max() > rel(src, shp).max()


@pytest.mark.parametrize("task", TASK_KEYS)
def test_shape_shift_keeps_source_appearance(task):
    # appearance parameters of shape_shift cases stay inside the source's range
    lo = np.min([list(c.meta["appearance"].values()) for c in cases(task, "source")], axis=0)
    hi = np.max([list(c.meta["appearance"].values()) for c in cases(task, "source")], axis=0)
    width = hi - lo
    for c in cases(task, "shape_shift", 2.0):
        v = np.array(list(c.meta["appearance"].values()))
        assert np.all(v >= lo - 0.5 * width) and np.all(v <= hi + 0.5 * width)
    # while target parameters at severity 2 leave it
    out = [np.any((np.array(list(c.meta["appearance"].values())) > hi + width)
                  | (np.array(list(c.meta["appearance"].values())) < lo - width))
           for c in cases(task, "target", 2.0)]
    assert all(out)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_class_intensity_ordering_survives_target_shift(task):
    """Pairs of classes ordered clearly in the source keep their order in the target.

    Checked per channel, on the dataset means and case by case. A pair counts as ordered when its
    source means differ by > 0.03 and at least 90 % of source cases agree on the order; near-ties
    (e.g. the two kidneys, the same tissue) carry no ordering and are skipped.
    """
    k = TASKS[task].num_classes
    src = class_means(cases(task, "source"), k)
    ref = np.nanmean(src, axis=0)
    pairs = []
    for ch, i, j in itertools.product(range(ref.shape[0]), range(k), range(k)):
        if i < j and abs(ref[ch, i] - ref[ch, j]) > 0.03:
            want = np.sign(ref[ch, i] - ref[ch, j])
            if np.nanmean(np.sign(src[:, ch, i] - src[:, ch, j]) == want) >= 0.9:
                pairs.append((ch, i, j, want))
    # enough ordered pairs that the test has teeth: every foreground class takes part
    assert {i for _, i, _, _ in pairs} | {j for _, _, j, _ in pairs} == set(range(k)), pairs
    for sev in (1.0, 2.0):
        tgt = class_means(cases(task, "target", sev), k)
        tref = np.nanmean(tgt, axis=0)
        for ch, i, j, want in pairs:
            assert np.sign(tref[ch, i] - tref[ch, j]) == want, (sev, ch, i, j, ref[ch], tref[ch])
            agree = np.nanmean(np.sign(tgt[:, ch, i] - tgt[:, ch, j]) == want)
            assert agree >= 0.75, (sev, ch, i, j, agree)


# ---------------------------------------------------------------------------------------------
# errors and descriptions
# ---------------------------------------------------------------------------------------------


def test_bad_arguments_give_clear_errors():
    with pytest.raises(KeyError, match="cardiac"):
        make_cases("brain", n_cases=1)
    with pytest.raises(ValueError, match="shape_shift"):
        make_cases("cardiac", domain="vendor_b", n_cases=1)
    with pytest.raises(ValueError, match="severity"):
        make_cases("fundus", "target", n_cases=1, severity=-0.5)
    with pytest.raises(ValueError, match="severity"):
        make_cases("fundus", "target", n_cases=1, severity=float("nan"))
    with pytest.raises(ValueError, match="n_cases"):
        make_cases("polyp", n_cases=-1)
    with pytest.raises(ValueError, match="image_size"):
        make_cases("polyp", n_cases=1, image_size=8)
    with pytest.raises(ValueError, match="seed"):
        make_cases("polyp", n_cases=1, seed=-3)
    assert make_cases("breast_us", n_cases=0) == []


def test_domains_match_task_registry_and_are_described():
    for task, spec in TASKS.items():
        assert set(spec.synthetic_domains) <= set(DOMAINS)
        for domain in spec.synthetic_domains:
            assert isinstance(describe(task, domain), str) and describe(task, domain)
    assert synthetic.__doc__ and all(t in synthetic.__doc__ for t in TASKS)
