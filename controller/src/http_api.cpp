// http_api.cpp — see http_api.hpp. Kept in its own translation unit: cpp-httplib
// is a large header.
#include "http_api.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <thread>

#include "queries.hpp"
#include "vigil/munge_auth.hpp"

namespace vigil::controller {

struct HttpApi::Impl {
  Config cfg;
  const Intake& intake;
  httplib::Server server;
  std::thread thread;
  std::mutex store_mu;  // the read-only connection is used by one handler at a time
  std::unique_ptr<Store> store;
  MungeAuth munge;

  Impl(const Config& c, const Intake& i) : cfg(c), intake(i), munge(c.munge_socket) {}

  static void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", "application/json");
  }
  static void send_error(httplib::Response& res, int status, Errc code, const std::string& msg) {
    send_json(res, status, {{"error", errc_name(code)}, {"message", msg}});
  }

  // The caller, from `Authorization: MUNGE <cred>`; answers 401 itself if absent/bad.
  std::optional<Caller> authenticate(const httplib::Request& req, httplib::Response& res) {
    const std::string h = req.get_header_value("Authorization");
    if (h.rfind("MUNGE ", 0) != 0) {
      send_error(res, 401, Errc::unauthenticated, "send 'Authorization: MUNGE <credential>' (e.g. from `munge -n`)");
      return std::nullopt;
    }
    auto id = munge.decode(h.substr(6));
    if (!id) {
      send_error(res, 401, id.error().code, id.error().message);
      return std::nullopt;
    }
    return Caller{id->uid, is_admin(id->uid, id->gid, cfg.admin_group)};
  }

  void answer(httplib::Response& res, Result<json> r) {
    if (r) return send_json(res, 200, *r);
    const int status = r.error().code == Errc::denied ? 403 : r.error().code == Errc::malformed ? 400 : 500;
    send_error(res, status, r.error().code, r.error().message);
  }

  Store* db(httplib::Response& res) {
    if (!store) {
      auto s = Store::open(cfg.database, /*read_only=*/true);
      if (!s) {
        send_error(res, 503, s.error().code, s.error().message);
        return nullptr;
      }
      store = std::move(s).value();
    }
    return store.get();
  }

  void routes() {
    server.Get("/v1/health", [this](const httplib::Request&, httplib::Response& res) {
      auto s = intake.snapshot();
      send_json(res, 200, {{"status", "ok"}, {"uptime_s", s.uptime_s}, {"sessions", s.sessions},
                           {"watched_steps", s.watched_steps}});
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      std::map<std::string, std::int64_t> states;
      {
        std::lock_guard<std::mutex> g(store_mu);
        if (Store* st = db(res)) states = st->jobs_by_state();
        else return;
      }
      res.set_content(render_prometheus(intake.snapshot(), states), "text/plain; version=0.0.4");
    });
    server.Get("/v1/jobs", [this](const httplib::Request& req, httplib::Response& res) {
      auto who = authenticate(req, res);
      if (!who) return;
      std::lock_guard<std::mutex> g(store_mu);
      if (Store* st = db(res)) answer(res, query_jobs(*st, *who, 1000));
    });
    // /v1/jobs/1234 (the current job with that id) or /v1/jobs/1234.1 (ADR 0017).
    server.Get(R"(/v1/jobs/(\d{1,10}(?:\.\d{1,10})?))", [this](const httplib::Request& req, httplib::Response& res) {
      auto who = authenticate(req, res);
      if (!who) return;
      auto ref = parse_job_ref(req.matches[1].str());
      if (!ref) return send_error(res, 400, Errc::malformed, "job id out of range");
      std::lock_guard<std::mutex> g(store_mu);
      Store* st = db(res);
      if (!st) return;
      auto key = st->resolve(*ref);
      if (!key) return send_error(res, 403, Errc::denied, "job " + req.matches[1].str() + " is unknown");
      answer(res, query_job(*st, *who, *key, 100000));
    });
    server.Get("/v1/nodes", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authenticate(req, res)) return;
      json arr = json::array();
      for (const auto& n : intake.snapshot().nodes)
        arr.push_back({{"node", n.node}, {"steps", n.steps}, {"heartbeat_age_s", n.heartbeat_age_s}, {"lost", n.lost}});
      send_json(res, 200, arr);
    });
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty()) send_error(res, res.status, Errc::bad_kind, "no such endpoint");
    });
  }
};

HttpApi::HttpApi(const Config& cfg, const Intake& intake) : p_(std::make_unique<Impl>(cfg, intake)) {
  p_->server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  p_->server.set_read_timeout(5, 0);
  p_->server.set_write_timeout(5, 0);
  p_->server.set_payload_max_length(64 * 1024);
  p_->routes();
}

HttpApi::~HttpApi() { stop(); }

Result<int> HttpApi::start() {
  const std::string& l = p_->cfg.http_listen;
  const auto colon = l.rfind(':');
  const std::string host = l.substr(0, colon);
  const int port = std::stoi(l.substr(colon + 1));
  const int bound = port == 0 ? p_->server.bind_to_any_port(host) : (p_->server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return make_error(Errc::io, "cannot listen for HTTP on " + l);
  p_->thread = std::thread([this] { p_->server.listen_after_bind(); });
  return bound;
}

void HttpApi::stop() {
  if (p_->thread.joinable()) {
    p_->server.stop();
    p_->thread.join();
  }
}

}  // namespace vigil::controller
