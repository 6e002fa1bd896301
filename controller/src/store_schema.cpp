// store_schema.cpp — the store's schema as numbered migrations (see store.hpp
// and docs/adr/0004-store.md). Never edit a shipped one: add the next.
#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller::sql {

// Migration N brings the schema from version N-1 to N. Never edit a shipped one.
const char* const kMigrations[] = {
    // 1: events and jobs
    R"sql(
    CREATE TABLE events(
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id BLOB NOT NULL UNIQUE,
      type INTEGER NOT NULL,
      ts_ns INTEGER NOT NULL,
      job INTEGER NOT NULL,
      step INTEGER,
      task INTEGER,
      restart INTEGER NOT NULL DEFAULT 0,
      node TEXT,
      sender_uid INTEGER NOT NULL,
      attrs TEXT,
      received_ns INTEGER NOT NULL);
    CREATE INDEX events_by_job ON events(job, seq);
    CREATE TABLE jobs(
      job INTEGER PRIMARY KEY,
      uid INTEGER,
      user TEXT,
      state TEXT NOT NULL DEFAULT 'SUBMITTED',
      label TEXT,
      first_ns INTEGER NOT NULL,
      last_ns INTEGER NOT NULL,
      events INTEGER NOT NULL DEFAULT 0);
    )sql",
    // 2: explicit lifecycle: every state change with its time and reason;
    //    what slurmctld last said about the job (reconciliation).
    R"sql(
    CREATE TABLE transitions(
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      job INTEGER NOT NULL,
      from_state TEXT NOT NULL,
      to_state TEXT NOT NULL,
      reason TEXT NOT NULL,
      ts_ns INTEGER NOT NULL);
    CREATE INDEX transitions_by_job ON transitions(job, seq);
    ALTER TABLE jobs ADD COLUMN restart INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN slurm_state TEXT;
    )sql",
    // 3: liveness and usage instead of heartbeat rows (docs/adr/0016-store-for-months.md).
    //    steps: one row per (job, step, node) with its last sign of life and
    //    its newest cumulative CPU/RSS sample; usage: CPU- and node-seconds
    //    per job, node and interval (minutes, compacted into hours); jobs gain
    //    the account (from slurmctld) and study (--vigil-label) usage is
    //    queried by; events get an index by (job, type) so a decision that
    //    needs "the newest X of job J" reads a few index pages, however long
    //    the timeline. Old heartbeat rows are kept, and the steps table is
    //    filled from them.
    R"sql(
    CREATE TABLE steps(
      job INTEGER NOT NULL, step INTEGER NOT NULL, node TEXT NOT NULL,
      restart INTEGER NOT NULL DEFAULT 0,
      started_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, ended_ns INTEGER NOT NULL DEFAULT 0,
      interval_s INTEGER NOT NULL DEFAULT 0, heartbeats INTEGER NOT NULL DEFAULT 0,
      max_gap_ms INTEGER NOT NULL DEFAULT 0, cpu_s REAL NOT NULL DEFAULT 0, rss_bytes INTEGER NOT NULL DEFAULT 0,
      silent INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY(job, step, node)) WITHOUT ROWID;
    CREATE INDEX steps_open ON steps(job) WHERE ended_ns = 0;
    CREATE TABLE usage(
      job INTEGER NOT NULL, node TEXT NOT NULL, bucket_s INTEGER NOT NULL, width_s INTEGER NOT NULL,
      cpu_s REAL NOT NULL DEFAULT 0, node_s REAL NOT NULL DEFAULT 0, rss_max INTEGER NOT NULL DEFAULT 0,
      samples INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY(job, node, width_s, bucket_s)) WITHOUT ROWID;
    CREATE INDEX usage_by_time ON usage(bucket_s, job);
    ALTER TABLE jobs ADD COLUMN account TEXT;
    ALTER TABLE jobs ADD COLUMN study TEXT;
    UPDATE jobs SET study = label;
    CREATE INDEX events_by_job_type ON events(job, type, seq);
    INSERT INTO steps(job, step, node, restart, started_ns, last_ns, ended_ns, interval_s, heartbeats, silent)
      SELECT job, step, node, max(restart), min(ts_ns), max(ts_ns),
        CASE WHEN sum(type IN (6,7)) > 0 THEN max(CASE WHEN type IN (6,7) THEN ts_ns END) ELSE 0 END,
        coalesce(max(CASE WHEN type=8 THEN json_extract(attrs,'$.interval_s')
                          WHEN type IN (2,3) THEN json_extract(attrs,'$.options.heartbeat_s') END), 0),
        sum(type=8), sum(type IN (12,13)) > 0
      FROM events WHERE node IS NOT NULL AND step IS NOT NULL AND type IN (2,3,4,5,6,7,8,12,13)
      GROUP BY job, step, node HAVING sum(type IN (2,3,8)) > 0;
    )sql",
    // 4: job keys (docs/adr/0017-job-identity.md). `job` columns may now hold
    //    an archived key, ((incarnation + 1) << 32) | id, for an earlier job
    //    whose id Slurm gave out again; jobs record which incarnation of their
    //    id they are and slurmctld's submit time. Existing jobs are the first
    //    (and current) incarnation of their ids.
    R"sql(
    ALTER TABLE jobs ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN submit_s INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 5: the (job, type, seq) index without the numerous types nothing looks
    //    up by type (VIGIL_UNINDEXED_TYPES): one B-tree less per result row.
    "DROP INDEX events_by_job_type;"
    "CREATE INDEX events_by_job_type ON events(job, type, seq) WHERE type NOT IN (4,5,9,10,11,21);",
    // 6: the result dump is the record (docs/adr/0018-results-leave-the-store.md).
    //    jobs.result_seq: the newest stored result (startup finds the dumps to
    //    rebuild without reading timelines); jobs.dump_seq: the job's results
    //    up to here are durable in its dump and have left the store;
    //    jobs.results: how many it has had (the rows do not stay to be counted).
    //    usage_job_hour: each job's CPU- and node-seconds per hour over all its
    //    nodes, what "account A per hour over a month" reads (ADR 0016); jobs
    //    are found by account, user and study through indexes.
    R"sql(
    ALTER TABLE jobs ADD COLUMN result_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN dump_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN results INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET result_seq = coalesce((SELECT max(seq) FROM events e WHERE e.job = jobs.job AND e.type = 10), 0),
                    results = (SELECT count(*) FROM events e WHERE e.job = jobs.job AND e.type = 10);
    CREATE TABLE usage_job_hour(
      job INTEGER NOT NULL, hour_s INTEGER NOT NULL,
      cpu_s REAL NOT NULL DEFAULT 0, node_s REAL NOT NULL DEFAULT 0,
      PRIMARY KEY(job, hour_s)) WITHOUT ROWID;
    CREATE INDEX usage_job_hour_by_time ON usage_job_hour(hour_s);
    INSERT INTO usage_job_hour SELECT job, (bucket_s / 3600) * 3600, sum(cpu_s), sum(node_s) FROM usage GROUP BY 1, 2;
    CREATE INDEX jobs_by_account ON jobs(account) WHERE account IS NOT NULL;
    CREATE INDEX jobs_by_user ON jobs(user) WHERE user IS NOT NULL;
    CREATE INDEX jobs_by_study ON jobs(study) WHERE study IS NOT NULL;
    )sql",
    // 7: a pruned checkpoint's report (checkpoint) and checkpoint_verified
    //    events fold into its checkpoint_pruned event
    //    (docs/adr/0019-pruned-checkpoints-fold.md). One pass over the events.
    "DELETE FROM events WHERE type IN (11, 18) AND attrs IS NOT NULL"
    " AND coalesce(json_extract(attrs, '$.failed'), 0) = 0 AND EXISTS ("
    "  SELECT 1 FROM events p WHERE p.job = events.job AND p.type = 23 AND " VIGIL_UNINDEXED_TYPES
    "   AND json_extract(p.attrs, '$.path') = json_extract(events.attrs, '$.path')"
    "   AND json_extract(p.attrs, '$.step') = json_extract(events.attrs, '$.step')"
    "   AND (events.type = 11 OR json_extract(p.attrs, '$.sha256') = json_extract(events.attrs, '$.sha256')));",
    // 8: timelines of finished jobs leave the store after timeline_keep_days
    //    (docs/adr/0020-timeline-retention.md); the job row says when. The
    //    index finds the candidates, oldest first, without reading the others.
    //    The (job, type, seq) index's condition as a chain of <> instead of an
    //    IN list (store_sql.hpp: an IN list cost a temporary B-tree per insert).
    "ALTER TABLE jobs ADD COLUMN timeline_forgotten_ns INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX jobs_to_forget ON jobs(last_ns) WHERE timeline_forgotten_ns = 0;"
    "DROP INDEX events_by_job_type;"
    "CREATE INDEX events_by_job_type ON events(job, type, seq) WHERE " VIGIL_UNINDEXED_TYPES ";",
    // 9: the fence on a job's superseded attempts
    //    (docs/adr/0022-fencing-superseded-attempts.md); -1: never fenced.
    "ALTER TABLE jobs ADD COLUMN fence_restart INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE jobs ADD COLUMN fence_after_ns INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN fence_node TEXT NOT NULL DEFAULT '';",
};

const int kMigrationCount = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion, "one migration per schema version");

}  // namespace vigil::controller::sql
