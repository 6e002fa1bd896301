// Node-list expansion: the forms Slurm prints, and malformed input.
#include <gtest/gtest.h>

#include "hostlist.hpp"

using vigil::spank::expand_hostlist;
using V = std::vector<std::string>;

TEST(Hostlist, Forms) {
  EXPECT_EQ(*expand_hostlist("n1"), V({"n1"}));
  EXPECT_EQ(*expand_hostlist("n[1-3]"), V({"n1", "n2", "n3"}));
  EXPECT_EQ(*expand_hostlist("n[1-2,5],gpu[08-10]"), V({"n1", "n2", "n5", "gpu08", "gpu09", "gpu10"}));
  EXPECT_EQ(*expand_hostlist("a,b"), V({"a", "b"}));
  EXPECT_EQ(*expand_hostlist("rack[1-2]-x"), V({"rack1-x", "rack2-x"}));
}

TEST(Hostlist, Malformed) {
  for (const char* bad : {"n[1-3", "n]1[", "n[a-b]", "n[3-1]", "n[[1]]", "n[1]x[2]", "n[-]"})
    EXPECT_FALSE(expand_hostlist(bad).ok()) << bad;
  EXPECT_FALSE(expand_hostlist("n[1-999999]", 1000).ok());
}
