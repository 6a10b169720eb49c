"""pytest fixtures for cvirt's integration suite (see cvirt.py); the
harness's hooks (harness.py) fail a test on any daemon crash."""

import os
import types

import pytest

import cvirt
import harness
from harness import *  # noqa: F401,F403 - the harness's pytest hooks


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: boots several guests or restarts daemons")
    config.addinivalue_line(
        "markers", "sqlite_only: runs in the SQLite pass only (deselected "
        "when CVIRT_TEST_PG is set)")
    config.addinivalue_line(
        "markers", "pg_only: runs in the PostgreSQL pass only (deselected "
        "unless CVIRT_TEST_PG is set)")
    config.addinivalue_line(
        "markers", "shared_storage: runs in the networked-storage pass too, "
        "with every shared storage domain on CVIRT_TEST_SHARED (a GlusterFS "
        "volume; the only tests there)")
    config.addinivalue_line(
        "markers", "faults: the fault-injection suite (test_faults.py); "
        "runs only where each host has a storage client of its own "
        "(CVIRT_TEST_SHARED_CLIENT: the GlusterFS pass)")
    # The fault suite's table (test_faults.py writes it, a worker too;
    # pytest_terminal_summary prints it): one file per session.
    if not hasattr(config, "workerinput") and \
            not os.environ.get("CVIRT_FAULTS_TABLE"):
        os.environ["CVIRT_FAULTS_TABLE"] = os.path.join(
            "/tmp", "cvirt-faults-table.%d" % os.getpid())
    config.addinivalue_line(
        "markers", "local_storage_only: a test of a shared_storage module "
        "deselected in the networked-storage pass, with the reason in its "
        "docstring")


@pytest.fixture(scope="session", autouse=True)
def sanitizer_env(tmp_path_factory):
    """cvirt processes a test starts with the suite's own environment
    (subprocess.run of cvirt_bin without a cluster's env) report to
    BASETEMP/other.san.PID, which the harness reads too."""
    prefix = str(tmp_path_factory.getbasetemp() / "other.san")
    saved = {k: os.environ.get(k) for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")}
    os.environ.update({k: v for k, v in harness.sanitizer_env(
        {}, prefix, "cvirt commands run by tests").items()})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Each test runs in exactly one database pass: sqlite_only tests are
    deselected in the PostgreSQL pass (CVIRT_TEST_PG set), pg_only ones in
    the SQLite pass. The networked-storage pass (CVIRT_TEST_SHARED set)
    runs only the tests marked shared_storage and not local_storage_only.

    Tests marked faults run only where hosts have storage clients of
    their own (CVIRT_TEST_SHARED_CLIENT: the GlusterFS pass).

    tests/run spreads the suite over two pytest-xdist workers with
    --dist loadgroup: each module is one group, so it runs on one worker
    and its module-scoped cluster is made once. A module may name a
    shared group (XDIST_GROUP): the ones whose agents realize networks
    in this machine's own network namespace share "hostnet", as they
    would race for the same bridge names (cvnb1, ...)."""
    other = "sqlite_only" if os.environ.get("CVIRT_TEST_PG") else "pg_only"

    def runs_here(item):
        if item.get_closest_marker(other) is not None:
            return False
        if item.get_closest_marker("faults") is not None and \
                not cvirt.SHARED_CLIENT:
            return False
        if not cvirt.SHARED:
            return True
        return item.get_closest_marker("shared_storage") is not None and \
            item.get_closest_marker("local_storage_only") is None
    keep = [i for i in items if runs_here(i)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(
            items=[i for i in items if not runs_here(i)])
        items[:] = keep
    for item in items:
        group = getattr(item.module, "XDIST_GROUP", None) or \
            item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def cvirt_bin():
    """Path of the cvirt binary under test ($CVIRT_BIN or build/cvirt)."""
    path = cvirt.cvirt_bin()
    if not os.access(path, os.X_OK):
        if os.environ.get("CVIRT_BIN"):
            pytest.fail("CVIRT_BIN=%s is not an executable" % path)
        pytest.skip("%s not built: run `make` (tests/run does)" % path)
    return path


@pytest.fixture(scope="session")
def guest():
    """The test guest: .kernel (an ELF booted by its PVH entry), .bzimage
    (the same kernel as a bzImage: what OVMF boots) and .initrd paths
    (tests/guest/out)."""
    paths = (cvirt.GUEST_KERNEL, cvirt.GUEST_BZIMAGE, cvirt.GUEST_INITRD)
    if not all(os.path.exists(p) for p in paths):
        pytest.skip("test guest not built: run tests/guest/build-guest.sh "
                    "(tests/run does)")
    return types.SimpleNamespace(kernel=paths[0], bzimage=paths[1],
                                 initrd=paths[2])


def _make_cluster(request, tmp_path_factory, hosts=("h1",), agent_extra=None):
    logdir = tmp_path_factory.mktemp("logs")
    cl = cvirt.Cluster(logdir=str(logdir))
    request.addfinalizer(cl.cleanup)
    cl.start(hosts=hosts, agent_extra=agent_extra)
    return cl


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory, cvirt_bin):
    """One cluster (manager + agent h1) shared by a test module."""
    return _make_cluster(request, tmp_path_factory)


@pytest.fixture
def make_cluster(request, tmp_path_factory, cvirt_bin):
    """Factory for a test's own cluster: make_cluster(hosts=("h1",),
    agent_extra={"h1": [...]}); stopped when the test ends."""
    def make(hosts=("h1",), agent_extra=None):
        return _make_cluster(request, tmp_path_factory, hosts, agent_extra)
    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fault suite's table (test_faults.py), when it ran."""
    if hasattr(config, "workerinput"):
        return
    path = os.environ.get("CVIRT_FAULTS_TABLE")
    if not path or not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    os.unlink(path)
    terminalreporter.write_sep("=", "fault-injection suite")
    terminalreporter.write(text)
