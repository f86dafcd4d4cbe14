"""The warning before a CIFAR launch whose files the workers cannot get: the decision
(samon_app.data_warning, pure) and the Launch page (AppTest, the data check monkeypatched):
one warning and a disabled button instead of runs that fail after the fact."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import APP, TIMEOUT

from samon_app.data_warning import DataWarning, cifar_datasets, data_warning
from samon_core.service import preflight

LAUNCH = "app_pages/launch.py"
CIFAR_PRESET = "cifar100-resnet20-cpu"


# ---------------------------------------------------------------------------------------------
# the decision
# ---------------------------------------------------------------------------------------------


def decide(datasets, *, present=False, online=False, here=True):
    return data_warning(datasets, present={d: present for d in ("cifar100", "cifar10")},
                        online=online, checks_here=here, data_dir="/srv/data")


def test_missing_and_offline_blocks_when_the_workers_are_here():
    warning = decide(["cifar100", "cifar100"])
    assert warning == DataWarning(
        "CIFAR-100 is not on this server (looked in /srv/data) and the server is offline: runs "
        "would fail. Use the synthetic set, or ask the teacher to put cifar-100-python/ there "
        "(docs/deployment.md).", blocks=True)
    assert "cifar-10-batches-py/" in decide(["cifar10"]).text


def test_workers_elsewhere_get_a_warning_but_no_block():
    warning = decide(["cifar100"], here=False)
    assert not warning.blocks
    assert "this check is this machine's and theirs may differ" in warning.text


@pytest.mark.parametrize("datasets, present, online", [
    (["cifar100"], True, False),  # the files are there
    (["cifar100"], False, True),  # the trainer downloads them
    (["synthetic", "synthetic10"], False, False),  # generated: nothing to fetch
    ([], False, False),
])
def test_no_warning_when_the_data_can_be_had(datasets, present, online):
    assert decide(datasets, present=present, online=online) is None


def test_only_cifar_datasets_are_checked():
    assert cifar_datasets(["synthetic", "cifar10", "cifar100", "cifar10"]) == ["cifar10",
                                                                               "cifar100"]
    # a dataset the caller forgot to look up counts as missing, not as present
    assert data_warning(["cifar10"], present={}, online=False, checks_here=True,
                        data_dir="d").blocks


# ---------------------------------------------------------------------------------------------
# the Launch page
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def data_check(runs, monkeypatch, tmp_path):
    """The Launch page's data check under the test's control: files present or not, online or
    not (its own data folder, so no cached answer of another test is reused). Returns a dict to
    fill in; it records how often the network was asked."""
    facts = {"present": False, "online": False, "asked": 0}

    def online(timeout: float = 3.0) -> bool:
        facts["asked"] += 1
        return facts["online"]

    monkeypatch.setenv("SAMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(preflight, "cifar_files_present", lambda d, folder: facts["present"])
    monkeypatch.setattr(preflight, "online", online)
    return facts


def launch_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in {"owner": "alice", **query}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(LAUNCH).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def data_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "CIFAR" in w.value]


def test_cifar_missing_and_offline_warns_once_and_disables_launch(data_check, runs, tmp_path):
    at = launch_page(dataset="cifar100", train_subset="512", test_subset="256")
    assert at.selectbox(key="dataset").value == "cifar100"
    warnings = data_warnings(at)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("CIFAR-100 is not on this server (looked in "
                                  f"{(tmp_path / 'data').resolve()}) and the server is offline")
    assert at.button(key="launch_form").disabled
    assert not at.button(key="launch_preset").disabled  # the quick demo is synthetic
    at.run()  # the answer is cached: a rerun does not ask the network again
    assert data_check["asked"] == 1 and len(data_warnings(at)) == 1
    at.selectbox(key="dataset").set_value("synthetic").run()
    assert not data_warnings(at) and not at.button(key="launch_form").disabled
    assert runs.list_runs().empty


def test_a_cifar_preset_is_held_back_the_same_way(data_check):
    at = launch_page(preset=CIFAR_PRESET)
    assert len(data_warnings(at)) == 1
    assert at.button(key="launch_preset").disabled
    assert not at.button(key="launch_form").disabled  # the form's own data is synthetic


def test_cifar_present_launches_without_a_warning(data_check, runs):
    data_check["present"] = True
    at = launch_page(dataset="cifar100", train_subset="512", test_subset="256", epochs="1")
    assert not data_warnings(at)
    assert data_check["asked"] == 0  # files there: the network is not asked
    at.button(key="launch_form").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(runs.list_runs()["dataset"]) == {"cifar100"}


def test_workers_elsewhere_warn_without_disabling(data_check, monkeypatch):
    monkeypatch.setenv("SAMON_LOCAL_CHECKS", "0")
    at = launch_page(dataset="cifar100", train_subset="512", test_subset="256")
    warnings = data_warnings(at)
    assert len(warnings) == 1 and "this machine's" in warnings[0]
    assert not at.button(key="launch_form").disabled
