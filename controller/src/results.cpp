// results.cpp — see results.hpp.
#include "results.hpp"

#include <cmath>
#include <limits>

namespace vigil::controller {
namespace {

Error bad(const std::string& m) { return make_error(Errc::malformed, "result: " + m); }

// A number as stored: a JSON number, or one of the three non-finite spellings.
bool read_number(const json& j, double& out) {
  if (j.is_number()) {
    out = j.get<double>();
    return true;
  }
  if (!j.is_string()) return false;
  const auto& s = j.get_ref<const std::string&>();
  if (s == "nan") out = std::numeric_limits<double>::quiet_NaN();
  else if (s == "inf") out = std::numeric_limits<double>::infinity();
  else if (s == "-inf") out = -std::numeric_limits<double>::infinity();
  else return false;
  return true;
}

void store_number(json& j) {
  if (!j.is_number_float()) return;
  const double d = j.get<double>();
  if (std::isnan(d)) j = "nan";
  else if (std::isinf(d)) j = d > 0 ? "inf" : "-inf";
}

}  // namespace

bool valid_result_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxResultName || s == "." || s == "..") return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return false;
  return true;
}

Status normalise_result_attrs(json& a) {
  if (!a.is_object()) return bad("attrs must be a map");
  const std::string kind = a.value("kind", std::string());
  if (kind != "scalar" && kind != "array") return bad("kind must be 'scalar' or 'array'");
  if (!a.contains("name") || !a["name"].is_string() || !valid_result_name(a["name"].get_ref<const std::string&>()))
    return bad("name must be 1..64 characters of [A-Za-z0-9_.-]");
  if (!a.contains("stage")) a["stage"] = "main";  // SDK v1 had no stages
  if (!a["stage"].is_string() || !valid_result_name(a["stage"].get_ref<const std::string&>()))
    return bad("stage must be 1..64 characters of [A-Za-z0-9_.-]");
  if (a.contains("units") && (!a["units"].is_string() || a["units"].get_ref<const std::string&>().size() > 32))
    return bad("units must be a string of at most 32 characters");
  if (!a.contains("step") || !a["step"].is_number_integer()) return bad("step must be an integer");
  double d = 0;
  if (!a.contains("sim_t") || !read_number(a["sim_t"], d)) return bad("sim_t must be a number");
  store_number(a["sim_t"]);
  if (kind == "scalar") {
    if (!a.contains("v") || !read_number(a["v"], d)) return bad("scalar needs a number 'v'");
    store_number(a["v"]);
    return ok_status();
  }
  if (!a.contains("dims") || !a["dims"].is_array() || a["dims"].empty() || a["dims"].size() > kMaxResultDims)
    return bad("array needs 'dims' with 1..4 extents");
  std::int64_t count = 1;
  for (const json& x : a["dims"]) {
    if (!x.is_number_integer() || x.get<std::int64_t>() < 1 || x.get<std::int64_t>() > kMaxArrayElements)
      return bad("array extents must be integers in [1, 65536]");
    count *= x.get<std::int64_t>();
    if (count > kMaxArrayElements) return bad("array has more than 65536 elements");
  }
  if (!a.contains("data") || !a["data"].is_array() || static_cast<std::int64_t>(a["data"].size()) != count)
    return bad("array 'data' must hold exactly the product of 'dims' numbers");
  for (json& x : a["data"]) {
    if (!read_number(x, d)) return bad("array 'data' must hold numbers only");
    store_number(x);
  }
  return ok_status();
}

Result<ResultValue> result_value(const Event& e, std::int64_t seq) {
  if (e.type != EventType::result) return bad("not a result event");
  const json& a = e.attrs;
  ResultValue r;
  r.job = e.job;
  r.seq = seq;
  r.wall_ns = e.ts_ns;
  r.restart = e.restart;
  r.task = e.task < 0 ? 0 : e.task;
  try {
    r.array = a.at("kind").get<std::string>() == "array";
    r.name = a.at("name").get<std::string>();
    r.stage = a.value("stage", std::string("main"));
    r.units = a.value("units", std::string());
    r.step = a.at("step").get<std::int64_t>();
    if (!read_number(a.at("sim_t"), r.sim_time)) return bad("sim_t");
    if (!valid_result_name(r.name) || !valid_result_name(r.stage)) return bad("bad name or stage");
    if (!r.array) {
      if (!read_number(a.at("v"), r.value)) return bad("v");
      return r;
    }
    for (const json& x : a.at("dims")) r.dims.push_back(x.get<std::int64_t>());
    r.data.reserve(a.at("data").size());
    for (const json& x : a.at("data")) {
      double d = 0;
      if (!read_number(x, d)) return bad("data");
      r.data.push_back(d);
    }
    return r;
  } catch (const json::exception& ex) {
    return bad(ex.what());
  }
}

}  // namespace vigil::controller
