"""User datasets as debiaskit splits: the in-memory fast path and the streaming path (``docs/api.md``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import debiaskit
from debiaskit.data.adapters import StreamingBiasedDataset, StreamingImages, as_splits, content_key
from debiaskit.data.base import BiasedDataset
from debiaskit.errors import DebiaskitError
from debiaskit_plugin_fixture.data import PlantedTensors
from debiaskit_plugin_fixture.nets import PlantedCNN


class NotInMemory(torch.utils.data.Dataset):
    """Builds every sample on demand from its index (nothing is stored): what a file-backed dataset looks like."""

    def __init__(self, n: int, seed: int, *, labels_attr: bool = False) -> None:
        self.n, self.seed = n, seed
        if labels_attr:  # torchvision-style label attributes: the label pass is skipped
            self.targets = [self._yb(i)[0] for i in range(n)]
            self.bias = [self._yb(i)[1] for i in range(n)]

    def _yb(self, i: int) -> tuple[int, int]:
        y = (i * 7 + self.seed) % 2
        return y, y if (i % 10) else 1 - y

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        y, b = self._yb(i)
        g = torch.Generator().manual_seed(self.seed * 100003 + i)
        x = torch.randn(3, 6, 6, generator=g) * 0.5
        x[0] += 1.0 if b else -1.0
        x[1, 2:4, :] += 1.5 * (1 - y)
        x[1, :, 2:4] += 1.5 * y
        return x, y, b


class Augmenting(NotInMemory):
    def __getitem__(self, i: int):
        x, y, b = super().__getitem__(i)
        return x + 0.01 * torch.rand(x.shape), y, b  # a fresh random draw every read


def _fit(tmp_path, name, data_path, num_workers=0, data=None):
    torch.manual_seed(0)
    tr, va, te = data or (NotInMemory(192, 0), NotInMemory(64, 1), NotInMemory(64, 2))
    return debiaskit.fit("lff", PlantedCNN(width=4), tr, val=va, test=te, steps=24, out_dir=tmp_path / name,
                         hparams={"batch_size": 32, "lr": 3e-3}, device="cpu", data_path=data_path,
                         num_workers=num_workers, train_options={"eval_every": 8, "progress": False, "threads": 1})


def _rows(run_dir):
    import json

    skip = {"wall_time_s", "steps_per_s", "peak_memory_mb"}
    return [{k: v for k, v in json.loads(line).items() if k not in skip}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_streaming_gives_the_same_run_as_in_memory(tmp_path):
    mem = _fit(tmp_path, "mem", "in-memory")
    stream = _fit(tmp_path, "stream", "streaming")
    assert mem.result["data"]["info"]["data_path"] == "in-memory"
    assert stream.result["data"]["info"]["data_path"] == "streaming"
    assert mem.result["run_key"] == stream.result["run_key"]  # the data path is not part of what is trained
    assert _rows(tmp_path / "mem") == _rows(tmp_path / "stream")  # every metric of every evaluation
    a = torch.load(tmp_path / "mem" / "model_last.pt")
    b = torch.load(tmp_path / "stream" / "model_last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_streaming_with_worker_processes_reads_the_same_batches():
    ds = NotInMemory(50, 3)
    one = StreamingImages(ds, n=50, sample_shape=(3, 6, 6), dtype=torch.float32)
    two = StreamingImages(ds, n=50, sample_shape=(3, 6, 6), dtype=torch.float32, num_workers=2, chunk_size=4)
    idx = torch.tensor([49, 0, 7, 7, 23, 11, 2, 40, 31])
    expect = torch.stack([ds[i][0] for i in idx.tolist()])
    assert torch.equal(one.index_select(0, idx), expect)
    assert torch.equal(two.index_select(0, idx), expect)  # order kept across workers
    assert torch.equal(two[10:20], torch.stack([ds[i][0] for i in range(10, 20)]))
    assert torch.equal(two.index_select(0, idx[:3]), expect[:3])  # the persistent workers serve a second fetch
    assert two.to("cpu") is two and len(two) == 50 and two.shape[1:] == (3, 6, 6)
    two.close()


def test_auto_path_follows_memory_budget_and_randomness():
    small = as_splits(NotInMemory(40, 0))
    assert small["train"].info["data_path"] == "in-memory" and not isinstance(small["train"], StreamingBiasedDataset)
    assert torch.equal(small["train"].images[5], NotInMemory(40, 0)[5][0])
    big = as_splits(NotInMemory(40, 0), memory_budget=40 * 3 * 6 * 6 * 4 - 1)  # one byte short
    assert isinstance(big["train"], StreamingBiasedDataset) and "memory budget" in big["train"].info["data_path_reason"]
    rnd = as_splits(Augmenting(40, 0))
    assert isinstance(rnd["train"], StreamingBiasedDataset) and "random" in rnd["train"].info["data_path_reason"]
    # the content key (in the run key) is the same whichever path holds the data
    s = big["train"]
    assert content_key(s.images, s.targets, s.bias) == content_key(small["train"].images, s.targets, s.bias)


def test_labels_attributes_skip_the_label_pass():
    class Counting(NotInMemory):
        reads = 0

        def __getitem__(self, i):
            Counting.reads += 1
            return super().__getitem__(i)

    ds = Counting(30, 0, labels_attr=True)
    sp = as_splits(ds, data_path="streaming")
    assert Counting.reads == 2  # only the probe of sample 0 (read twice to detect random transforms)
    assert sp["train"].targets.tolist() == ds.targets and sp["train"].bias.tolist() == ds.bias


def test_label_spaces_and_aligned_cells():
    tr = PlantedTensors(100, conflicting=0.2, seed=0)
    te = PlantedTensors(40, conflicting=0.5, seed=1, with_bias=False)
    sp = as_splits(tr, test=te)
    assert sp["train"].num_classes == 2 and sp["train"].num_bias == 2
    # aligned cell of each class = its most frequent bias value in train (here b == y)
    assert sp["train"].aligned_cells.tolist() == [[True, False], [False, True]]
    assert sp["test"].info["bias_labels"] is False and int(sp["test"].bias.max()) == 0
    # float images are kept as they are (model inputs); uint8 ones stay uint8
    assert sp["train"].images.dtype == torch.float32 and torch.equal(sp["train"].images[3], tr[3][0])


def test_other_sample_formats_and_dataloaders():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (5, 4, 3), dtype=np.uint8) for _ in range(6)]

    class Mixed(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            x = arrays[i] if i % 2 else Image.fromarray(arrays[i])
            return x, np.int64(i % 3), torch.tensor(i % 2)

    loader = torch.utils.data.DataLoader(Mixed(), batch_size=4)
    sp = as_splits(loader)
    tr = sp["train"]
    assert tr.images.dtype == torch.uint8 and tr.image_shape == (3, 5, 4)  # (H, W, C) arrays → (C, H, W)
    assert torch.equal(tr.images[1], torch.from_numpy(arrays[1]).permute(2, 0, 1))
    assert torch.equal(tr.images[0], torch.from_numpy(arrays[0]).permute(2, 0, 1))  # PIL → same pixels
    assert tr.targets.tolist() == [0, 1, 2, 0, 1, 2] and tr.num_classes == 3


@pytest.mark.parametrize("bad, message", [
    ([(torch.zeros(3, 4, 4),)], r"must return \(x, y\) or \(x, y, b\)"),
    ([(torch.zeros(3, 4, 4), 0.5)], "class label y must be an integer"),
    ([(torch.zeros(3, 4, 4), 0, 1), (torch.zeros(3, 4, 4), 1)], "be consistent"),
    ([(torch.zeros(3, 4, 4, dtype=torch.int32), 0)], "uint8 or floating point"),
    ([(torch.zeros(3, 4, 4), 0), (torch.zeros(3, 5, 4), 1)], "same shape"),
    ([], "empty"),
])
def test_malformed_samples_are_one_line_errors(bad, message):
    with pytest.raises(DebiaskitError, match=message):
        as_splits(bad, data_path="in-memory")


def test_biased_datasets_pass_through_and_cannot_be_mixed():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    ds = BiasedDataset(images=x, targets=torch.tensor([0, 1, 0, 1]), bias=torch.tensor([0, 1, 1, 0]), num_classes=2,
                       num_bias=2, split="train")
    sp = as_splits(ds, test=ds)
    assert sp["train"] is ds and ds.info["data_path"] == "in-memory"
    with pytest.raises(DebiaskitError, match="every split as a BiasedDataset or none"):
        as_splits(ds, test=PlantedTensors(4, conflicting=0.1, seed=0))
