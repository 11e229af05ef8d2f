"""Atomic writes shared by both trainers (model/common/checkpoints.py)."""

from __future__ import annotations

import threading

import numpy as np

from model.common.checkpoints import save_atomic


def test_two_writers_of_one_file_do_not_collide(tmp_path):
    # two trainings started together both fill the same data cache (a race seen in session 7)
    target, barrier, errors = tmp_path / "omniglot_background_52.npz", threading.Barrier(2), []

    def write(value):
        def save(tmp):
            np.savez(tmp, x=np.full(4, value))
            barrier.wait(timeout=10)  # both temporary files exist before either is renamed
        try:
            save_atomic(target, save)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure of either writer
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with np.load(target) as z:
        assert z["x"].tolist() in ([1] * 4, [2] * 4)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken(tmp):
        raise OSError("disk full")

    try:
        save_atomic(target, broken)
    except OSError:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
