"""vigild SIGKILLed at random points during a burst from many senders: after the
restart every acknowledged event is stored exactly once; a bad config reload
keeps the old config; SIGTERM stops cleanly."""
import random
import sqlite3
import subprocess
import time

from vigil_cluster import BUILD, vigil, wait_for

NODES = 1
LOADGEN = BUILD / "bench" / "vigil_loadgen"


def test_sigkill_during_a_burst_loses_no_acknowledged_event(cluster, vigild):
    acked_file = cluster.dir / "acked.txt"
    gen = subprocess.Popen([str(LOADGEN), "--endpoint", cluster.endpoint, "--munge-socket", cluster.munge_socket,
                            "--senders", "6", "--batch", "50", "--seconds", "12", "--acked-file", str(acked_file)],
                           stdout=subprocess.PIPE, text=True)
    rng = random.Random()
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 2.5))
        vigild.kill()          # SIGKILL: no chance to flush anything
        vigild.start()
    out, _ = gen.communicate(timeout=120)
    assert gen.returncode == 0, out
    acked = acked_file.read_text().split()
    assert len(acked) > 1000
    db = sqlite3.connect(f"file:{vigild.db}?mode=ro", uri=True)
    stored = [row[0].hex() for row in db.execute("SELECT id FROM events WHERE job >= 900000")]
    assert len(stored) == len(set(stored)), "an event id is stored twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    # events committed just before a kill whose ack was lost were re-sent and
    # recognised as duplicates: nothing is stored that the generator did not send
    assert len(stored) <= len(acked) + 6 * 50 * 3


def test_bad_reload_keeps_the_old_config(cluster, vigild):
    good = vigild.config.read_text()
    subprocess.run(["groupadd", "-f", "vigil-reload-test"], check=True)
    subprocess.run(["usermod", "-aG", "vigil-reload-test", "vigil-alice"], check=True)
    try:
        vigild.config.write_text(good + "no_such_key: 1\n")
        vigild.proc.send_signal(1)  # SIGHUP
        wait_for(lambda: "reload rejected, keeping the old config" in vigild.log.read_text(), what="rejected reload")
        assert "unknown key 'no_such_key'" in vigild.log.read_text()
        assert vigil(cluster, "status")["you"]["admin"] is True  # still serving
        assert vigil(cluster, "status", user="vigil-alice")["you"]["admin"] is False
        # a good reload applies: alice's group becomes the admin group
        vigild.config.write_text(good + "admin_group: vigil-reload-test\n")
        vigild.proc.send_signal(1)
        wait_for(lambda: "config reloaded" in vigild.log.read_text(), what="reload")
        wait_for(lambda: vigil(cluster, "status", user="vigil-alice")["you"]["admin"] is True,
                 what="alice is admin after the reload")
    finally:
        vigild.config.write_text(good)
        subprocess.run(["gpasswd", "-d", "vigil-alice", "vigil-reload-test"], capture_output=True)


def test_sigterm_stops_cleanly(cluster, vigild):
    assert vigild.stop() == 0
    assert "vigild stopped" in vigild.log.read_text()
    vigild.start()
