"""Weight files found through an installed distribution's RECORD (app/core/wheel_files.py)."""

from importlib import metadata

import pytest

from app.core import wheel_files


@pytest.fixture
def weights_dist(tmp_path, monkeypatch):
    """A real installed distribution `weights-demo` whose RECORD lists two weight files."""
    info = tmp_path / "weights_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weights-demo\nVersion: 1.0\n")
    (info / "RECORD").write_text("weights_demo/present.bin,,\nweights_demo/removed.bin,,\n")
    (tmp_path / "weights_demo").mkdir()
    (tmp_path / "weights_demo" / "present.bin").write_bytes(b"\x00" * 10)
    dist, installed = metadata.PathDistribution(info), metadata.distribution
    monkeypatch.setattr(wheel_files.metadata, "distribution",
                        lambda name: dist if name == "weights-demo" else installed(name))
    return tmp_path


def test_a_listed_file_on_disk_is_found(weights_dist):
    path = wheel_files.installed_file("weights-demo==1.0", "weights_demo/present.bin")
    assert path == weights_dist / "weights_demo" / "present.bin"


def test_a_listed_file_missing_on_disk_names_the_reinstall(weights_dist):
    # the slim image removes weight files its runtime never reads; RECORD still lists them
    with pytest.raises(FileNotFoundError, match=r"removed.bin of the installed weights-demo is missing: "
                                                r"pip install --force-reinstall weights-demo==1.0"):
        wheel_files.installed_file("weights-demo==1.0", "weights_demo/removed.bin")


def test_a_file_the_record_does_not_list_is_not_found(weights_dist):
    with pytest.raises(FileNotFoundError, match="not found in the installed weights-demo"):
        wheel_files.installed_file("weights-demo==1.0", "weights_demo/other.bin")
