"""What a manager restart leaves behind: backups and image imports that
were running when it stopped are marked failed (their tasks too) and can
be deleted; nothing stays "running" forever."""

import os
import sqlite3

import cvirt


def exec_sql(cl, sql):
    """Runs one statement on the cluster's database (SQLite or psql)."""
    if cl.db_url:
        p = cvirt.subprocess.run(["psql", "-At", cl.db_url, "-c", sql],
                                 capture_output=True, text=True, timeout=30,
                                 env=cl.env)
        assert p.returncode == 0, p.stderr
        return
    db = sqlite3.connect(os.path.join(cl.mdir, "cvirt.db"))
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_interrupted_backup_and_import_are_failed(cluster):
    cl = cluster
    cl.cli("vm", "create", "rec1", "--cpus", 1, "--memory", 64, "--disk", 8)
    uuid = cl.vm("rec1")["uuid"]
    cl.manager.stop()
    exec_sql(cl, "INSERT INTO backups (id, vm, vm_uuid, storage, state, "
             "created) VALUES ('20261124-000000-rec1', 'rec1', '%s', "
             "'local', 'running', 1)" % uuid)
    exec_sql(cl, "INSERT INTO images (name, storage, file, format, "
             "virtual_size, size_bytes, state, created) VALUES ('half', "
             "'local', 'half.qcow2', 'qcow2', 0, 0, 'importing', 1)")
    cl.start_manager()
    st, b = cl.http("GET", "/api/v1/backups/20261124-000000-rec1")
    assert st == 200 and b["state"] == "failed", b
    st, img = cl.http("GET", "/api/v1/images/half")
    assert st == 200 and img["state"] == "failed", img
    st, events = cl.http("GET", "/api/v1/events?limit=20")
    kinds = [e["kind"] for e in events]
    assert "backup.failed" in kinds and "image.failed" in kinds
    cvirt.wait_for(lambda: cl.http("GET", "/api/v1/hosts/h1")[1]["state"]
                   == "up", 30, "h1 reporting to the restarted manager")
    st, reply = cl.http("DELETE", "/api/v1/backups/20261124-000000-rec1")
    assert st == 200, reply
    st, reply = cl.http("DELETE", "/api/v1/images/half")
    assert st == 200, reply
    assert cl.http("GET", "/api/v1/images/half")[0] == 404
    cl.cli("vm", "delete", "rec1")
