// fuzz_decode — every decoder a hostile peer can reach, from raw bytes.
// Invariant: no crash, no hang, no sanitizer report; valid frames re-encode.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vigil/client.hpp"
#include "vigil/message.hpp"
#include "vigil/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  static const vigil::HmacKey key(vigil::KeyBytes{});
  if (auto f = vigil::decode_frame(in)) {
    (void)vigil::verify_frame(*f, key);
    (void)vigil::decode_batch(f->body);
    (void)vigil::decode_hello_payload(f->body);
    (void)vigil::decode_ack(f->body);
    (void)vigil::decode_error_body(f->body);
  }
  // Bodies are also fuzzed directly, without needing a valid header.
  if (auto b = vigil::decode_batch(in)) {
    // Whatever decodes must survive a re-encode/decode round trip.
    auto again = vigil::decode_batch(vigil::encode_batch(b->events));
    if (!again || again->events.size() != b->events.size()) __builtin_trap();
  }
  (void)vigil::decode_hello_payload(in);
  (void)vigil::decode_ack(in);
  return 0;
}
