import json

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import GroupReport, MetricWarning, on_scores


def _data(seed=0, n=500):
    rng = np.random.default_rng(seed)
    g = rng.choice(["f", "m", "x"], n)
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + 0.1 * (g == "m") + 0.6 * rng.random(n), 0, 1)
    return y, (s > 0.5).astype(int), s, g


def test_groupreport_matches_fairlearn_metricframe():
    y, p, s, g = _data()
    rep = GroupReport(metrics=["tpr", "fpr", "selection_rate", "accuracy"], y_true=y, y_pred=p, sensitive_features=g)
    mf = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "selection_rate": selection_rate,
                 "accuracy": accuracy_score},
        y_true=y, y_pred=p, sensitive_features=g,
    )
    np.testing.assert_allclose(rep.by_group.to_numpy(), mf.by_group.to_numpy())
    np.testing.assert_allclose(rep.overall.to_numpy(), mf.overall.to_numpy())
    for method in ("between_groups", "to_overall"):
        np.testing.assert_allclose(rep.difference(method=method).to_numpy(), mf.difference(method=method).to_numpy())
        np.testing.assert_allclose(rep.ratio(method=method).to_numpy(), mf.ratio(method=method).to_numpy())


def test_groupreport_custom_and_score_metrics_with_bootstrap():
    y, p, s, g = _data(1)
    rep = GroupReport(
        metrics={"f1": f1_score, "ap": "ap", "ap_sklearn": on_scores(average_precision_score), "n": "count"},
        y_true=y, y_pred=p, y_score=s, sensitive_features=g, n_boot=30, seed=1,
    )
    bg = rep.by_group
    assert bg.loc["m", "f1"] == pytest.approx(f1_score(y[g == "m"], p[g == "m"]))
    np.testing.assert_allclose(bg["ap"], bg["ap_sklearn"], atol=1e-12)
    assert bg["n"].sum() == len(y)
    oc = rep.overall_ci()
    assert (oc["ci_low"] <= rep.overall + 1e-12).all() and (rep.overall <= oc["ci_high"] + 1e-12).loc[["f1", "ap"]].all()
    d = rep.to_dict()
    json.dumps(d)
    assert set(d["by_group"]["ap"]) == {"f", "m", "x"}
    md = rep.to_markdown()
    assert "group m" in md and "difference" in md and "over 30 resamples" in md and "simultaneous" in md


def test_groupreport_nan_group_warns():
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([1, 0, 0, 1, 0, 1])
    g = np.array(["a", "a", "a", "b", "b", "b"])
    with pytest.warns(MetricWarning, match="'tpr'.*'b'"):
        rep = GroupReport(metrics=["tpr"], y_true=y, y_pred=p, sensitive_features=g)
    assert np.isnan(rep.difference()["tpr"])
    assert rep.to_dict()["difference"]["tpr"] is None


def test_groupreport_bad_inputs():
    y, p, s, g = _data(2, 50)
    with pytest.raises(DebiaskitError, match="unknown metric"):
        GroupReport(metrics=["auc"], y_true=y, y_pred=p, sensitive_features=g)
    with pytest.raises(DebiaskitError, match="needs y_score"):
        GroupReport(metrics=["ap"], y_true=y, y_pred=p, sensitive_features=g)
    with pytest.raises(DebiaskitError, match="at least 2"):
        GroupReport(metrics=["tpr"], y_true=y, y_pred=p, sensitive_features=np.zeros(50))
    with pytest.raises(DebiaskitError, match="n_boot"):
        GroupReport(metrics=["tpr"], y_true=y, y_pred=p, sensitive_features=g).overall_ci()
