"""Splits, forget specifications and their errors, split hashes, batching and augmentation (docs/data.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnlab as ul
from unlearnlab.data.tensors import TensorData, batch_positions, crop_flip, iterate
from unlearnlab.errors import UnlearnlabError

# digits, random:0.1, seed 1, val_seed 1 (split v1). Computed once; a platform, NumPy or code change that moves
# any index of the split changes this digest and must be a deliberate, versioned change.
DIGITS_RANDOM10_SEED1_HASH = "d819eb00e5fcb03392d4947f5c47797fd3ee70d981d6c77badb1dea416090d97"


def _positions(data: TensorData) -> set[int]:
    return set(data.index.tolist())


# ------------------------------------------------------------------------------------------------ split sizes


def test_digits_split_sizes_match_spec(digits_task):
    assert len(digits_task.train) == 1302
    assert len(digits_task.val) == 140
    assert len(digits_task.test) == 355
    assert len(digits_task.forget) == 130
    assert len(digits_task.retain) == 1302 - 130
    assert digits_task.num_classes == 10
    assert digits_task.input_shape == (1, 8, 8)


def test_digits_pixels_are_in_unit_interval(digits_task):
    for part in (digits_task.train, digits_task.val, digits_task.test):
        assert float(part.x.min()) >= 0.0
        assert float(part.x.max()) <= 1.0


def test_forget_and_retain_partition_the_training_set(digits_task):
    forget, retain = _positions(digits_task.forget), _positions(digits_task.retain)
    assert forget.isdisjoint(retain)
    assert forget | retain == _positions(digits_task.train) == set(range(1302))
    assert len(forget) == len(digits_task.forget)  # no repeated position


def test_forget_and_retain_rows_are_the_training_rows_at_their_positions(digits_task):
    for part in (digits_task.forget, digits_task.retain):
        assert torch.equal(part.x, digits_task.train.x[part.index])
        assert torch.equal(part.y, digits_task.train.y[part.index])


def test_validation_and_test_rows_are_not_training_rows(digits_task):
    assert (digits_task.val.index == -1).all()
    assert (digits_task.test.index == -1).all()
    train_rows = {tuple(r) for r in digits_task.train.x.flatten(1).tolist()}
    assert not any(tuple(r) in train_rows for r in digits_task.test.x.flatten(1).tolist())


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_random_forget_positions_follow_randomstate_seed_minus_one(seed):
    task = ul.make_task("digits", "random:0.1", seed=seed, device="cpu")
    expected = np.sort(np.random.RandomState(seed - 1).choice(1302, 130, replace=False))
    np.testing.assert_array_equal(task.forget_positions, expected)
    np.testing.assert_array_equal(task.forget.index.numpy(), expected)


def test_random_count_spec_gives_that_many_samples():
    task = ul.make_task("digits", "random:50", seed=1, device="cpu")
    assert len(task.forget) == 50
    expected = np.sort(np.random.RandomState(0).choice(1302, 50, replace=False))
    np.testing.assert_array_equal(task.forget_positions, expected)


def test_classwise_task_forgets_every_training_image_of_the_class_and_drops_it_from_test():
    task = ul.make_task("digits", "class:3", seed=1, device="cpu")
    of_class = np.flatnonzero(task.train.y.numpy() == 3)
    assert len(of_class) > 0
    np.testing.assert_array_equal(np.sort(task.forget.index.numpy()), of_class)
    assert (task.forget.y == 3).all()
    assert not (task.retain.y == 3).any()
    assert not (task.test.y == 3).any()
    full_test = ul.make_task("digits", "random:0.1", seed=1, device="cpu").test
    assert len(task.test) == int((full_test.y != 3).sum())


def test_indices_file_names_the_datasets_own_sample_numbers(tmp_path: Path):
    train_numbers, _ = _train_numbers()
    idx = train_numbers[[1000, 5, 0, 17]]  # numbers of the dataset, not positions in the train list
    path = tmp_path / "forget.npy"
    np.save(path, idx)
    task = ul.make_task("digits", f"indices:{path}", seed=1, device="cpu")
    ds = ul.load_dataset("digits")
    rows = [int(np.flatnonzero(np.asarray(ds.train_index) == i)[0]) for i in np.sort(idx)]
    assert torch.equal(task.forget.x, ds.x_train[rows])
    assert torch.equal(task.forget.y, ds.y_train[rows])
    assert len(task.retain) == 1302 - 4


def test_indices_in_the_validation_split_are_refused(tmp_path: Path):
    _, val = _train_numbers()
    path = tmp_path / "forget.npy"
    np.save(path, val[:2])
    with pytest.raises(UnlearnlabError, match=r"validation split.*never trains on"):
        ul.make_task("digits", f"indices:{path}", device="cpu")


def test_indices_file_that_is_not_npy_is_refused(tmp_path: Path):
    path = tmp_path / "forget.txt"
    path.write_text("1 2 3")
    with pytest.raises(UnlearnlabError, match=r"not a \.npy file"):
        ul.make_task("digits", f"indices:{path}", device="cpu")


# ------------------------------------------------------------------------------------------------ split hash


def test_split_hash_is_stable_across_builds(digits_task):
    again = ul.make_task("digits", "random:0.1", seed=1, device="cpu")
    assert again.split_hash == digits_task.split_hash


def test_split_hash_equals_the_recorded_digest(digits_task):
    assert digits_task.split_hash == DIGITS_RANDOM10_SEED1_HASH


@pytest.mark.parametrize(
    "changes",
    [{"seed": 2}, {"forget": "random:0.2"}, {"forget": "class:3"}, {"val_seed": 2}],
    ids=["seed", "fraction", "kind", "val_seed"],
)
def test_split_hash_changes_with_seed_forget_spec_and_val_seed(digits_task, changes):
    kwargs = {"forget": "random:0.1", "seed": 1, "val_seed": 1, **changes}
    other = ul.make_task("digits", device="cpu", **kwargs)
    assert other.split_hash != digits_task.split_hash


def test_val_seed_changes_the_validation_set_but_not_its_size(digits_task):
    other = ul.make_task("digits", "random:0.1", seed=1, val_seed=2, device="cpu")
    assert len(other.val) == len(digits_task.val)
    assert not torch.equal(other.val.x, digits_task.val.x)


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("spec", ["random:0", "random:1.5", "random:-0.1", "random:2.0", "random:1.0"])
def test_forget_fraction_outside_unit_interval_is_refused(spec):
    with pytest.raises(UnlearnlabError, match=r"outside \(0, 1\).*such as 0\.1"):
        ul.make_task("digits", spec, device="cpu")


def test_forget_fraction_that_is_not_a_number_is_refused():
    with pytest.raises(UnlearnlabError, match=r"'abc' is not a number.*random:0\.1"):
        ul.make_task("digits", "random:abc", device="cpu")


def test_forget_spec_without_argument_is_refused():
    with pytest.raises(UnlearnlabError, match=r"no argument.*random:0\.1"):
        ul.make_task("digits", "random", device="cpu")


def test_fraction_rounding_to_an_empty_forget_set_is_refused():
    with pytest.raises(UnlearnlabError, match=r"forget set is empty.*larger fraction"):
        ul.make_task("digits", "random:0.0001", device="cpu")


def test_forget_count_equal_to_the_training_set_is_refused():
    with pytest.raises(UnlearnlabError, match=r"whole training set \(1302\)"):
        ul.make_task("digits", "random:1302", device="cpu")


def test_forgetting_every_class_is_refused():
    with pytest.raises(UnlearnlabError, match=r"every training sample.*keep one class"):
        ul.make_task("digits", "class:" + ",".join(map(str, range(10))), device="cpu")


def test_unknown_forget_class_is_refused_naming_the_range():
    with pytest.raises(UnlearnlabError, match=r"\[12\] is not a class.*0\.\.9"):
        ul.make_task("digits", "class:12", device="cpu")


def test_non_integer_class_list_is_refused():
    with pytest.raises(UnlearnlabError, match=r"must be integers"):
        ul.make_task("digits", "class:three", device="cpu")


def test_unknown_forget_kind_is_refused_listing_the_kinds():
    with pytest.raises(UnlearnlabError, match=r"Unknown forget kind 'rand'.*random:0\.1.*class:3.*indices:"):
        ul.make_task("digits", "rand:0.1", device="cpu")


def _train_numbers() -> tuple[np.ndarray, np.ndarray]:
    """(dataset sample numbers in D, numbers in D_val) of the digits split with val_seed 1."""
    from unlearnlab.data.datasets import stratified_pick

    ds = ul.load_dataset("digits")
    val = stratified_pick(ds.y_train.numpy(), 0.1, np.random.RandomState(1))
    numbers = np.asarray(ds.train_index)  # digits numbers its samples 0 … 1796 in scikit-learn's order
    return numbers[np.setdiff1d(np.arange(len(ds.y_train)), val)], numbers[val]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([2, 5, 1797], dtype=np.int64), r"1 index\(es\) outside \[0, 1795\).*own training-sample"),
        (np.array([-1, 5], dtype=np.int64), r"outside \[0, 1795\)"),
        (np.array([3, 4, 3], dtype=np.int64), r"repeats indices \[3\].*numpy\.unique"),
        (np.zeros((2, 3), dtype=np.int64), r"shape \(2, 3\).*1-D integer array"),
        (np.array([1.0, 2.0]), r"float64.*1-D integer array"),
        (np.array([], dtype=np.int64), r"is empty.*at least one index"),
        (_train_numbers()[0], r"every training sample"),
    ],
    ids=["past-end", "negative", "duplicate", "2-D", "float", "empty", "all"],
)
def test_bad_indices_file_is_refused_with_the_fix(tmp_path: Path, array, message):
    path = tmp_path / "forget.npy"
    np.save(path, array)
    with pytest.raises(UnlearnlabError, match=message):
        ul.make_task("digits", f"indices:{path}", device="cpu")


def test_missing_indices_file_is_refused(tmp_path: Path):
    with pytest.raises(UnlearnlabError, match=r"does not exist.*numpy\.save"):
        ul.make_task("digits", f"indices:{tmp_path / 'nope.npy'}", device="cpu")


def test_unknown_dataset_suggests_the_close_name():
    with pytest.raises(UnlearnlabError, match=r"Unknown dataset 'digit'\. Did you mean 'digits'"):
        ul.make_task("digit", "random:0.1", device="cpu")


@pytest.mark.parametrize("seed", [0, -1])
def test_seed_below_one_is_refused(seed):
    with pytest.raises(UnlearnlabError, match=r"Seeds are integers >= 1"):
        ul.make_task("digits", "random:0.1", seed=seed, device="cpu")


# ------------------------------------------------------------------------------------------------ augmentation


def _asymmetric_batch(b: int = 16, c: int = 2, h: int = 6, w: int = 5) -> torch.Tensor:
    """Distinct values everywhere: no image equals its mirror or a shifted copy of itself."""
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w) + 1.0


def test_crop_flip_keeps_shape_and_dtype():
    x = _asymmetric_batch()
    out = crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.dtype == x.dtype


def test_crop_flip_is_deterministic_for_a_seeded_generator():
    x = _asymmetric_batch()
    a = crop_flip(x, torch.Generator().manual_seed(3))
    b = crop_flip(x, torch.Generator().manual_seed(3))
    c = crop_flip(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_crop_flip_without_padding_is_identity_or_mirror_per_image():
    x = _asymmetric_batch(b=64)
    out = crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    same = [torch.equal(out[i], x[i]) for i in range(len(x))]
    mirrored = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(s != m for s, m in zip(same, mirrored))  # every image is exactly one of the two
    assert 10 < sum(mirrored) < 54  # flips happen with probability 1/2


def test_crop_flip_output_is_a_window_of_the_zero_padded_image():
    pad = 2
    x = _asymmetric_batch(b=12)
    out = crop_flip(x, torch.Generator().manual_seed(1), padding=pad)
    h, w = x.shape[-2:]
    shifted = 0
    for i in range(len(x)):
        padded = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))
        windows = [
            (dy, dx, flip)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for flip in (False, True)
            if torch.equal(out[i], (padded.flip(-1) if flip else padded)[:, dy:dy + h, dx:dx + w])
        ]
        assert windows, f"image {i} is not a crop of its padded (possibly mirrored) input"
        shifted += any((dy, dx) != (pad, pad) for dy, dx, _ in windows)
    assert shifted > 0


# ------------------------------------------------------------------------------------------------ batching


@pytest.mark.parametrize(("n", "batch"), [(10, 3), (12, 4), (5, 8), (1, 1)])
def test_iterate_yields_every_position_once_per_pass_keeping_the_last_partial_batch(n, batch):
    data = TensorData.of(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n))
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):  # two passes, each a permutation
        batches = list(iterate(data, batch, gen, shuffle=True))
        sizes = [len(b["y"]) for b in batches]
        assert sizes == [batch] * (n // batch) + ([n % batch] if n % batch else [])
        seen = torch.cat([b["y"] for b in batches])
        assert sorted(seen.tolist()) == list(range(n))
        xs = torch.cat([b["x"] for b in batches])
        assert torch.equal(xs[:, 0].long(), seen)  # x and y stay paired


def test_iterate_reshuffles_between_passes_and_keeps_order_without_shuffle():
    n = 50
    data = TensorData.of(torch.zeros(n, 1), torch.arange(n))
    gen = torch.Generator().manual_seed(0)
    first = torch.cat([b["y"] for b in iterate(data, 7, gen)])
    second = torch.cat([b["y"] for b in iterate(data, 7, gen)])
    assert not torch.equal(first, second)
    ordered = torch.cat([b["y"] for b in iterate(data, 7, None, shuffle=False)])
    assert torch.equal(ordered, torch.arange(n))


def test_batch_positions_are_placed_on_the_requested_device_with_the_same_split():
    gen = torch.Generator().manual_seed(3)
    moved = batch_positions(10, 4, gen, True, device="meta")
    here = batch_positions(10, 4, torch.Generator().manual_seed(3), True)
    assert [p.device.type for p in moved] == ["meta"] * 3
    assert [len(p) for p in moved] == [len(p) for p in here] == [4, 4, 2]
    assert sorted(torch.cat(here).tolist()) == list(range(10))
