"""Task cancel (docs/api.md `POST /tasks/{id}/cancel`, docs/ui.md "cancel
a queued one"): a queued task is cancelled and never runs, its VM is free
for the next operation; a running task cannot be cancelled (409) and
finishes as it would have."""

import signal
import time

from cvirt import qemu_pid, wait_for

WORKERS = 4     # task_init(4) in src/manager/manager.c


def task(cl, tid):
    status, t = cl.http("GET", "/api/v1/tasks/%d" % tid)
    assert status == 200, t
    return t


def submit_start(cl, name):
    status, t = cl.http("POST", "/api/v1/vms/%s/start" % name, {})
    assert status == 202, (name, status, t)
    return t["id"]


def test_cancel_queued_task_and_refuse_running_one(make_cluster):
    """Every task worker is held by a vm.start whose agent does not answer
    (SIGSTOP), so a fifth start stays queued. Cancelling it answers the
    task `cancelled` at once; the VM's task slot is free (a new start is
    accepted, not "busy"); once the agent answers again, the cancelled
    task never runs (it stays cancelled and the new start succeeds);
    cancelling a running task is refused with 409 and it succeeds.

    Guards src/manager/api_task.c api_task_cancel() (the queued-only
    update and the release of vms.task_id) and src/manager/task.c
    task_run()'s skip of a task that is no longer queued."""
    cl = make_cluster(hosts=("h1",))
    names = ["tc%d" % i for i in range(WORKERS + 1)]
    for n in names:
        cl.cli("vm", "create", n, "--cpus", 1, "--memory", 64)
    agent = cl.agents["h1"]
    agent.signal(signal.SIGSTOP)
    try:
        held = [submit_start(cl, n) for n in names[:WORKERS]]
        wait_for(lambda: all(task(cl, t)["state"] == "running"
                             for t in held), 10,
                 "every worker busy with a start")
        queued = submit_start(cl, names[-1])
        time.sleep(0.5)
        assert task(cl, queued)["state"] == "queued"

        status, t = cl.http("POST", "/api/v1/tasks/%d/cancel" % queued)
        assert status == 200 and t["state"] == "cancelled", (status, t)
        assert t["error"] == "cancelled by the user", t
        v = cl.vm(names[-1])
        assert v["state"] == "stopped" and v["host"] is None and \
            v["task"] is None, v
        status, t = cl.http("POST", "/api/v1/tasks/%d/cancel" % held[0])
        assert status == 409 and "no longer queued" in t["error"], t
        # The VM takes a new operation: not "busy with task N".
        again = submit_start(cl, names[-1])
    finally:
        agent.signal(signal.SIGCONT)
    for t in held + [again]:
        got = wait_for(lambda: (lambda x: x if x["state"] not in (
            "queued", "running") else None)(task(cl, t)), 60,
            "task %d to end" % t)
        assert got["state"] == "succeeded", got
    t = task(cl, queued)
    assert t["state"] == "cancelled" and t["result"] is None, t
    for n in names:
        v = cl.vm(n)
        assert v["state"] == "running" and v["task"] is None and \
            qemu_pid(v["uuid"]) == v["pid"], v
    # The cancelled start left no trace but its task.
    starts = [x for x in cl.cli("task", "list", json=True)
              if x["vm"] == names[-1]]
    assert sorted((x["id"], x["state"]) for x in starts) == \
        [(queued, "cancelled"), (again, "succeeded")], starts
    for n in names:
        cl.cli("vm", "delete", n, "--force")
