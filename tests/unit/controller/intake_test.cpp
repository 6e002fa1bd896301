// Intake against a real munged: sessions, idempotent ingest, and every way a
// hostile or broken client can misbehave — each rejected with a reason, none
// able to stop intake for others.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <zmq.hpp>

#include "../../support/private_munged.hpp"
#include "intake.hpp"
#include "vigil/client.hpp"
#include "vigil/munge_auth.hpp"
#include "vigil/wire.hpp"

using namespace vigil;
using namespace vigil::controller;

namespace {

class IntakeTest : public ::testing::Test {
 protected:
  virtual int rate_limit() const { return 0; }
  virtual int max_sessions_per_uid() const { return 256; }
  virtual int max_root_sessions() const { return 100000; }
  void SetUp() override {
    char tmpl[] = "/tmp/vigil-intake-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto st = Store::open(dir_ + "/v.db");
    ASSERT_TRUE(st.ok()) << st.error().what();
    store_ = std::move(st).value();
    Config cfg;
    cfg.listen = "tcp://127.0.0.1:0";
    cfg.munge_socket = munged_.socket();
    cfg.max_events_per_s_per_session = rate_limit();
    cfg.max_sessions_per_uid = max_sessions_per_uid();
    cfg.max_root_sessions = max_root_sessions();
    cfg.database = dir_ + "/v.db";
    cfg.results_dir = dir_ + "/results";
    intake_ = std::make_unique<Intake>(cfg, *store_);
    auto ep = intake_->bind();
    ASSERT_TRUE(ep.ok()) << ep.error().what();
    endpoint_ = *ep;
    loop_ = std::thread([this] { intake_->run(stop_); });
  }
  void TearDown() override {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
    intake_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  ClientOptions opts() const {
    ClientOptions o;
    o.endpoint = endpoint_;
    o.munge_socket = munged_.socket();
    o.role = "plugin";
    return o;
  }

  // A raw DEALER for hand-made frames; returns the decoded answer.
  struct Raw {
    zmq::context_t ctx{1};
    zmq::socket_t s{ctx, zmq::socket_type::dealer};
    explicit Raw(const std::string& ep) {
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::rcvtimeo, 3000);
      s.connect(ep);
    }
    std::string ask(const std::string& frame) {
      s.send(zmq::buffer(frame), zmq::send_flags::none);
      zmq::message_t m;
      if (!s.recv(m)) return {};
      return m.to_string();
    }
  };

  static Errc error_code_of(const std::string& answer) {
    auto f = decode_frame(answer);
    if (!f || f->header.kind != FrameKind::error) return Errc::ok;
    return decode_error_body(f->body).code;
  }

  // HELLO by hand: returns (session id, key) on success.
  std::pair<std::uint64_t, std::unique_ptr<HmacKey>> hello(Raw& raw, const std::string& cred_payload_key_role = "plugin") {
    HelloPayload hp;
    hp.key = random_key();
    hp.role = cred_payload_key_role;
    auto cred = MungeAuth(munged_.socket()).encode(encode_hello_payload(hp));
    EXPECT_TRUE(cred.ok());
    auto ans = raw.ask(encode_frame(FrameKind::hello, 0, 1, cbor_encode(json{{"cred", *cred}}), nullptr));
    auto f = decode_frame(ans);
    EXPECT_TRUE(f.ok());
    EXPECT_EQ(f->header.kind, FrameKind::welcome);
    return {f->header.session, std::make_unique<HmacKey>(hp.key)};
  }

  static Event start_event(std::uint32_t job, std::int64_t uid) {
    Event e;
    e.id = new_event_id();
    e.type = EventType::step_start;
    e.ts_ns = 1;
    e.job = job;
    e.step = 0;
    e.node = "n1";
    e.attrs = {{"uid", uid}, {"user", "someone"}};
    return e;
  }

  void expect_still_serving() {
    Client c(opts());
    auto r = c.request({{"op", "status"}});
    ASSERT_TRUE(r.ok()) << "intake stopped serving: " << r.error().what();
  }

  vigil::testing::PrivateMunged munged_;
  std::string dir_, endpoint_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Intake> intake_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

}  // namespace

TEST_F(IntakeTest, StoresOnceAndAcksDuplicates) {
  Client c(opts());
  ASSERT_TRUE(c.connect().ok());
  Event e = start_event(100, 1001);
  auto a = c.send_batch({e});
  ASSERT_TRUE(a.ok()) << a.error().what();
  EXPECT_EQ(a->stored, 1u);
  auto b = c.send_batch({e});  // a replay from a spool
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->stored, 0u);
  EXPECT_EQ(b->duplicates, 1u);
  auto job = c.request({{"op", "job"}, {"job", 100}});
  ASSERT_TRUE(job.ok()) << job.error().what();
  EXPECT_EQ((*job)["uid"], 1001);
  EXPECT_EQ((*job)["timeline"].size(), 1u);
}

TEST_F(IntakeTest, ForgedTagRejected) {
  Raw raw(endpoint_);
  auto [sid, key] = hello(raw);
  HmacKey wrong(random_key());
  auto ans = raw.ask(encode_frame(FrameKind::batch, sid, 2, encode_batch({start_event(1, 0)}), &wrong));
  EXPECT_EQ(error_code_of(ans), Errc::bad_tag);
  EXPECT_EQ(store_->event_count(), 0);
  expect_still_serving();
}

TEST_F(IntakeTest, ReplayedFrameRejected) {
  Raw raw(endpoint_);
  auto [sid, key] = hello(raw);
  std::string frame = encode_frame(FrameKind::batch, sid, 2, encode_batch({start_event(1, 0)}), key.get());
  auto first = decode_frame(raw.ask(frame));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->header.kind, FrameKind::ack);
  EXPECT_EQ(error_code_of(raw.ask(frame)), Errc::replayed);
  EXPECT_EQ(store_->event_count(), 1);
}

TEST_F(IntakeTest, ReplayedCredentialRejected) {
  HelloPayload hp;
  hp.key = random_key();
  hp.role = "cli";
  auto cred = MungeAuth(munged_.socket()).encode(encode_hello_payload(hp));
  ASSERT_TRUE(cred.ok());
  const std::string frame = encode_frame(FrameKind::hello, 0, 1, cbor_encode(json{{"cred", *cred}}), nullptr);
  Raw raw(endpoint_);
  auto ok = decode_frame(raw.ask(frame));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->header.kind, FrameKind::welcome);
  Raw thief(endpoint_);
  EXPECT_EQ(error_code_of(thief.ask(frame)), Errc::replayed);
}

TEST_F(IntakeTest, ExpiredCredentialRejected) {
  HelloPayload hp;
  hp.key = random_key();
  hp.role = "cli";
  auto cred = MungeAuth(munged_.socket(), /*ttl_seconds=*/1).encode(encode_hello_payload(hp));
  ASSERT_TRUE(cred.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  Raw raw(endpoint_);
  EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::hello, 0, 1, cbor_encode(json{{"cred", *cred}}), nullptr))),
            Errc::expired);
}

TEST_F(IntakeTest, CredentialFromAnotherRealmRejected) {
  vigil::testing::PrivateMunged forger;  // a munged with a different key
  HelloPayload hp;
  hp.key = random_key();
  hp.role = "plugin";
  auto cred = MungeAuth(forger.socket()).encode(encode_hello_payload(hp));
  ASSERT_TRUE(cred.ok());
  Raw raw(endpoint_);
  EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::hello, 0, 1, cbor_encode(json{{"cred", *cred}}), nullptr))),
            Errc::unauthenticated);
  Raw raw2(endpoint_);
  EXPECT_EQ(error_code_of(raw2.ask(encode_frame(FrameKind::hello, 0, 1, cbor_encode(json{{"cred", "MUNGE:garbage:"}}), nullptr))),
            Errc::unauthenticated);
  expect_still_serving();
}

TEST_F(IntakeTest, MalformedFramesRejectedWithReasons) {
  Raw raw(endpoint_);
  EXPECT_EQ(error_code_of(raw.ask("not a frame at all, definitely longer than 32 bytes")), Errc::malformed);
  EXPECT_EQ(error_code_of(raw.ask("short")), Errc::truncated);
  std::string v2 = encode_frame(FrameKind::hello, 0, 1, "x", nullptr);
  v2[4] = 2;
  EXPECT_EQ(error_code_of(raw.ask(v2)), Errc::bad_version);
  EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::hello, 0, 1, "\xff\xff", nullptr))), Errc::malformed);
  HmacKey k(random_key());
  EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::batch, 12345, 1, "x", &k))), Errc::unknown_session);
  EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::ack, 0, 1, "x", &k))), Errc::bad_kind);  // servers send acks
  // Oversized: libzmq drops the connection (maxmsgsize); others are unaffected.
  {
    Raw big(endpoint_);
    big.s.send(zmq::buffer(std::string(kMaxFrame + 100, 'V')), zmq::send_flags::none);
  }
  expect_still_serving();
  auto status = Client(opts()).request({{"op", "status"}});
  ASSERT_TRUE(status.ok());
  EXPECT_GE((*status)["rejected"]["malformed"].get<int>(), 2);
  EXPECT_GE((*status)["rejected"]["truncated"].get<int>(), 1);
}

// HELLO bodies are decoded before anyone is authenticated. 100 KB of nested
// indefinite-length string headers made the previous CBOR reader recurse once
// per byte and overflow the intake thread's stack (vigild died of SIGSEGV).
TEST_F(IntakeTest, HostileHelloBodyIsRefusedNotFatal) {
  Raw raw(endpoint_);
  for (char c : {'\x7f', '\x5f', '\x81', '\xbf'}) {
    const std::string body(100000, c);
    EXPECT_EQ(error_code_of(raw.ask(encode_frame(FrameKind::hello, 0, 1, body, nullptr))), Errc::malformed);
  }
  expect_still_serving();
}

TEST_F(IntakeTest, UsersReportOnlyIntoTheirOwnJobs) {
  {
    Client root(opts());
    ASSERT_TRUE(root.send_batch({start_event(200, 65534), start_event(201, 1001)}).ok());
  }
  // A child process as `nobody` (uid 65534) gets its own MUNGE identity.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    ClientOptions o = opts();
    o.role = "sdk";
    Client c(o);
    auto ev = [](std::uint32_t job, EventType t) {
      Event e;
      e.id = new_event_id();
      e.type = t;
      e.ts_ns = 2;
      e.job = job;
      e.attrs = {{"kind", "scalar"}, {"name", "x"}, {"step", 1}, {"sim_t", 0.5}, {"v", 1.0}};
      return e;
    };
    Event bad_name = ev(200, EventType::result);
    bad_name.attrs["name"] = "../x";  // would escape its HDF5 group: refused, named
    auto a = c.send_batch({ev(200, EventType::result), ev(201, EventType::result), ev(200, EventType::task_exit),
                           ev(999, EventType::result), bad_name});
    if (a && (a->rejected.size() != 4 || a->rejected[3].second.find("result: name") == std::string::npos))
      _exit(13);
    std::string out = a ? std::to_string(a->stored) + " " + std::to_string(a->rejected.size()) : a.error().what();
    if (write(pipefd[1], out.data(), out.size()) < 0) _exit(11);
    auto other = c.request({{"op", "job"}, {"job", 201}});
    const char* verdict = other ? "READ" : (other.error().code == Errc::denied ? "DENIED" : "ERR");
    if (write(pipefd[1], " ", 1) < 0 || write(pipefd[1], verdict, std::strlen(verdict)) < 0) _exit(12);
    _exit(0);
  }
  close(pipefd[1]);
  char buf[256] = {};
  std::string got;
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << got;
  // own job's result stored; other user's job, a lifecycle event, an unknown job, a bad name: rejected
  EXPECT_EQ(got, "1 4 DENIED");
}

TEST_F(IntakeTest, NobodyButVigildReportsDetections) {
  Client root(opts());
  Event forged = start_event(300, 0);
  forged.type = EventType::node_lost;
  auto a = root.send_batch({start_event(300, 0), forged});
  ASSERT_TRUE(a.ok()) << a.error().what();
  EXPECT_EQ(a->stored, 1u);
  ASSERT_EQ(a->rejected.size(), 1u);
  EXPECT_EQ(a->rejected[0].first, 1u);
  EXPECT_NE(a->rejected[0].second.find("only vigild reports node_lost"), std::string::npos);
}

TEST_F(IntakeTest, SilentStepIsReportedOnItsTimeline) {
  Client root(opts());
  Event start = start_event(400, 1001);
  start.attrs["options"] = {{"heartbeat_s", 1}};
  ASSERT_TRUE(root.send_batch({start}).ok());
  // 2 missed 1 s heartbeats: the watch runs between loop turns (every <= 100 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(2400));
  auto job = root.request({{"op", "job"}, {"job", 400}});
  ASSERT_TRUE(job.ok()) << job.error().what();
  bool lost = false;
  for (const auto& e : (*job)["timeline"]) lost = lost || (e["type"] == "node_lost" && e["node"] == "n1");
  EXPECT_TRUE(lost) << job->dump(2);
  auto nodes = root.request({{"op", "nodes"}});
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_TRUE((*nodes)[0]["lost"].get<bool>());
}

class RateLimitedIntake : public IntakeTest {
 protected:
  int rate_limit() const override { return 100; }  // a burst of at most 200 events
};

TEST_F(RateLimitedIntake, AFloodingSenderIsSlowedOthersAreNot) {
  Client flood(opts());
  std::vector<Event> batch;
  for (int i = 0; i < 150; ++i) batch.push_back(start_event(500, 0));
  ASSERT_TRUE(flood.send_batch(batch).ok());  // within the 2 s burst allowance
  for (auto& e : batch) e.id = new_event_id();
  auto over = flood.send_batch(batch);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Errc::rate_limited);
  // another session still gets through, and the rejection is counted
  Client other(opts());
  auto ok = other.send_batch({start_event(501, 0)});
  ASSERT_TRUE(ok.ok()) << ok.error().what();
  auto status = other.request({{"op", "status"}});
  ASSERT_TRUE(status.ok());
  EXPECT_GE((*status)["rejected"]["rate_limited"].get<int>(), 1);
  EXPECT_EQ(store_->event_count(), 151);
}

// One relay per node, all root: the per-user cap must not apply to them, or a
// cluster larger than it re-authenticates every relay on every batch (found by
// scripts/bench scale: 1 000 relays, 875 new sessions a second).
class SmallSessionCaps : public IntakeTest {
 protected:
  int max_sessions_per_uid() const override { return 2; }
  int max_root_sessions() const override { return 6; }
};

TEST_F(SmallSessionCaps, RootSessionsHaveTheirOwnCap) {
  std::vector<std::unique_ptr<Client>> relays;
  for (int i = 0; i < 6; ++i) relays.push_back(std::make_unique<Client>(opts()));
  for (int round = 0; round < 2; ++round)
    for (std::size_t i = 0; i < relays.size(); ++i)
      ASSERT_TRUE(relays[i]->send_batch({start_event(600 + static_cast<std::uint32_t>(i), 0)}).ok());
  Client probe(opts());  // the 7th root session: over root's cap, the oldest goes
  auto status = probe.request({{"op", "status"}});
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE((*status)["rejected"].contains("unknown_session")) << status->dump();
  EXPECT_EQ((*status)["sessions"].get<int>(), 6);
  // The expired relay's next batch is refused once; its client says hello again.
  for (auto& r : relays) ASSERT_TRUE(r->send_batch({start_event(700, 0)}).ok());
  status = probe.request({{"op", "status"}});
  ASSERT_TRUE(status.ok());
  EXPECT_GE((*status)["rejected"]["unknown_session"].get<int>(), 1) << status->dump();
}
