// digest_bench.cpp — SHA-256 throughput of the checkpoint ledger's file digest
// (vigil::sha256_file: OpenSSL EVP, 1 MiB reads), on a file in the page cache
// and after dropping it from the cache where allowed. Prints one JSON object.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vigil/crypto.hpp"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "/tmp/vigil-digest-bench.bin";
  const long mib = argc > 2 ? std::atol(argv[2]) : 1024;
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 1;
    std::vector<unsigned char> buf(1 << 20);
    for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
    for (long i = 0; i < mib; ++i)
      if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) return 1;
    ::fsync(fd);
    ::close(fd);
  }
  std::vector<double> gbps;
  for (int round = 0; round < 5; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    const vigil::FileDigest d = vigil::sha256_file(path);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!d.error.empty()) return 1;
    gbps.push_back(static_cast<double>(d.bytes) / s / 1e9);
  }
  ::unlink(path.c_str());
  std::sort(gbps.begin(), gbps.end());
  std::printf("{\"bytes\": %ld, \"rounds\": 5, \"gb_per_s_median\": %.3f, \"gb_per_s_min\": %.3f}\n", mib << 20,
              gbps[2], gbps[0]);
  return 0;
}
