// intake.cpp — see intake.hpp.
#include "intake.hpp"

#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "core.hpp"
#include "modules/registry.hpp"
#include "modules/results_module.hpp"
#include "queries.hpp"
#include "results.hpp"
#include "vigil/client.hpp"
#include "vigil/crypto.hpp"
#include "vigil/munge_auth.hpp"
#include "vigil/wire.hpp"

namespace vigil::controller {

namespace {

struct Session {
  std::unique_ptr<HmacKey> key;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string role;
  bool admin = false;
  std::uint64_t last_seq = 0;
  std::int64_t expires_ns = 0;
  double tokens = -1;            // event budget (token bucket); -1: not started
  std::int64_t tokens_ns = 0;    // when the budget was last refilled
};

}  // namespace

struct Intake::Impl {
  Core core;
  Config& cfg = core.cfg;
  Store& store = core.store;
  Clock& clock = core.clock;
  IntakeCounters& counters = core.counters;
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::router};
  MungeAuth munge;
  std::unordered_map<std::uint64_t, Session> sessions;
  std::unordered_map<uid_t, int> sessions_per_uid;
  std::int64_t started_ns;
  ModuleSet modules;

  struct PendingAck {
    std::string routing_id;
    std::uint64_t session;
    std::uint64_t seq;
    AckInfo ack;
    std::int64_t received_ns = 0;
  };
  std::vector<PendingAck> pending;
  Histogram ack_latency;
  mutable std::mutex snap_mu;
  IntakeSnapshot snap;
  std::uint64_t turn_frames = 0;
  double turn_oldest_wait_s = 0;
  std::mutex reload_mu;  // guards next_cfg (set by the signal thread)
  std::optional<Config> next_cfg;

  Impl(Config c, Store& s, Clock k, SlurmControl* sc)
      : core(std::move(c), s, std::move(k), sc), munge(core.cfg.munge_socket), started_ns(core.clock()) {
    register_queries();
    modules = load_modules(core);
  }

  IntakeSnapshot make_snapshot() const {
    IntakeSnapshot n;
    const std::int64_t now = clock();
    n.uptime_s = (now - started_ns) / 1'000'000'000;
    n.counters = {{"frames", counters.frames},
                  {"events_stored", counters.events_stored},
                  {"events_duplicate", counters.events_duplicate},
                  {"sessions_opened", counters.sessions_opened},
                  {"commits", counters.commits},
                  {"nodes_lost", counters.nodes_lost},
                  {"steps_silent", counters.steps_silent},
                  {"drains", counters.drains},
                  {"drain_failures", counters.drain_failures},
                  {"transitions", counters.transitions},
                  {"reconcile_rounds", counters.reconcile_rounds},
                  {"reconcile_errors", counters.reconcile_errors},
                  {"jobs_retired", counters.jobs_retired},
                  {"rules_fired", counters.rules_fired},
                  {"stops", counters.stops},
                  {"checkpoints_failed", counters.checkpoints_failed},
                  {"outputs_duplicate", counters.outputs_duplicate},
                  {"results_pruned", counters.results_pruned},
                  {"timelines_forgotten", counters.timelines_forgotten},
                  {"timeline_events_deleted", counters.timeline_events_deleted}};
    if (const DumpWriter* dumps = modules.results ? modules.results->writer() : nullptr) {
      const auto d = dumps->stats();
      n.counters["result_records"] = d.records;
      n.counters["result_refused"] = d.refused;
      n.counters["result_errors"] = d.errors;
      n.counters["result_rebuilds"] = d.rebuilds;
      n.counters["results_finalised"] = d.finalised;
      n.counters["result_syncs"] = d.syncs;
      n.counters["result_resumed"] = d.resumed;
      n.counters["result_lost"] = d.lost;
    }
    n.rejected = counters.rejected;
    n.sessions = sessions.size();
    n.watched_steps = core.monitor.watched();
    n.last_turn_frames = turn_frames;
    n.oldest_frame_wait_s = turn_oldest_wait_s;
    for (const auto& v : core.monitor.nodes())
      n.nodes.push_back({v.node, std::max(0.0, static_cast<double>(now - v.last_ns) / 1e9), v.steps, v.lost});
    n.ack_latency = ack_latency.copy();
    return n;
  }

  void publish() {
    IntakeSnapshot n = make_snapshot();
    std::lock_guard<std::mutex> g(snap_mu);
    snap = std::move(n);
  }

  void apply_reload() {
    std::lock_guard<std::mutex> g(reload_mu);
    if (!next_cfg) return;
    cfg.admin_group = next_cfg->admin_group;
    cfg.session_ttl_s = next_cfg->session_ttl_s;
    cfg.max_sessions_per_uid = next_cfg->max_sessions_per_uid;
    cfg.max_root_sessions = next_cfg->max_root_sessions;
    cfg.max_events_per_s_per_session = next_cfg->max_events_per_s_per_session;
    next_cfg.reset();
  }

  // The read side (queries.cpp) and `status`: requests the intake itself answers.
  void register_queries() {
    auto limit_of = [](const json& req) {
      return req.contains("limit") && req["limit"].is_number_unsigned()
                 ? static_cast<int>(std::min<std::uint64_t>(req["limit"].get<std::uint64_t>(), 10000))
                 : 1000;
    };
    core.host.on_request("status", [this](const Caller& who, const json&, Reply reply) {
      // The same numbers /metrics shows, plus who is asking.
      const IntakeSnapshot n = make_snapshot();
      json out = {{"version", "0.1.0"},           {"uptime_s", n.uptime_s},
                  {"events", store.event_count()}, {"sessions", n.sessions},
                  {"watched_steps", n.watched_steps}, {"you", {{"uid", who.uid}, {"admin", who.admin}}},
                  {"rejected", n.rejected},        {"modules", json::array()}};
      for (const auto& m : modules.all) out["modules"].push_back(m->name());
      for (const auto& [name, value] : n.counters) out[name] = value;
      reply(out);
    });
    core.host.on_request("jobs", [this, limit_of](const Caller& who, const json& req, Reply reply) {
      reply(query_jobs(store, who, limit_of(req)));
    });
    // "job": 1234 (or "1234"), the current job with that id, or "1234.2", the
    // id's third job (docs/adr/0017-job-identity.md).
    auto ref_of = [](const json& req) -> Result<std::optional<JobRef>> {
      if (!req.contains("job")) return std::optional<JobRef>();
      const json& j = req["job"];
      std::optional<JobRef> ref;
      if (j.is_number_unsigned() && j.get<std::uint64_t>() > 0 && j.get<std::uint64_t>() <= 0xffffffffu)
        ref = JobRef{j.get<std::uint32_t>(), std::nullopt};
      else if (j.is_string())
        ref = parse_job_ref(j.get<std::string>());
      if (!ref) return make_error(Errc::malformed, "job must be a job id (1234) or a job key (1234.1)");
      return ref;
    };
    // Answers `answer(key)` for the job `ref` names. A plain id is answered
    // from slurmctld's view as of at most a second ago (Core::after_slurm_view),
    // not one up to reconcile_interval_s old: a job accepted a moment ago is
    // known (PENDING, not "unknown"), a job Slurm has just ended shows ended,
    // and an id Slurm gave to a new job means the new job (ADR 0017).
    auto with_job = [this](const JobRef& ref, std::function<void(Result<JobKey>)> answer) {
      auto resolved = [this, ref]() -> Result<JobKey> {
        if (auto key = store.resolve(ref)) return *key;
        return make_error(Errc::denied, "job " + std::to_string(ref.job) +
                                            (ref.incarnation ? "." + std::to_string(*ref.incarnation) : "") +
                                            " is unknown");
      };
      if (!ref.incarnation) {
        // A job vigild does not know, or whose job ended, may have been
        // submitted after the last round: ask slurmctld now.
        auto known = store.known_job(ref.job);
        return core.after_slurm_view([resolved, answer] { answer(resolved()); }, !known || known->terminal);
      }
      answer(resolved());
    };
    core.host.on_request("job", [this, limit_of, ref_of, with_job](const Caller& who, const json& req, Reply reply) {
      auto ref = ref_of(req);
      if (!ref) return reply(ref.error());
      if (!*ref) return reply(make_error(Errc::malformed, "job request needs 'job'"));
      with_job(**ref, [this, who, limit = limit_of(req), reply](Result<JobKey> key) {
        if (!key) return reply(key.error());
        reply(query_job(store, who, *key, limit));
      });
    });
    core.host.on_request("events", [this, limit_of, ref_of, with_job](const Caller& who, const json& req, Reply reply) {
      auto ref = ref_of(req);
      if (!ref) return reply(ref.error());
      const std::int64_t after =
          req.contains("after") && req["after"].is_number_integer() ? req["after"].get<std::int64_t>() : 0;
      if (!*ref) return reply(query_events(store, who, std::nullopt, after, limit_of(req)));
      with_job(**ref, [this, who, after, limit = limit_of(req), reply](Result<JobKey> key) {
        if (!key) return reply(key.error());
        reply(query_events(store, who, *key, after, limit));
      });
    });
  }

  void reject(const std::string& reason) { counters.rejected[reason]++; }

  void send(const std::string& rid, const std::string& frame) {
    try {
      // ROUTER drops (never blocks on) a frame for a peer that is gone or full.
      sock.send(zmq::buffer(rid), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      sock.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::debug("send to client failed: {}", e.what());
    }
  }

  void send_error(const std::string& rid, std::uint64_t seq, const Error& err) {
    reject(errc_name(err.code));
    send(rid, encode_frame(FrameKind::error, 0, seq, encode_error_body(err.code, err.message), nullptr));
  }

  void on_hello(const std::string& rid, const FrameView& f) {
    auto body = cbor_decode(f.body);
    if (!body || !body->is_object() || !body->contains("cred") || !(*body)["cred"].is_string())
      return send_error(rid, f.header.seq, make_error(Errc::malformed, "hello body must be {cred: string}"));
    auto id = munge.decode((*body)["cred"].get_ref<const std::string&>());
    if (!id) {
      spdlog::warn("hello rejected: {}", id.error().what());
      return send_error(rid, f.header.seq, id.error());
    }
    auto hp = decode_hello_payload(id->payload);
    if (!hp) return send_error(rid, f.header.seq, hp.error());
    const int cap = id->uid == 0 ? cfg.max_root_sessions : cfg.max_sessions_per_uid;
    if (sessions_per_uid[id->uid] >= cap) expire_oldest(id->uid);
    std::uint64_t sid = 0;
    while (sid == 0 || sessions.count(sid)) random_bytes(&sid, sizeof sid);
    Session s;
    s.key = std::make_unique<HmacKey>(hp->key);
    s.uid = id->uid;
    s.gid = id->gid;
    s.role = hp->role;
    s.admin = is_admin(id->uid, id->gid, cfg.admin_group);
    s.expires_ns = clock() + static_cast<std::int64_t>(cfg.session_ttl_s) * 1'000'000'000;
    const std::string welcome = cbor_encode(json{{"ttl_s", cfg.session_ttl_s}, {"max_body", kMaxBody}});
    send(rid, encode_frame(FrameKind::welcome, sid, f.header.seq, welcome, s.key.get()));
    spdlog::debug("session {:016x} opened: uid={} role={} host={} pid={}", sid, id->uid, hp->role, hp->host, hp->pid);
    sessions.emplace(sid, std::move(s));
    sessions_per_uid[id->uid]++;
    counters.sessions_opened++;
  }

  void expire_oldest(uid_t uid) {
    auto victim = sessions.end();
    for (auto it = sessions.begin(); it != sessions.end(); ++it)
      if (it->second.uid == uid && (victim == sessions.end() || it->second.expires_ns < victim->second.expires_ns))
        victim = it;
    if (victim != sessions.end()) drop_session(victim);
  }

  void drop_session(std::unordered_map<std::uint64_t, Session>::iterator it) {
    if (--sessions_per_uid[it->second.uid] <= 0) sessions_per_uid.erase(it->second.uid);
    sessions.erase(it);
  }

  // Finds the session and checks tag, expiry and sequence; null + error sent on failure.
  Session* authenticate(const std::string& rid, const FrameView& f) {
    auto it = sessions.find(f.header.session);
    if (it == sessions.end()) {
      send_error(rid, f.header.seq, make_error(Errc::unknown_session, "unknown session; send hello again"));
      return nullptr;
    }
    Session& s = it->second;
    if (auto v = verify_frame(f, *s.key); !v) {
      send_error(rid, f.header.seq, v.error());
      return nullptr;
    }
    if (clock() > s.expires_ns) {
      drop_session(it);
      send_error(rid, f.header.seq, make_error(Errc::expired, "session expired; send hello again"));
      return nullptr;
    }
    if (f.header.seq <= s.last_seq) {
      send_error(rid, f.header.seq, make_error(Errc::replayed, "frame sequence " + std::to_string(f.header.seq) +
                                                                   " already seen in this session"));
      return nullptr;
    }
    s.last_seq = f.header.seq;
    return &s;
  }

  // Who may report what: Slurm's own processes (root in slurmstepd) report any
  // job's lifecycle; a user's SDK reports results/checkpoints for that user's
  // own jobs only. docs/adr/0005-authorisation.md.
  std::optional<Error> authorise(const Session& s, const Event& e) {
    if (is_controller_event(e.type))
      return make_error(Errc::denied, std::string("only vigild reports ") + event_type_name(e.type));
    if (s.uid == 0) return std::nullopt;
    if (e.type != EventType::result && e.type != EventType::checkpoint && e.type != EventType::output)
      return make_error(Errc::denied, std::string("only Slurm's processes may report ") + event_type_name(e.type));
    auto owner = store.job_owner(e.job);
    if (!owner) return make_error(Errc::denied, "job " + std::to_string(e.job) + " is unknown to vigild");
    if (*owner != s.uid) return make_error(Errc::denied, "job " + std::to_string(e.job) + " belongs to another user");
    return std::nullopt;
  }

  // Token bucket per session: `rate` events/s, bursts up to 2 s worth.
  bool within_budget(Session& s, std::size_t events) {
    const int rate = cfg.max_events_per_s_per_session;
    if (rate <= 0) return true;
    const std::int64_t now = clock();
    const double cap = 2.0 * rate;
    if (s.tokens < 0) s.tokens = cap;
    else s.tokens = std::min(cap, s.tokens + static_cast<double>(now - s.tokens_ns) / 1e9 * rate);
    s.tokens_ns = now;
    if (s.tokens < static_cast<double>(events)) return false;
    s.tokens -= static_cast<double>(events);
    return true;
  }

  void on_batch(const std::string& rid, const FrameView& f) {
    Session* s = authenticate(rid, f);
    if (!s) return;
    auto batch = decode_batch(f.body);
    if (!batch) return send_error(rid, f.header.seq, batch.error());
    if (!within_budget(*s, batch->events.size() + batch->rejected.size()))
      return send_error(rid, f.header.seq,
                        make_error(Errc::rate_limited, "over " + std::to_string(cfg.max_events_per_s_per_session) +
                                                           " events/s for this session; resend later"));
    if (!core.in_txn) {
      if (auto b = store.begin(); !b) return send_error(rid, f.header.seq, b.error());
      core.in_txn = true;
    }
    PendingAck pa{rid, f.header.session, f.header.seq, {}, clock()};
    for (auto& [i, err] : batch->rejected) {
      reject(errc_name(err.code));
      pa.ack.rejected.emplace_back(i, err.what());
    }
    const std::int64_t now = clock();
    std::size_t index = 0;
    for (Event& e : batch->events) {
      while (std::any_of(batch->rejected.begin(), batch->rejected.end(), [&](auto& r) { return r.first == index; }))
        ++index;  // keep indices aligned with the sender's batch
      std::optional<Error> refused = authorise(*s, e);
      if (!refused && e.type == EventType::result)
        if (auto bad = normalise_result_attrs(e.attrs); !bad) refused = bad.error();
      if (!refused) refused = core.host.validate(e, s->uid, now);
      if (refused) {
        reject(errc_name(refused->code));
        pa.ack.rejected.emplace_back(index++, refused->what());
        continue;
      }
      if (core.host.absorbs(e.type)) {  // kept by the modules, not as a row (heartbeats)
        pa.ack.stored++;
        core.dispatch(e, 0, now);
        ++index;
        continue;
      }
      auto r = store.insert(e, s->uid, now);
      if (!r) {
        // A store failure (disk full, I/O error) fails the whole group: nobody is
        // acked, everybody resends. Losing nothing beats partial progress.
        spdlog::error("store insert failed: {}", r.error().what());
        abort_group(r.error());
        return send_error(rid, f.header.seq, r.error());
      }
      if (*r == InsertOutcome::stored) {
        pa.ack.stored++;
        core.dispatch(e, store.last_insert_seq(), now);
      } else {
        pa.ack.duplicates++;
      }
      ++index;
    }
    if (s->uid == 0 && s->role == "plugin") pa.ack.commands = core.commands.take_for(batch->events, now);
    pending.push_back(std::move(pa));
  }

  void abort_group(const Error& err) {
    store.rollback();
    core.in_txn = false;
    core.host.aborted();
    for (auto& p : pending) send_error(p.routing_id, p.seq, err);
    pending.clear();
  }

  // Group commit: one transaction for everything drained this turn, then acks.
  void flush() {
    if (!core.in_txn) return;
    if (auto p = core.host.precommit(); !p) {
      spdlog::error("commit failed: {}", p.error().what());
      abort_group(p.error());
      return;
    }
    if (auto c = store.commit(); !c) {
      spdlog::error("commit failed: {}", c.error().what());
      abort_group(c.error());
      return;
    }
    core.in_txn = false;
    counters.commits++;
    core.host.committed();
    const std::int64_t acked = clock();
    turn_oldest_wait_s = 0;
    for (auto& p : pending) {
      const double wait = static_cast<double>(acked - p.received_ns) / 1e9;
      ack_latency.observe(wait);
      turn_oldest_wait_s = std::max(turn_oldest_wait_s, wait);
      counters.events_stored += p.ack.stored;
      counters.events_duplicate += p.ack.duplicates;
      auto it = sessions.find(p.session);
      if (it == sessions.end()) continue;
      send(p.routing_id, encode_frame(FrameKind::ack, p.session, p.seq, encode_ack(p.ack), it->second.key.get()));
    }
    pending.clear();
  }

  void on_request(const std::string& rid, const FrameView& f) {
    Session* s = authenticate(rid, f);
    if (!s) return;
    flush();  // answer from committed state, including this turn's events
    auto req = cbor_decode(f.body);
    if (!req || !req->is_object() || !req->contains("op") || !(*req)["op"].is_string()) {
      reject("malformed");
      const std::string body = encode_reply_error(Errc::malformed, "request must be {op: string, ...}");
      return send(rid, encode_frame(FrameKind::reply, f.header.session, f.header.seq, body, s->key.get()));
    }
    const std::string op = (*req)["op"].get<std::string>();
    // The reply may come later (restart_from): the session is looked up then.
    Reply reply = [this, rid, session = f.header.session, seq = f.header.seq](Result<json> r) {
      std::string body;
      if (r) {
        body = encode_reply_ok(*r);
      } else {
        if (r.error().code == Errc::denied) reject("denied");
        body = encode_reply_error(r.error().code, r.error().message);
      }
      auto it = sessions.find(session);
      if (it != sessions.end()) send(rid, encode_frame(FrameKind::reply, session, seq, body, it->second.key.get()));
    };
    if (!core.host.request(op, Caller{s->uid, s->admin}, *req, reply))
      reply(make_error(Errc::bad_kind, "unknown op '" + op + "'"));
  }

  void handle(const std::string& rid, const zmq::message_t& msg) {
    counters.frames++;
    auto f = decode_frame(msg.to_string_view());
    if (!f) return send_error(rid, 0, f.error());
    switch (f->header.kind) {
      case FrameKind::hello: return on_hello(rid, *f);
      case FrameKind::batch: return on_batch(rid, *f);
      case FrameKind::request: return on_request(rid, *f);
      default:
        return send_error(rid, f->header.seq, make_error(Errc::bad_kind, std::string("clients may not send ") +
                                                                               frame_kind_name(f->header.kind)));
    }
  }

  // Between turns: the modules' timers, then the digests the worker finished.
  void tick() {
    const std::int64_t now = clock();
    core.host.tick(now);
    for (DigestWorker::Done& d : core.digests.take_done()) core.host.digest(d, now);
  }
};

Intake::Intake(Config cfg, Store& store, Clock clock, SlurmControl* slurm)
    : p_(std::make_unique<Impl>(std::move(cfg), store, std::move(clock), slurm)) {
  p_->sock.set(zmq::sockopt::linger, 0);
  p_->sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxFrame));  // oversized: dropped by libzmq
  p_->sock.set(zmq::sockopt::router_mandatory, 0);
  p_->sock.set(zmq::sockopt::sndhwm, 10000);
  p_->sock.set(zmq::sockopt::rcvhwm, 10000);
}

Intake::~Intake() = default;

Result<std::string> Intake::bind() {
  try {
    p_->sock.bind(p_->cfg.listen);
    return p_->sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return make_error(Errc::io, "cannot listen on " + p_->cfg.listen + ": " + e.what());
  }
}

void Intake::run(const std::atomic<bool>& stop) {
  p_->modules.start();
  // Up to 4096 frames per turn: enough to amortise one fsync over many senders,
  // small enough that a turn stays well under the 50 ms ack budget.
  constexpr int kMaxPerTurn = 4096;
  while (!stop.load(std::memory_order_relaxed)) {
    p_->apply_reload();
    zmq::pollitem_t item{static_cast<void*>(p_->sock), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      int n = 0;
      for (; n < kMaxPerTurn; ++n) {
        zmq::message_t rid, msg;
        if (!p_->sock.recv(rid, zmq::recv_flags::dontwait)) break;
        if (!rid.more()) continue;
        (void)p_->sock.recv(msg, zmq::recv_flags::dontwait);
        if (msg.more()) {  // protocol v1 frames are single-part: drain and reject
          zmq::message_t extra;
          while (p_->sock.recv(extra, zmq::recv_flags::dontwait) && extra.more()) {
          }
          p_->send_error(rid.to_string(), 0, make_error(Errc::malformed, "multi-part message"));
          continue;
        }
        p_->handle(rid.to_string(), msg);
      }
      p_->turn_frames = static_cast<std::uint64_t>(n);
      p_->flush();
      p_->tick();
      p_->publish();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("intake socket error: {}", e.what());
    }
  }
  p_->flush();
  p_->modules.stop();
}

void Intake::reconfigure(const Config& cfg) {
  std::lock_guard<std::mutex> g(p_->reload_mu);
  p_->next_cfg = cfg;  // applied by the intake thread between turns
}

const IntakeCounters& Intake::counters() const { return p_->core.counters; }

IntakeSnapshot Intake::snapshot() const {
  std::lock_guard<std::mutex> g(p_->snap_mu);
  return p_->snap;
}

}  // namespace vigil::controller
