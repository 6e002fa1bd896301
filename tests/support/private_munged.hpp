// private_munged.hpp — a throwaway munged for tests that need real MUNGE.
//
// Started as the `munge` user with its own key and socket under a temp dir; the
// test FAILS (never skips) if munged cannot run. A second instance with another
// key stands in for a forger: its credentials must be rejected by the first.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace vigil::testing {

class PrivateMunged {
 public:
  PrivateMunged() {
    char tmpl[] = "/tmp/vigil-munge-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // munged insists: key owned by munge 0600; socket dir 0755 owned by munge.
    const std::string sh = "set -e; d=" + dir_ + "; chmod 0755 $d; chown munge:munge $d;"
        " dd if=/dev/urandom of=$d/key bs=1024 count=1 status=none; chown munge:munge $d/key; chmod 0600 $d/key;"
        " runuser -u munge -- munged --socket=$d/sock --key-file=$d/key --pid-file=$d/pid"
        " --log-file=$d/log --seed-file=$d/seed";
    const int rc = std::system(("bash -c '" + sh + "'").c_str());
    if (rc != 0) ADD_FAILURE() << "cannot start a private munged in " << dir_ << " (is the munge package installed?)";
  }
  ~PrivateMunged() {
    std::ifstream pidf(dir_ + "/pid");
    pid_t pid = 0;
    if (pidf >> pid && pid > 0) {
      ::kill(pid, SIGTERM);
      for (int i = 0; i < 100 && alive(pid); ++i) usleep(20000);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string socket() const { return dir_ + "/sock"; }

 private:
  // munged is not our child: once it exits it may linger as a zombie of an
  // init that reaps late, so "exists" is not "alive".
  static bool alive(pid_t pid) {
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_s, comm, state;
    if (!(st >> pid_s >> comm >> state)) return false;
    return state != "Z";
  }

  std::string dir_;
};

}  // namespace vigil::testing
