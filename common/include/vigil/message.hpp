// message.hpp — Vigil wire protocol v1: frame bodies.
//
// Bodies are CBOR (RFC 8949) via nlohmann-json, decoded strictly: bounded nesting,
// no tags, no duplicate keys, every field type-checked. An event is the unit of
// everything the plugin and SDK report; each carries a 16-byte random id chosen
// where it is created, so a replay (spool, retry, reconnect) has no second effect
// in vigild's store. Field names are short because events are small and many.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/result.hpp"

namespace vigil {

using json = nlohmann::json;

inline constexpr int kMaxCborDepth = 8;
inline constexpr std::size_t kMaxEventsPerBatch = 10000;
inline constexpr std::size_t kMaxNodeName = 64;
inline constexpr std::uint32_t kNoStep = 0xffffffffu;

// Strict CBOR -> json. Never throws; never recurses deeper than kMaxCborDepth.
Result<json> cbor_decode(std::string_view bytes, int max_depth = kMaxCborDepth);
std::string cbor_encode(const json& j);

enum class EventType : std::uint16_t {
  submit = 1,            // sbatch/srun: intent, requested resources, options
  job_start = 2,         // first step of the job on its batch host
  step_start = 3,        // per node: a step began there, with the hardware it got
  task_start = 4,        // per task
  task_exit = 5,         // per task: exit code or signal
  step_end = 6,          // per node
  job_end = 7,           // from the batch step / reconciliation
  heartbeat = 8,         // per node per step: liveness + cheap samples
  checkpoint_signal = 9, // a checkpoint signal was delivered to tasks
  result = 10,           // SDK: scalar or array value
  checkpoint = 11,       // SDK: a checkpoint was written
};
inline constexpr std::uint16_t kMaxEventType = 11;
const char* event_type_name(EventType t) noexcept;
Result<EventType> event_type_from_name(std::string_view name);

using EventId = std::array<std::uint8_t, 16>;
EventId new_event_id();
std::string event_id_hex(const EventId& id);

struct Event {
  EventId id{};
  EventType type = EventType::heartbeat;
  std::int64_t ts_ns = 0;          // wall clock at the source, ns since the epoch
  std::uint32_t job = 0;           // Slurm job id
  std::uint32_t step = kNoStep;    // Slurm step id (batch/extern use Slurm's values)
  std::int32_t task = -1;          // global task id, -1 when not task-scoped
  std::uint32_t restart = 0;       // S_SLURM_RESTART_COUNT
  std::string node;                // Slurm node name
  json attrs = json::object();     // type-specific fields (small map)
};

json event_to_json(const Event& e);                   // CBOR-ready map
std::string encode_event(const Event& e);             // CBOR, same map, no DOM
Result<Event> event_from_json(const json& j);         // strict validation
std::string encode_batch(const std::vector<Event>& events);
// Decodes a batch; a structurally broken body fails whole, while a single bad
// event is reported through `rejected` (index, reason) and the rest are kept.
struct DecodedBatch {
  std::vector<Event> events;
  std::vector<std::pair<std::size_t, Error>> rejected;
};
Result<DecodedBatch> decode_batch(std::string_view body);

// The payload sealed inside the MUNGE credential of a HELLO.
struct HelloPayload {
  std::array<std::uint8_t, 32> key{};
  std::string role;   // "plugin" | "sdk" | "cli" | "bench"
  std::string host;
  std::int64_t pid = 0;
};
std::string encode_hello_payload(const HelloPayload& h);
Result<HelloPayload> decode_hello_payload(std::string_view bytes);

// Small bodies: build and parse helpers (strict on parse).
std::string encode_error_body(Errc code, std::string_view message);
Error decode_error_body(std::string_view body);

}  // namespace vigil
