// crypto.cpp — OpenSSL-backed primitives (see crypto.hpp).
#include "vigil/crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vigil {
namespace {

[[noreturn]] void crypto_abort(const char* what) {
  std::fprintf(stderr, "vigil: OpenSSL failure in %s\n", what);
  std::abort();  // a broken libcrypto is not a condition we can run through
}

// One scratch digest context per thread: copying a precomputed state into it
// avoids an allocation per tag.
EVP_MD_CTX* scratch() {
  thread_local struct Holder {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Holder() { EVP_MD_CTX_free(ctx); }
  } h;
  if (h.ctx == nullptr) crypto_abort("EVP_MD_CTX_new");
  return h.ctx;
}

}  // namespace

void random_bytes(void* out, std::size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(n)) != 1)
    crypto_abort("RAND_bytes");
}

KeyBytes random_key() {
  KeyBytes k;
  random_bytes(k.data(), k.size());
  return k;
}

FileDigest sha256_file(const std::string& path) {
  FileDigest out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    out.error = path + ": " + std::strerror(errno);
    return out;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    out.error = path + ": not a regular file";
    return out;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) crypto_abort("EVP_DigestInit_ex");
  std::vector<unsigned char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.error = path + ": " + std::strerror(errno);
      ::close(fd);
      return out;
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
    out.bytes += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    out.sha256 += hex[md[i] >> 4];
    out.sha256 += hex[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    crypto_abort("EVP_Digest");
  static const char* hex = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  return out;
}

struct HmacKey::State {
  EVP_MD_CTX* inner = nullptr;  // SHA-256 after absorbing key ^ ipad
  EVP_MD_CTX* outer = nullptr;  // SHA-256 after absorbing key ^ opad
};

HmacKey::HmacKey(const KeyBytes& key) : s_(std::make_unique<State>()) {
  constexpr std::size_t kBlock = 64;  // SHA-256 block size
  unsigned char ipad[kBlock], opad[kBlock];
  std::memset(ipad, 0x36, kBlock);
  std::memset(opad, 0x5c, kBlock);
  for (std::size_t i = 0; i < key.size(); ++i) {
    ipad[i] ^= key[i];
    opad[i] ^= key[i];
  }
  s_->inner = EVP_MD_CTX_new();
  s_->outer = EVP_MD_CTX_new();
  if (!s_->inner || !s_->outer || EVP_DigestInit_ex(s_->inner, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(s_->inner, ipad, kBlock) != 1 ||
      EVP_DigestInit_ex(s_->outer, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(s_->outer, opad, kBlock) != 1)
    crypto_abort("HMAC key setup");
  OPENSSL_cleanse(ipad, kBlock);
  OPENSSL_cleanse(opad, kBlock);
}

HmacKey::~HmacKey() {
  EVP_MD_CTX_free(s_->inner);
  EVP_MD_CTX_free(s_->outer);
}

Tag HmacKey::tag(std::string_view a, std::string_view b) const {
  EVP_MD_CTX* c = scratch();
  unsigned char inner_md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  Tag out{};
  if (EVP_MD_CTX_copy_ex(c, s_->inner) != 1 || EVP_DigestUpdate(c, a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(c, b.data(), b.size()) != 1 || EVP_DigestFinal_ex(c, inner_md, &n) != 1 ||
      EVP_MD_CTX_copy_ex(c, s_->outer) != 1 || EVP_DigestUpdate(c, inner_md, n) != 1 ||
      EVP_DigestFinal_ex(c, out.data(), &n) != 1)
    crypto_abort("HMAC");
  return out;
}

bool HmacKey::verify(std::string_view a, std::string_view b, const std::uint8_t* t) const {
  Tag expect = tag(a, b);
  return CRYPTO_memcmp(expect.data(), t, kTagBytes) == 0;
}

}  // namespace vigil
