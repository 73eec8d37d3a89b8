import numpy as np
import pytest
from scipy import ndimage

from sikd_utils.metrics import dice, hd95, mean_ci, score_case, score_cases


def medpy_style_hd95(pred, truth, spacing):
    """Independent reference of medpy's hd95: pooled surface distances, 95th percentile."""
    footprint = ndimage.generate_binary_structure(pred.ndim, 1)
    pb = pred ^ ndimage.binary_erosion(pred, footprint)
    tb = truth ^ ndimage.binary_erosion(truth, footprint)
    d_pt = ndimage.distance_transform_edt(~tb, sampling=spacing)[pb]
    d_tp = ndimage.distance_transform_edt(~pb, sampling=spacing)[tb]
    return np.percentile(np.hstack([d_pt, d_tp]), 95)


def test_dice_by_hand():
    truth = np.zeros((6, 6), bool)
    truth[1:3, 1:5] = True  # 8 pixels
    pred = np.zeros((6, 6), bool)
    pred[2:4, 1:5] = True  # 8 pixels, 4 shared
    assert dice(pred, truth) == pytest.approx(2 * 4 / 16)


def test_hd95_single_points_with_anisotropic_spacing():
    truth = np.zeros((10, 10), bool)
    truth[2, 2] = True
    pred = np.zeros((10, 10), bool)
    pred[2, 5] = True  # 3 columns away
    assert hd95(pred, truth, spacing=(2.0, 0.5)) == pytest.approx(1.5)
    assert hd95(pred, truth) == pytest.approx(3.0)
    pred2 = np.zeros((10, 10), bool)
    pred2[6, 2] = True  # 4 rows away
    assert hd95(pred2, truth, spacing=(2.0, 0.5)) == pytest.approx(8.0)


def test_hd95_pools_both_directions_instead_of_max_of_directed():
    truth = np.zeros((20, 20), bool)
    truth[5, 5] = True
    pred = truth.copy()
    pred[5, 15] = True
    # pooled distances [0, 10 | 0] -> 95th percentile (linear) = 9.0; max of directed p95 would be 9.5
    assert hd95(pred, truth) == pytest.approx(9.0)


@pytest.mark.parametrize("seed", range(4))
def test_hd95_matches_reference_on_random_3d_shapes(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 20, 6)
    zz = np.indices(shape)
    centre_t = np.array([12, 10, 3]) + rng.integers(-2, 3, 3)
    centre_p = centre_t + rng.integers(-3, 4, 3)
    radii = rng.uniform(3, 7, 3) * np.array([1, 1, 0.4])
    truth = sum(((zz[i] - centre_t[i]) / radii[i]) ** 2 for i in range(3)) <= 1
    pred = sum(((zz[i] - centre_p[i]) / (radii[i] * 1.2)) ** 2 for i in range(3)) <= 1
    pred &= rng.random(shape) > 0.05  # ragged surface
    spacing = (0.7, 1.3, 5.0)
    assert hd95(pred, truth, spacing) == pytest.approx(medpy_style_hd95(pred, truth, spacing), rel=1e-6)


def test_score_case_rows_and_empty_rules():
    label = np.zeros((8, 8, 3), np.int64)
    label[2:5, 2:5, :] = 1
    label[6, 6, 1] = 3
    pred = np.zeros_like(label)
    pred[2:5, 2:5, :] = 1  # class 1 perfect
    pred[0, 0, 0] = 2  # class 2: predicted but absent from truth
    # class 3: in truth, missing from prediction; class 4: absent from both
    rows = score_case(pred, label, num_classes=5, spacing=(1.0, 1.0, 2.5),
                      class_names=["bg", "a", "b", "c", "d"])
    by = {r["class"]: r for r in rows}
    assert [r["class"] for r in rows] == ["a", "b", "c", "d"]
    assert by["a"]["dice"] == 1.0 and by["a"]["hd95_mm"] == 0.0 and by["a"]["empty"] == "none"
    assert by["b"]["dice"] == 0.0 and np.isnan(by["b"]["hd95_mm"]) and by["b"]["empty"] == "truth"
    assert by["c"]["dice"] == 0.0 and np.isnan(by["c"]["hd95_vox"]) and by["c"]["empty"] == "pred"
    assert np.isnan(by["d"]["dice"]) and by["d"]["empty"] == "both"


def test_score_cases_table_and_summary():
    a = np.zeros((10, 10), np.int64)
    a[2:6, 2:6] = 1
    b = np.zeros_like(a)
    b[3:7, 2:6] = 1
    empty = np.zeros_like(a)
    table = score_cases([("x", b, a, (1.0, 1.0)), ("y", a, a, (1.0, 1.0)), ("z", empty, a, (1.0, 1.0))],
                        num_classes=2, class_names=["bg", "fg"])
    assert list(table.per_case.columns[:6]) == ["case", "class", "class_index", "dice", "hd95_mm", "hd95_vox"]
    assert len(table.per_case) == 3
    s = table.summary
    assert s.loc["fg", "dice"] == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert s.loc["fg", "n_hd95_undefined"] == 1
    assert s.loc["fg", "hd95_mm"] == pytest.approx((1.0 + 0.0) / 2)
    assert s.loc["overall", "n_cases"] == 3


def test_overall_weighs_classes_equally():
    label = np.array([[1, 1, 1, 1, 2]])
    pred = np.array([[1, 1, 1, 1, 0]])
    s = score_cases([("c", pred, label, None)], 3).summary
    assert s.loc["overall", "dice"] == pytest.approx((1.0 + 0.0) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        score_case(np.zeros((4, 4), int), np.zeros((4, 5), int), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        score_case(np.full((4, 4), 2), np.zeros((4, 4), int), 2)
    with pytest.raises(TypeError, match="integer"):
        score_case(np.zeros((4, 4)), np.zeros((4, 4), int), 2)
    with pytest.raises(ValueError, match="spacing"):
        score_case(np.zeros((4, 4), int), np.zeros((4, 4), int), 2, spacing=(1.0,))


def test_mean_ci_by_hand():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert np.isnan(mean_ci([5.0])[1])
