// HMAC against RFC 4231 test case 2 style check (key shorter than a block) and SHA-256 vectors.
#include <gtest/gtest.h>

#include <openssl/hmac.h>

#include <cstring>

#include "vigil/crypto.hpp"

using namespace vigil;

TEST(Crypto, Sha256KnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HmacMatchesOpenSslReference) {
  KeyBytes k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 7 + 1);
  HmacKey key(k);
  const std::string a = "header-bytes", b = "body bytes of some length";
  Tag mine = key.tag(a, b);
  std::string joined = a + b;
  unsigned char ref[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()), reinterpret_cast<const unsigned char*>(joined.data()),
       joined.size(), ref, &n);
  ASSERT_EQ(n, 32u);
  EXPECT_EQ(0, std::memcmp(mine.data(), ref, 32));
  EXPECT_TRUE(key.verify(a, b, ref));
  ref[0] ^= 1;
  EXPECT_FALSE(key.verify(a, b, ref));
}

TEST(Crypto, RandomKeysDiffer) { EXPECT_NE(random_key(), random_key()); }
