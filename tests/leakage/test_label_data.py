import numpy as np
import pytest
import torch

from debiaskit.data.attribute_labels import (
    CELEBA_ATTRIBUTES,
    LabelTable,
    load_celeba_attributes,
    load_label_csv,
    load_label_dataset,
)
from debiaskit.data.base import BiasedDataset
from debiaskit.data.bias_card import bias_card, format_bias_card
from debiaskit.data.wang2019 import (
    coco_object_names,
    imsitu_verb_names,
    load_coco_labels,
    load_imsitu_labels,
    load_ratio_ids,
)
from debiaskit.errors import DebiaskitError


def test_imsitu_and_coco_loaders(shared_data):
    root = shared_data / "wang2019"
    v, g, names = load_imsitu_labels(root, "train")
    assert v.shape == (24301,) and (g == 0).sum() == 14199 and (g == 1).sum() == 10102
    assert v.max() == 210 and len(names) == 24301 and names[0].endswith(".jpg")
    assert len(imsitu_verb_names(shared_data)) == 211  # the data root works too
    o, g2, files = load_coco_labels(root, "val")
    assert o.shape == (5367, 79) and o.dtype == np.uint8
    assert (g2 == 0).sum() == 3813 and (g2 == 1).sum() == 1554
    assert len(coco_object_names(root)) == 79 and files[0].startswith("COCO_val2014_")
    assert len(load_ratio_ids(root, "coco", "val", 1)) == 1080
    with pytest.raises(DebiaskitError, match="not publicly available"):
        load_coco_labels(root, "train")
    with pytest.raises(DebiaskitError, match="unknown split"):
        load_imsitu_labels(root, "dev")


def test_celeba_attributes(shared_data):
    t = load_celeba_attributes(shared_data / "celeba", split="val")
    assert len(t) == 19867 and t.labels.shape == (19867, 39) and "Male" not in t.label_names
    assert t.protected_names == ["not Male", "Male"]
    t2 = load_celeba_attributes(shared_data / "celeba", protected="Young", split="test")
    assert len(t2) == 19962 and "Male" in t2.label_names
    with pytest.raises(DebiaskitError, match="valid: 5_o_Clock_Shadow"):
        load_celeba_attributes(shared_data / "celeba", protected="male")
    assert len(CELEBA_ATTRIBUTES) == 40
    assert load_label_dataset("celeba", data_dir=shared_data, split="val").split == "val"
    with pytest.raises(DebiaskitError, match="available: celeba"):
        load_label_dataset("nope", data_dir=shared_data)


def test_label_csv(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("a,b,sex\n1,0,f\n0,1,m\n1,1,f\n-1,1,m\n")
    t = load_label_csv(p, protected="sex")
    assert t.labels.tolist() == [[1, 0], [0, 1], [1, 1], [0, 1]] and t.protected.tolist() == [0, 1, 0, 1]
    assert t.protected_names == ["f", "m"]
    with pytest.raises(DebiaskitError, match="no protected column 'gender'"):
        load_label_csv(p, protected="gender")
    q = tmp_path / "bad.csv"
    q.write_text("a,b,sex\n1,0,f\n0,,m\n")
    with pytest.raises(DebiaskitError, match="missing values"):
        load_label_csv(q, protected="sex")
    r = tmp_path / "single.csv"
    r.write_text("verb,g\nrun,0\nsit,1\nrun,1\n")
    s = load_label_csv(r, protected="g", single_label="verb")
    assert not s.multilabel and s.labels.tolist() == [0, 1, 0] and s.label_names == ["run", "sit"]


def test_bias_card_on_label_arrays_hand_computed():
    y = np.array([[1, 0], [1, 0], [1, 1], [0, 1]])
    g = np.array([0, 0, 1, 1])
    card = bias_card(y, g, label_names=["cook", "ski"], protected_names=["woman", "man"], top_k=2)
    assert card.counts == [[2, 1], [0, 2]]
    assert card.p_protected_given_label[0] == pytest.approx([2 / 3, 1 / 3])
    assert card.zhao_bias == card.p_protected_given_label  # b(o, g) = c(o, g) / sum_g' c(o, g')
    assert card.most_skewed["man"][0]["label"] == "ski" and card.most_skewed["woman"][0]["label"] == "cook"
    assert card.conflict_ratio == pytest.approx(1 / 5)  # 1 of 5 occurrences off its label's majority group
    text = format_bias_card(card)
    assert "ski" in text and "conflict ratio: 0.2000" in text


def test_bias_card_on_biased_dataset():
    targets = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])
    bias = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0])
    ds = BiasedDataset(images=torch.zeros(8, 1, 2, 2, dtype=torch.uint8), targets=targets, bias=bias, num_classes=2,
                       num_bias=2, split="train", name="toy")
    card = bias_card(ds)
    assert card.counts == ds.group_counts().tolist()
    assert card.conflict_ratio == pytest.approx(ds.conflict_ratio)
    assert card.name == "toy" and card.split == "train"
    assert "bias card: toy [train]" in format_bias_card(card)


def test_bias_card_leakage_interval():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 2, 600)
    y = np.stack([g, rng.integers(0, 2, 600)], 1)
    card = bias_card(y, g, leakage=True, leakage_rounds=2, leakage_epochs=1)
    lk = card.leakage
    assert lk["rounds"] == 2 and lk["ci95"][0] <= lk["mean"] <= lk["ci95"][1]
    multi = bias_card(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 2]), leakage=True)
    assert "skipped" in multi.leakage


def test_label_table_validation():
    with pytest.raises(DebiaskitError, match="label rows"):
        LabelTable(labels=np.zeros((3, 2)), protected=[0, 1], label_names=["a", "b"], protected_names=["x", "y"],
                   multilabel=True)
